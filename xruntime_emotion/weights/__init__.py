"""Default weights shipped with the package (trained by xemotion on FER2013; see manifest.json)."""

from __future__ import annotations

from pathlib import Path

from xruntime_emotion.errors import WeightsError

DEFAULT_WEIGHTS = "emotion_weights.npz"
MANIFEST = "manifest.json"


def default_weights_path() -> Path:
    p = Path(__file__).with_name(DEFAULT_WEIGHTS)
    if not p.is_file():
        raise WeightsError(
            "no default weights are installed; pass --weights PATH: xemotion's own .npz or DeepFace's "
            "facial_expression_model_weights.h5 (a release asset of github.com/serengil/deepface)"
        )
    return p


def default_manifest_path() -> Path:
    return Path(__file__).with_name(MANIFEST)


DEFAULT_ONNX = "emotion_float32.onnx"


def default_onnx_path() -> Path:
    p = Path(__file__).with_name(DEFAULT_ONNX)
    if not p.is_file():
        raise WeightsError(
            "no default model is installed; pass --model PATH: an .onnx or .tflite from `xemotion export`, or weights "
            "(xemotion's .npz, or DeepFace's facial_expression_model_weights.h5, a release asset of "
            "github.com/serengil/deepface)"
        )
    return p
