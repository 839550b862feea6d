"""xruntime_emotion.runtime.backends: LiteRT (XNNPACK and builtin kernels), foreign TFLite inputs, delegates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.model.data import Split, to_input
from xruntime_emotion.runtime.backends import open_backend, predict_batched


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
