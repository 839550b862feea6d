"""Default weights shipped with the package (trained by xemotion on FER2013; see manifest.json).

The ``*_path`` functions give ``Path`` objects; ``shipped_file`` gives a string, for ``EmotionClassifier.default()``,
whose start imports no pathlib.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xruntime_emotion.errors import WeightsError

if TYPE_CHECKING:
    from pathlib import Path

FOLDER = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WEIGHTS = "emotion_weights.npz"
MANIFEST = "manifest.json"
DEFAULT_ONNX = "emotion_float32.onnx"

_MISSING = {
    DEFAULT_WEIGHTS: "no default weights are installed; pass --weights PATH: xemotion's own .npz or DeepFace's "
    "facial_expression_model_weights.h5 (a release asset of github.com/serengil/deepface)",
    DEFAULT_ONNX: "no default model is installed; pass --model PATH: an .onnx or .tflite from `xemotion export`, or "
    "weights (xemotion's .npz, or DeepFace's facial_expression_model_weights.h5, a release asset of "
    "github.com/serengil/deepface)",
}


def shipped_file(name: str) -> str:
    """The path of a file shipped in this folder (its base name only, so never outside it); ``WeightsError``
    where the weights or the model are not installed."""
    base = os.path.basename(name)
    path = os.path.join(FOLDER, base)
    if base in _MISSING and not os.path.isfile(path):
        raise WeightsError(_MISSING[base])
    return path


def _path(name: str) -> Path:
    from pathlib import Path

    return Path(shipped_file(name))


def default_weights_path() -> Path:
    return _path(DEFAULT_WEIGHTS)


def default_manifest_path() -> Path:
    return _path(MANIFEST)


def default_onnx_path() -> Path:
    return _path(DEFAULT_ONNX)
