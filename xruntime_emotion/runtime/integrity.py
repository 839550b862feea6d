"""Files checked against the sha256 that their manifest records.

Two kinds of manifest live beside the files they describe:
- ``export_manifest.json`` (``xemotion export``): ``artifacts.<format>.file`` and ``.sha256``, the names
  being the formats ("onnx", "onnx-int8", "tflite-fp32", "tflite-int8", "vela", "onnx-ir");
- ``manifest.json`` (``xemotion train``, and the shipped weights): "weights" (``weights.npz`` /
  ``npz_sha256``), "deepface-h5" (``weights.deepface_h5`` / ``h5_sha256``) and, once shipped, "onnx"
  (``shipped.onnx`` / ``onnx_sha256``).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from xruntime_emotion.errors import IntegrityError, ModelFileError
from xruntime_emotion.util import sha256_file

if TYPE_CHECKING:
    from pathlib import Path

    from xruntime_emotion.model.ir import ModelIR

EXPORT_MANIFEST = "export_manifest.json"
TRAIN_MANIFEST = "manifest.json"


def verify_sha256(path: str | Path, expected: str, source: str = "its manifest") -> Path:
    """``path`` if its sha256 is ``expected``; otherwise IntegrityError naming both hashes."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file (listed in {source})")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise IntegrityError(f"{path}: sha256 is {actual}, but {source} records {expected}")
    return path


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path}: not a manifest (expected a JSON object)")
    return data


def entries(folder: str | os.PathLike[str]) -> dict[str, tuple[str, str, str]]:
    """Every file the manifests in ``folder`` record: name -> (file name, sha256, manifest's path)."""
    out: dict[str, tuple[str, str, str]] = {}
    train = os.path.join(folder, TRAIN_MANIFEST)
    if os.path.isfile(train):
        m = read_manifest(train)
        w, shipped = m.get("weights") or {}, m.get("shipped") or {}
        for name, section, file_key, sha_key in (
            ("weights", w, "npz", "npz_sha256"),
            ("deepface-h5", w, "deepface_h5", "h5_sha256"),
            ("onnx", shipped, "onnx", "onnx_sha256"),
        ):
            if isinstance(section, dict) and section.get(file_key) and section.get(sha_key):
                out[name] = (str(section[file_key]), str(section[sha_key]), train)
    export = os.path.join(folder, EXPORT_MANIFEST)
    if os.path.isfile(export):
        artifacts = read_manifest(export).get("artifacts") or {}
        for name, entry in artifacts.items() if isinstance(artifacts, dict) else ():
            if isinstance(entry, dict) and entry.get("file") and entry.get("sha256"):
                out[name] = (str(entry["file"]), str(entry["sha256"]), export)
    return out


def verified_path(folder: str | Path, name: str) -> Path:
    """The file recorded as ``name`` in ``folder``'s manifests, after checking its sha256."""
    from pathlib import Path

    folder = Path(folder)
    found = entries(folder)
    if name not in found:
        if not found:
            raise IntegrityError(f"{folder}: no {EXPORT_MANIFEST} or {TRAIN_MANIFEST} recording any file")
        raise IntegrityError(f"{folder}: the manifests record no {name!r}; they record {', '.join(sorted(found))}")
    file, sha, manifest = found[name]
    return verify_sha256(folder / Path(file).name, sha, str(manifest))  # never outside the folder


def load_weights(folder: str | Path, name: str = "weights") -> ModelIR:
    """The weights recorded in ``folder``'s manifest.json, checked against its sha256."""
    from xruntime_emotion.model.ir import ModelIR

    return ModelIR.load(verified_path(folder, name))
