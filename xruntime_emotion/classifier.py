"""EmotionClassifier: the embeddable API. Imports no TensorFlow for ONNX and TFLite models.

Untrusted model files: ``from_tflite``, ``from_file`` and ``from_manifest`` take ``probe``. With
``probe=True`` the file is first opened and run once in a helper process, so that a malformed file
that would crash the interpreter kills the helper, not this process, and is refused with
``UnsafeModelError``. The default (``probe=None``; ``True`` in ``from_tflite``) probes TFLite files and
not ONNX or weights files; ``from_onnx`` takes ``probe=False`` by default. A passing file is not probed
again in this process. Details and limits: ``xruntime_emotion.safety``.

Integrity: ``from_manifest(folder, name)`` loads an artifact recorded in ``export_manifest.json`` (or
the weights recorded in a training ``manifest.json``) only if its sha256 matches the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelFileError
from .ir import LABELS
from .preprocess import Faces, prepare
from .runtimes import RUNTIMES, Backend, open_backend

if TYPE_CHECKING:
    from .detect import DetectedFace, FaceDetector


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
        cls,
        path: str | Path,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        probe: bool = False,
    ) -> EmotionClassifier:
        if probe:
            from .safety import probe as run_probe

            run_probe(path, "onnxruntime", providers=providers)
        return cls(RUNTIMES["onnxruntime"].open(path, threads=threads, providers=providers))

    @classmethod
    def from_tflite(
        cls,
        path: str | Path,
        delegate: str | None = None,
        num_threads: int | None = None,
        *,
        runtime: str | None = None,
        probe: bool = True,
    ) -> EmotionClassifier:
        """LiteRT on a workstation; ``tflite_runtime`` first when a board delegate is given.

        ``probe``: check the file in a helper process first (with the delegate), see the module docstring.
        """
        order = ("tflite_runtime", "litert", "tensorflow") if delegate else ("litert", "tflite_runtime", "tensorflow")
        name = runtime or next((r for r in order if RUNTIMES[r].available()), order[0])
        return cls(open_backend(path, name, probe=probe, delegate=delegate, num_threads=num_threads))

    @classmethod
    def from_file(
        cls, path: str | Path, *, runtime: str | None = None, probe: bool | None = None, **options: Any
    ) -> EmotionClassifier:
        """Any artifact (ONNX, TFLite, weights), its runtime picked by content unless named.

        ``probe``: None probes TFLite files only; True or False for any file (see the module docstring).
        """
        return cls(open_backend(path, runtime, probe=probe, **options))

    @classmethod
    def from_manifest(
        cls, folder: str | Path, name: str = "onnx", *, runtime: str | None = None, **options: Any
    ) -> EmotionClassifier:
        """Artifact ``name`` ("onnx", "tflite-int8", ... or "weights") of a manifest in ``folder``, after
        checking its sha256 against the manifest (``IntegrityError`` names both hashes)."""
        from .integrity import verified_path

        return cls.from_file(verified_path(folder, name), runtime=runtime, **options)

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
        if not np.isfinite(p).all():  # a damaged model, never valid input
            raise ModelFileError(f"{self.backend.path}: the model output NaN or inf")
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

    def analyze(
        self, image: Any, *, margin: float | None = None, detector: FaceDetector | None = None
    ) -> list[DetectedFace]:
        """Find the faces in a whole photo (path or RGB/grey array) and classify each, left to right.

        Needs the ``detect`` extra (OpenCV's Haar cascade); see ``xruntime_emotion.detect``.
        """
        from .detect import MARGIN, analyze

        return analyze(self, image, margin=MARGIN if margin is None else margin, detector=detector)
