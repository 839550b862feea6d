"""Keras backend for weights files (needs TensorFlow: the [export] extra)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import ModelIR


class KerasBackend:
    runtime = "keras"
    fixed_batch = None

    def __init__(self, path: Path, ir: ModelIR | None = None) -> None:
        from exporters.keras_builder import build_model

        self.path = path
        self.ir = ir or ModelIR.load(path)
        self.model = build_model(self.ir)
        self._lock = threading.Lock()

    def native_input(self, x: np.ndarray) -> np.ndarray:
        return x

    def raw(self, native: np.ndarray) -> Any:
        return self.model.predict_on_batch(native)

    def predict(self, x: np.ndarray) -> np.ndarray:
        from exporters.train import predict_keras

        with self._lock:
            return predict_keras(self.model, x).astype(np.float32)


def open_backend(path: Path, **options: Any) -> KerasBackend:
    return KerasBackend(path, **options)
