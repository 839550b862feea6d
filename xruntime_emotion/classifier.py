"""EmotionClassifier: the embeddable API. Imports no TensorFlow for ONNX and TFLite models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError
from .ir import LABELS
from .preprocess import Faces, prepare
from .runtimes import RUNTIMES, Backend, open_backend


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    probabilities: dict[str, float]


class EmotionClassifier:
    """Classify 48x48 grey face crops (or any face crop; see ``xruntime_emotion.preprocess``).

    Safe to call from several threads on one instance.
    """

    def __init__(self, backend: Backend, labels: tuple[str, ...] = LABELS) -> None:
        self.backend = backend
        self.labels = labels

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_onnx(
        cls, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None
    ) -> EmotionClassifier:
        return cls(RUNTIMES["onnxruntime"].open(path, threads=threads, providers=providers))

    @classmethod
    def from_tflite(
        cls,
        path: str | Path,
        delegate: str | None = None,
        num_threads: int | None = None,
        *,
        runtime: str | None = None,
    ) -> EmotionClassifier:
        """LiteRT on a workstation; ``tflite_runtime`` first when a board delegate is given."""
        order = ("tflite_runtime", "litert", "tensorflow") if delegate else ("litert", "tflite_runtime", "tensorflow")
        name = runtime or next((r for r in order if RUNTIMES[r].available()), order[0])
        return cls(RUNTIMES[name].open(path, delegate=delegate, num_threads=num_threads))

    @classmethod
    def from_file(cls, path: str | Path, *, runtime: str | None = None, **options: Any) -> EmotionClassifier:
        """Any artifact (ONNX, TFLite, weights), its runtime picked by content unless named."""
        return cls(open_backend(path, runtime, **options))

    @classmethod
    def default(cls, **options: Any) -> EmotionClassifier:
        """The shipped model (xemotion's own FER2013 weights), on onnxruntime."""
        from .weights import default_onnx_path

        return cls.from_onnx(default_onnx_path(), **options)

    # -- inference --------------------------------------------------------------------------
    def predict(self, faces: Faces) -> np.ndarray:
        """Probabilities (N,7) float32, in ``self.labels`` order, for one face or many."""
        x = prepare(faces)
        p = self.backend.predict(x)
        if p.shape != (len(x), len(self.labels)):
            raise ModelFileError(f"{self.backend.path}: output shape {p.shape}, expected {(len(x), len(self.labels))}")
        return p

    def classify(self, face: Faces) -> Prediction:
        """Label and probability of the first (usually only) face."""
        return self.classify_many(face)[0]

    def classify_many(self, faces: Faces) -> list[Prediction]:
        probs = self.predict(faces)
        out = []
        for p in probs:
            i = int(p.argmax())
            out.append(Prediction(self.labels[i], float(p[i]), {k: float(v) for k, v in zip(self.labels, p)}))
        return out
