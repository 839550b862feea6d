"""xruntime_emotion.model.h5io, ModelIR.load/save and xruntime_emotion.weights: DeepFace h5 and npz weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import _arrays, inputs64, run_cli, write_upstream_h5

from xruntime_emotion import ModelIR
from xruntime_emotion.errors import (
    WeightsError,
)
from xruntime_emotion.weights import default_manifest_path


def test_upstream_h5_loads_identically_in_ir_and_keras(tmp_path: Path, random_ir: ModelIR, fer, happy_jpg) -> None:
    from exporters.keras_builder import build_model

    h5 = tmp_path / "facial_expression_model_weights.h5"
    write_upstream_h5(_arrays(random_ir), h5)
    x = inputs64(fer, happy_jpg)
    ir = ModelIR.load(h5)
    assert ir.weights_sha256 == random_ir.weights_sha256
    keras_model = build_model()
    keras_model.load_weights(str(h5))  # Keras' own legacy-h5 reader, matching by order
    from_ir = build_model(ir)
    np.testing.assert_array_equal(np.asarray(keras_model(x)), np.asarray(from_ir(x)))


def test_own_formats_round_trip(tmp_path: Path, random_ir: ModelIR) -> None:
    random_ir.save_npz(tmp_path / "w.npz")
    random_ir.save_deepface_h5(tmp_path / "w.h5")
    for p in ("w.npz", "w.h5"):
        assert ModelIR.load(tmp_path / p).weights_sha256 == random_ir.weights_sha256
    assert ModelIR.load(tmp_path / "w.npz").provenance.sha256 != ""


@pytest.mark.parametrize("case", ["truncated", "wrong_shape", "not_h5", "zero_bytes"])
def test_bad_weights_give_one_line_error_and_write_nothing(tmp_path: Path, random_ir: ModelIR, case: str) -> None:
    bad = tmp_path / "bad.h5"
    if case in ("truncated", "wrong_shape"):
        arrays = _arrays(random_ir)
        if case == "wrong_shape":
            arrays[2] = (arrays[2][0][:, :, :, :32], arrays[2][1][:32])
        write_upstream_h5(arrays, bad)
        if case == "truncated":
            bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif case == "not_h5":
        bad.write_text("this is not HDF5\n" * 10)
    else:
        bad.write_bytes(b"")
    out = tmp_path / "out"
    r = run_cli("export", "--format", "onnx", "--weights", str(bad), "--output", str(out))
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    if case == "wrong_shape":
        assert "conv2d_2" in lines[0] or "layer" in lines[0]
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(WeightsError):
        ModelIR.load(bad)


def test_no_weights_error_names_deepface_file(tmp_path: Path) -> None:
    r = run_cli("export", "--format", "onnx", "--weights", str(tmp_path / "missing.h5"), "--output", str(tmp_path))
    assert r.returncode != 0 and "no such weights file" in r.stderr


def test_shipped_manifest() -> None:
    m = json.loads(default_manifest_path().read_text())
    ir = ModelIR.default()
    assert m["weights"]["weights_sha256"] == ir.weights_sha256
    assert m["shipped"]["weights_file_sha256"] == ir.provenance.sha256
    assert m["data"]["split_sizes"]["Training"] == 28709 and "research" in m["license"]
    assert m["accuracy"]["PrivateTest"]["accuracy"] >= 0.58
    assert 1 <= m["best_epoch"] <= m["epochs"] == len(m["history"])
