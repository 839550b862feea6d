"""xruntime_emotion.runtime.integrity: artifacts and weights checked against their manifests' sha256."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion import EmotionClassifier, ModelIR
from xruntime_emotion.errors import (
    IntegrityError,
)
from xruntime_emotion.util import sha256_file


def test_loading_through_the_manifest_checks_sha256(ir_export: Path, tmp_path: Path) -> None:
    import shutil

    from xruntime_emotion.runtime.integrity import verified_path

    copy = Path(shutil.copytree(ir_export, tmp_path / "copy"))
    EmotionClassifier.from_manifest(copy, "onnx-ir").predict(np.zeros((1, 48, 48), np.uint8))
    f = copy / "emotion_float32_ir.onnx"
    recorded = json.loads((copy / "export_manifest.json").read_text())["artifacts"]["onnx-ir"]["sha256"]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1  # one bit in the weights: still a loadable model
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        EmotionClassifier.from_manifest(copy, "onnx-ir")
    assert recorded in str(info.value) and sha256_file(f) in str(info.value)
    with pytest.raises(IntegrityError, match="record no 'tflite-int8'"):
        verified_path(copy, "tflite-int8")


def test_cli_target_checks_the_export_manifest(
    twin_exports: tuple[Path, Path], tmp_path: Path, happy_jpg: Path
) -> None:
    import shutil

    copy = Path(shutil.copytree(twin_exports[0], tmp_path / "artifacts"))
    args = ("predict", str(happy_jpg), "--target", "imx8mp", "--artifacts", str(copy))
    assert run_cli(*args).returncode == 0
    f = copy / "emotion_uint8_float32.tflite"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    r = run_cli(*args)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    recorded = json.loads((copy / "export_manifest.json").read_text())["artifacts"]["tflite-int8"]["sha256"]
    assert recorded in r.stderr and sha256_file(f) in r.stderr


def test_weights_through_their_manifest(random_ir: ModelIR, tmp_path: Path) -> None:
    from xruntime_emotion.runtime.integrity import load_weights

    npz = random_ir.save_npz(tmp_path / "emotion_weights.npz")
    manifest = {"weights": {"npz": npz.name, "npz_sha256": sha256_file(npz)}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_weights(tmp_path).weights_sha256 == random_ir.weights_sha256
    manifest["weights"]["npz_sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=f"records {'0' * 64}"):
        load_weights(tmp_path)
