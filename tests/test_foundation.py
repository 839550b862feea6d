"""Issue: foundation. IR, DeepFace h5, Keras builder, ONNX export, CLI errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import inputs64, onnx_logits, run_cli, write_upstream_h5

from xruntime_emotion import LABELS, EmotionClassifier, ModelIR
from xruntime_emotion.errors import WeightsError
from xruntime_emotion.model.ir import DEEPFACE_LAYERS


def _arrays(ir: ModelIR) -> list[tuple[np.ndarray, np.ndarray]]:
    return [ir.weights[layer.name] for layer in ir.weighted_layers]


def test_architecture_is_deepface() -> None:
    kinds = [
        (layer.kind.value, layer.units, layer.kernel, layer.strides, layer.activation) for layer in DEEPFACE_LAYERS
    ]
    assert kinds == [
        ("conv2d", 64, (5, 5), (1, 1), "relu"),
        ("maxpool2d", 0, (5, 5), (2, 2), "linear"),
        ("conv2d", 64, (3, 3), (1, 1), "relu"),
        ("conv2d", 64, (3, 3), (1, 1), "relu"),
        ("avgpool2d", 0, (3, 3), (2, 2), "linear"),
        ("conv2d", 128, (3, 3), (1, 1), "relu"),
        ("conv2d", 128, (3, 3), (1, 1), "relu"),
        ("avgpool2d", 0, (3, 3), (2, 2), "linear"),
        ("flatten", 0, (1, 1), (1, 1), "linear"),
        ("dense", 1024, (1, 1), (1, 1), "relu"),
        ("dropout", 0, (1, 1), (1, 1), "linear"),
        ("dense", 1024, (1, 1), (1, 1), "relu"),
        ("dropout", 0, (1, 1), (1, 1), "linear"),
        ("dense", 7, (1, 1), (1, 1), "softmax"),
    ]
    assert LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_parameter_count(random_ir: ModelIR) -> None:
    assert random_ir.num_parameters == 1_485_831


def test_random_fixture_is_confident(random_ir: ModelIR, fer, happy_jpg: Path) -> None:
    p = random_ir.forward(inputs64(fer, happy_jpg))
    assert (p.max(1) > 0.9).sum() >= 8, "test weights must give confident outputs"


@pytest.mark.parametrize("which", ["random", "default"])
def test_reference_matches_keras(which: str, random_ir: ModelIR, default_ir: ModelIR, fer, happy_jpg: Path) -> None:
    from exporters.keras_builder import build_model, logits_model

    ir = random_ir if which == "random" else default_ir
    x = inputs64(fer, happy_jpg)
    model = build_model(ir)
    keras_p = np.asarray(model(x, training=False))
    keras_z = np.asarray(logits_model(model)(x, training=False))
    assert np.abs(ir.forward(x) - keras_p).max() <= 1e-5
    assert np.abs(ir.forward(x, logits=True) - keras_z).max() <= 1e-5 * max(1.0, np.abs(keras_z).max())


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


def test_dynamic_batch(tmp_path: Path, default_ir: ModelIR) -> None:
    clf = EmotionClassifier.default()
    x = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    batch = clf.predict(x)
    one_by_one = np.concatenate([clf.predict(im) for im in x])
    assert batch.shape == (5, 7)
    assert np.abs(batch - one_by_one).max() <= 1e-6
    assert np.abs(batch - default_ir.forward(x[..., None] / np.float32(255))).max() <= 1e-5


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


def test_cli_help_for_every_command() -> None:
    for cmd in ("export", "predict", "info", "targets", "train", "evaluate"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_predict_and_info_json(tmp_path: Path, happy_jpg: Path) -> None:
    import json

    r = run_cli("predict", str(happy_jpg), "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    assert "Recognized emotion:" in r.stdout
    res = json.loads((tmp_path / "p.json").read_text())["results"][0]
    assert set(res["probabilities"]) == set(LABELS)
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-4
    from xruntime_emotion.weights import default_onnx_path

    r = run_cli("info", str(default_onnx_path()), "--json", str(tmp_path / "i.json"))
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["inputs"][0]["shape"][1:] == [48, 48, 1] and len(info["sha256"]) == 64
