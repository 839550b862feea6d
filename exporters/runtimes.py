"""The runtimes that need TensorFlow, registered by module string in ``xruntime_emotion.runtime.backends``:
``keras`` (weights files run by a Keras model) and ``tensorflow`` (``tf.lite``, deprecated, the last
resort for .tflite files). The app side never imports this module itself."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.runtime.backends.litert import LiteRTBackend

from ._deps import tf


class KerasBackend:
    runtime = "keras"
    fixed_batch = None

    def __init__(self, path: str | os.PathLike[str], ir: ModelIR | None = None) -> None:
        from .keras_builder import build_model

        self.path = path = Path(path)
        self.ir = ir or ModelIR.load(path)
        self.model = build_model(self.ir)
        self._lock = threading.Lock()

    def native_input(self, x: np.ndarray) -> np.ndarray:
        return x

    def raw(self, native: np.ndarray) -> Any:
        return self.model.predict_on_batch(native)

    def predict(self, x: np.ndarray) -> np.ndarray:
        from .train import predict_keras

        with self._lock:
            return predict_keras(self.model, x).astype(np.float32)


def open_keras(path: str | os.PathLike[str], **options: Any) -> KerasBackend:
    return KerasBackend(path, **options)


def open_tflite(path: str | os.PathLike[str], **options: Any) -> LiteRTBackend:
    return LiteRTBackend(path, interpreter=tf().lite, runtime="tensorflow", **options)
