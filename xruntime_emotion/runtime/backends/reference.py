"""The NumPy reference (float64 oracle) as a backend for weights files: slow, exact, TF-free."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.model.ir import ModelIR


class ReferenceBackend:
    runtime = "reference"
    fixed_batch = None

    def __init__(self, path: str | os.PathLike[str], ir: ModelIR | None = None) -> None:
        self.path = path = Path(path)
        self.ir = ir or ModelIR.load(path)

    def native_input(self, x: np.ndarray) -> np.ndarray:
        return x

    def raw(self, native: np.ndarray) -> Any:
        return self.ir.forward(native)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.ir.forward(x).astype(np.float32)


def open_backend(path: str | os.PathLike[str], **options: Any) -> ReferenceBackend:
    return ReferenceBackend(path, **options)
