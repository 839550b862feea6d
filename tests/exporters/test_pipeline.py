"""exporters.pipeline: the export manifest, atomic writes (xruntime_emotion.atomic) and deterministic exports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from xruntime_emotion import ModelIR
from xruntime_emotion.model.data import Split
from xruntime_emotion.util import sha256_file


def test_export_manifest_records_calibration_from_training(artifacts: Path, fer) -> None:
    from xruntime_emotion.model.data import image_sha256

    m = json.loads((artifacts / "export_manifest.json").read_text())
    train = {image_sha256(im) for im in fer.split(Split.TRAINING)[0]}
    for name in ("onnx-int8", "tflite-int8", "vela"):
        cal = m["artifacts"][name]["calibration"]
        assert cal["split"] == "Training" and cal["size"] == 100 and len(cal["image_sha256"]) == 100
        assert set(cal["image_sha256"]) <= train
    assert "reduce_range" in m["artifacts"]["onnx-int8"]
    for entry in m["artifacts"].values():
        assert len(entry["sha256"]) == 64


STALL_EXPORT = """
import sys, time
from pathlib import Path
from exporters import pipeline
from exporters.context import ExportContext, ExportOptions
from xruntime_emotion.model.ir import ModelIR

def stall(ctx, fmt, path):  # the artifact is written in full, not yet renamed into place
    print("written", Path(path).stat().st_size, flush=True)
    time.sleep(600)

pipeline.validate = stall
pipeline.export(ExportContext(ModelIR.load(sys.argv[1]), ExportOptions(onnx_via="ir")), ["onnx"], Path(sys.argv[2]))
"""


def _killed_mid_export(tmp_path: Path, random_ir: ModelIR) -> Path:
    weights = random_ir.save_npz(tmp_path / "w.npz")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen(
        [sys.executable, "-c", STALL_EXPORT, str(weights), str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("written") and int(line.split()[1]) > 1_000_000, line
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    return out


def test_export_killed_mid_way_leaves_nothing(tmp_path: Path, random_ir: ModelIR) -> None:
    from xruntime_emotion.atomic import _anonymous

    out = _killed_mid_export(tmp_path, random_ir)
    left = sorted(p.name for p in out.iterdir())
    fd = _anonymous(out)
    if fd is not None:  # Linux, a file system with O_TMPFILE
        os.close(fd)
        assert left == []  # no artifact, no .part, no manifest
    else:  # the documented fallback: only a hidden temporary file, never the artifact
        assert all(n.startswith(".emotion_float32_ir.onnx.") and n.endswith(".part") for n in left), left


def test_failed_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    from xruntime_emotion.atomic import atomic_path

    for named in (False, True):
        with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin", named=named) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_exports_are_deterministic(twin_exports: tuple[Path, Path]) -> None:
    a, b = twin_exports
    ma, mb = (json.loads((d / "export_manifest.json").read_text()) for d in (a, b))
    assert set(ma["artifacts"]) == {"onnx", "onnx-int8", "tflite-fp32", "tflite-int8"}
    for name, entry in ma["artifacts"].items():
        assert entry["sha256"] == sha256_file(a / entry["file"]), name
        assert entry["sha256"] == mb["artifacts"][name]["sha256"], f"{name} differs between two export processes"
    assert (a / "export_manifest.json").read_bytes() == (b / "export_manifest.json").read_bytes()
