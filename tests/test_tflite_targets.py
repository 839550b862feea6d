"""Issue: TFLite fp32/int8, ONNX int8, LiteRT runtime, i.MX targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.model.data import Split, to_input
from xruntime_emotion.runtime.backends import open_backend, predict_batched

BUILTIN_INT8_OPS = {
    "QUANTIZE", "DEQUANTIZE", "CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE",
    "SHAPE", "STRIDED_SLICE", "PACK",
}  # fmt: skip


def _ops(path: Path) -> list[str]:
    from exporters.tflite import tflite_ops

    return tflite_ops(path.read_bytes())


def test_tflite_int8_contract(artifacts: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(artifacts / "emotion_uint8_float32.tflite"))
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert i["dtype"] == np.uint8 and list(i["shape"]) == [1, 48, 48, 1]
    scale, zero = i["quantization"]
    assert zero == 0 and abs(scale - 1 / 255) < 1e-9
    assert o["dtype"] == np.float32 and list(o["shape"]) == [1, 7]
    ops = _ops(artifacts / "emotion_uint8_float32.tflite")
    assert set(ops) <= BUILTIN_INT8_OPS, ops
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"} <= set(ops)


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


INT8 = {"emotion_uint8_float32.tflite": "emotion_float32.tflite", "emotion_int8.onnx": "emotion_float32.onnx"}


@pytest.mark.parametrize("name", INT8)
def test_int8_meets_the_rule_on_all_of_private_test(artifacts: Path, fer, name: str) -> None:
    """The int8 rule (check.fidelity) holds on all 3,589 PrivateTest faces, not only the golden ones."""
    from xruntime_emotion.check.fidelity import ACCURACY_RULE, Int8Rule, judge_int8

    x, y = fer.split(Split.PRIVATE_TEST)
    assert len(x) == 3589
    fp32 = predict_batched(open_backend(artifacts / INT8[name]), to_input(x)).astype(np.float64)
    q = predict_batched(open_backend(artifacts / name), to_input(x)).astype(np.float64)
    ratio = (q.argmax(1) == y).mean() / (fp32.argmax(1) == y).mean()
    assert ratio >= ACCURACY_RULE["min_ratio_of_fp32_top1"], ratio
    checks, failures = judge_int8(fp32, q, Int8Rule())
    assert failures == [] and checks["decisive_faces"] > 2000, checks


def test_targets_are_data() -> None:
    r = run_cli("targets")
    assert r.returncode == 0
    for word in ("cpu", "imx8mp", "imx93", "libvx_delegate.so", "libethosu_delegate.so"):
        assert word in r.stdout


def test_export_target_imx93_vela(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "imx93"
    r = run_cli("export", "--target", "imx93", "--output", str(out), "--calib-data", str(data_dir / "fer2013"))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "export_manifest.json").read_text())
    vela = m["artifacts"]["vela"]["vela"]
    assert vela["accelerator_config"] == "ethos-u65-256" and vela["estimated_inference_ms"] > 0
    assert vela["vela_version"] and vela["sram_used_kib"] > 0
    from exporters.tflite import tflite_ops

    ops = tflite_ops((out / "emotion_uint8_float32_vela.tflite").read_bytes())
    assert "ethos-u" in ops and set(ops) <= {"ethos-u", "QUANTIZE", "DEQUANTIZE"}, ops
    # the NPU input model is fixed batch 1: no ops from a dynamic Flatten
    b1 = _ops(out / "emotion_uint8_float32.tflite")
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(b1), b1
    r = run_cli(
        "predict", "--target", "imx93", "--artifacts", str(out), str(data_dir / "nxp-deepface-emotion/test.jpg")
    )
    # the compiled model runs only on the board's Ethos-U delegate: a clear error here, not a crash
    assert r.returncode != 0 and "libethosu_delegate.so" in r.stderr and "Traceback" not in r.stderr


def test_foreign_tflite_int8_input(tmp_path: Path, default_ir, fer, happy_jpg: Path) -> None:
    """A .tflite made elsewhere: int8 input (zero point -128), other tensor names."""
    import tensorflow as tf

    from exporters.keras_builder import build_model

    k = tf.keras
    base = build_model(default_ir)
    x_in = k.Input((48, 48, 1), name="face_pixels")
    model = k.Model(x_in, base(x_in), name="someone_elses_model")
    calib = to_input(fer.split(Split.TRAINING)[0][:64])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None]] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path / "foreign.tflite"
    path.write_bytes(conv.convert())
    clf = EmotionClassifier.from_tflite(path)
    assert clf.backend.in_dtype == np.int8 and clf.backend.in_zero == -128  # type: ignore[attr-defined]
    r = run_cli("predict", "--model", str(path), str(happy_jpg))
    assert r.returncode == 0, r.stderr
    faces = fer.split(Split.PRIVATE_TEST)[0][:200]
    fp32 = default_ir.forward(to_input(faces)).argmax(1)
    got = clf.predict(faces).argmax(1)
    assert (fp32 == got).mean() >= 0.95
    assert clf.classify(happy_jpg).label == "happy" and "happy" in r.stdout


def test_classifier_from_tflite_threads_and_batches(artifacts: Path, fer) -> None:
    import concurrent.futures as cf

    clf = EmotionClassifier.from_tflite(artifacts / "emotion_uint8_float32.tflite", threads=1)
    faces = fer.split(Split.PRIVATE_TEST)[0][:64]
    seq = clf.predict(faces)
    with cf.ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda i: clf.predict(faces[i : i + 1]), range(64)))
    np.testing.assert_array_equal(np.concatenate(par), seq)


def test_litert_builtin_kernels_are_a_runtime_of_their_own(artifacts: Path, fer) -> None:
    """LiteRT without XNNPACK runs TFLite's builtin kernels; they round int8 differently from XNNPACK."""
    from xruntime_emotion.errors import XEmotionError

    path = artifacts / "emotion_uint8_float32.tflite"
    builtin, xnnpack = open_backend(path, "litert-builtin"), open_backend(path, "litert")
    assert (builtin.runtime, xnnpack.runtime) == ("litert-builtin", "litert")
    x = to_input(fer.split(Split.PRIVATE_TEST)[0][:500])
    a, b = predict_batched(builtin, x), predict_batched(xnnpack, x)
    assert 0 < np.abs(a - b).max() and (a.argmax(1) == b.argmax(1)).mean() >= 0.95
    with pytest.raises(XEmotionError, match="kernels must be one of default, builtin"):
        open_backend(path, "litert", probe=False, kernels="fast")


def test_missing_delegate_is_one_clean_error(artifacts: Path, happy_jpg: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "libvx_delegate.so")
    r = run_cli("predict", "--model", str(artifacts / "emotion_uint8_float32.tflite"), "--delegate", missing,
                str(happy_jpg))  # fmt: skip
    assert r.returncode != 0 and f"delegate {missing} not found" in r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
