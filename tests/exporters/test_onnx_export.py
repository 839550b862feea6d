"""exporters.onnx_tf2onnx and xruntime_emotion.model.onnx_ir: ONNX exports from DeepFace h5 and from the IR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import _arrays, inputs64, onnx_logits, run_cli, write_upstream_h5

from xruntime_emotion import EmotionClassifier, ModelIR


def test_export_onnx_from_upstream_h5_matches_keras(tmp_path: Path, random_ir: ModelIR, fer, happy_jpg) -> None:
    import onnx

    from exporters.keras_builder import build_model, logits_model

    h5 = tmp_path / "upstream.h5"
    write_upstream_h5(_arrays(random_ir), h5)
    out = tmp_path / "out"
    r = run_cli("export", "--format", "onnx", "--via", "tf2onnx", "--weights", str(h5), "--output", str(out))
    assert r.returncode == 0, r.stderr
    path = out / "emotion_float32.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == [
        "probabilities"
    ]
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["weights_sha256"] == random_ir.weights_sha256 and "angry" in meta["labels"]
    model = build_model()
    model.load_weights(str(h5))
    x = inputs64(fer, happy_jpg)
    assert len(x) == 64
    got = EmotionClassifier.from_onnx(path).predict(x)
    assert np.abs(got - np.asarray(model(x))).max() <= 1e-5
    z_keras = np.asarray(logits_model(model)(x))
    assert np.abs(onnx_logits(path, x) - z_keras).max() <= 1e-5 * max(1.0, np.abs(z_keras).max())
    assert got[0].max() > 0.0 and (got.max(1) > 0.9).any()


def test_ir_onnx_is_no_larger_than_tf2onnx(full_artifacts: Path) -> None:
    from xruntime_emotion.runtime.info import describe

    ir_made = full_artifacts / "emotion_float32_ir.onnx"
    a, b = describe(full_artifacts / "emotion_float32.onnx"), describe(ir_made)
    assert b["nodes"] <= a["nodes"], (b["ops"], a["ops"])
    assert a["metadata"]["producer"] == "tf2onnx" and b["metadata"]["producer"] == "xemotion-ir"
    r = run_cli("info", str(ir_made))
    assert f"nodes: {b['nodes']}" in r.stdout
