"""xruntime_emotion.check.golden: the golden set, its faces, its ONNX mirror, regenerate and record."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import _copy_golden, run_cli

from xruntime_emotion import ModelIR
from xruntime_emotion.check import golden as G
from xruntime_emotion.errors import (
    ConformanceError,
)


def test_golden_set_is_for_the_shipped_weights(default_ir: ModelIR) -> None:
    gs = G.load()
    assert gs.manifest["weights_sha256"] == default_ir.weights_sha256
    assert gs.manifest["ir_hash"] == default_ir.ir_hash
    kinds = [c.kind for c in gs.cases]
    assert kinds.count("fer2013") >= 500 and kinds.count("nxp") == 1 and kinds.count("synthetic") >= 50
    for reason in (t["reason"] for t in gs.manifest["tolerances"].values()):
        assert reason
    assert gs.manifest["tolerances"]["int8_vs_fp32"]["sources"]["min_psnr_db"]


def test_golden_set_carries_its_real_faces() -> None:
    """Every case's pixels come with the golden set itself (checked by sha256): verify needs no data set."""
    gs = G.load()
    cases, imgs = gs.images()
    assert len(cases) == len(gs.cases) == len(imgs)
    assert len(gs.faces) == int(G.real_faces(cases).sum()) >= 500
    broken = dict(gs.faces)
    name = next(iter(broken))
    broken[name] = broken[name].copy()
    broken[name][0, 0] ^= 1
    with pytest.raises(ConformanceError, match=f"golden case {name}: pixels do not match"):
        G.GoldenSet(gs.manifest, gs.expected, broken).images()
    with pytest.raises(ConformanceError, match="missing from the golden set"):
        G.GoldenSet(gs.manifest, gs.expected, {}).images()


def test_golden_faces_are_the_fer2013_rows(fer) -> None:
    gs = G.load()
    for c in gs.cases:
        if c.kind != "synthetic":
            np.testing.assert_array_equal(gs.faces[c.name], fer.images[c.row])


def test_onnx_mirror_matches_golden(tmp_path: Path) -> None:
    from onnx import TensorProto, numpy_helper

    from xruntime_emotion.model.data import to_input

    gs = G.load()
    synth = [c for c in gs.cases if c.kind == "synthetic"]
    d = G.golden_dir() / "onnx" / "test_data_set_0"
    x = numpy_helper.to_array(TensorProto.FromString((d / "input_0.pb").read_bytes()))
    y = numpy_helper.to_array(TensorProto.FromString((d / "output_0.pb").read_bytes()))
    imgs = dict(G.synthetic_cases(G.SYNTHETIC_SEED))
    np.testing.assert_array_equal(x, to_input(np.stack([imgs[c.name] for c in synth])))
    np.testing.assert_allclose(y, gs.rows("fp32", synth), atol=1e-7)
    # and the mirror `golden mirror` writes for a board runs on onnxruntime within tolerance
    r = run_cli("golden", "mirror", "--output", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    assert np.abs(got - y).max() <= 1e-5


def test_regenerate_is_deterministic_and_guards_weights(
    tmp_path: Path, full_artifacts: Path, default_ir: ModelIR, fer, random_ir: ModelIR
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    G.regenerate(default_ir, full_artifacts, fer, directory=a)
    G.regenerate(default_ir, full_artifacts, fer, directory=b)
    for f in ("manifest.json", "expected.npz", "onnx/test_data_set_0/input_0.pb", "onnx/test_data_set_0/output_0.pb"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    # the committed golden set is what this code generates from the shipped weights and artifacts
    committed = G.load()
    fresh = G.load(a)
    assert [c.sha256 for c in fresh.cases] == [c.sha256 for c in committed.cases]
    assert np.abs(fresh.expected["fp32"] - committed.expected["fp32"]).max() <= 1e-9
    with pytest.raises(Exception, match="--force"):
        G.regenerate(random_ir, full_artifacts, fer, directory=a)


def test_golden_record_adds_a_kernel_set_for_the_same_file_only(tmp_path: Path, full_artifacts: Path) -> None:
    """A board records its own kernel set (its NPU delegate) once; only for the artifact the set was made with."""
    from xruntime_emotion.model.data import to_input
    from xruntime_emotion.runtime.backends import open_backend, predict_batched

    d = _copy_golden(tmp_path)
    r = run_cli("golden", "record", "--runtime", "tensorflow", "--artifacts", str(full_artifacts), "--golden", str(d))
    assert r.returncode == 0, r.stderr
    gs = G.load(d)
    recorded = G.recordings(gs, "tflite-int8")
    assert set(recorded) == {"litert", "litert-builtin", "tensorflow"}
    cases, imgs = gs.images()
    own = predict_batched(open_backend(full_artifacts / "emotion_uint8_float32.tflite", "tensorflow"), to_input(imgs))
    np.testing.assert_array_equal(recorded["tensorflow"], own)
    entry = gs.manifest["int8"]["tflite-int8"]["recorded"]["tensorflow"]
    assert entry["argmax_agreement_with_fp32_on_real_faces"] > 0.9 and entry["delegate"] is None
    other = tmp_path / "other"
    shutil.copytree(full_artifacts, other)
    f = other / "emotion_uint8_float32.tflite"
    f.write_bytes(f.read_bytes() + b"\0")
    before = (d / "expected.npz").read_bytes(), (d / "manifest.json").read_bytes()
    r = run_cli("golden", "record", "--runtime", "litert", "--artifacts", str(other), "--golden", str(d))
    assert r.returncode != 0 and "is not the tflite-int8 file" in r.stderr and "Traceback" not in r.stderr
    assert ((d / "expected.npz").read_bytes(), (d / "manifest.json").read_bytes()) == before
