"""EmotionClassifier: the embeddable API. Imports no TensorFlow for ONNX and TFLite models.

Untrusted model files: every constructor takes ``probe``. With ``probe=True`` the file is first opened
and run in a helper process under a time and memory bound, so that a malformed file that would crash
or hang the interpreter ends the helper, not this process, and is refused with ``UnsafeModelError``.
The default (``probe=None``) probes ONNX and TFLite files, not weights files; ``default()`` checks the
shipped model's sha256 instead. A pass is cached (in this process and in the user's probe cache), so the
first open of a file pays the probe, later ones only its hash. Details and limits:
``xruntime_emotion.runtime.safety``.

Integrity: ``from_manifest(folder, name)`` loads an artifact recorded in ``export_manifest.json`` (or
the weights recorded in a training ``manifest.json``) only if its sha256 matches the manifest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from xruntime_emotion.errors import ModelFileError, XEmotionError
from xruntime_emotion.model.catalog import output_contract
from xruntime_emotion.model.labels import LABELS
from xruntime_emotion.runtime.backends import Backend, file_kind, open_backend
from xruntime_emotion.runtime.preprocess import Faces, prepare

if TYPE_CHECKING:
    from pathlib import Path

    from xruntime_emotion.runtime.detect import DetectedFace, Detector
    from xruntime_emotion.runtime.prediction import Prediction as Prediction


class EmotionClassifier:
    """Classify 48x48 grey face crops (or any face crop; see ``xruntime_emotion.runtime.preprocess``).

    Safe to call from several threads on one instance.
    """

    def __init__(self, backend: Backend, labels: tuple[str, ...] = LABELS) -> None:
        self.backend = backend
        self.labels = labels
        # looked up once, checked on every call; by ``file`` where the backend has it (no pathlib at start-up)
        self._contract = output_contract(os.path.basename(getattr(backend, "file", None) or backend.path))

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        probe: bool | None = None,
    ) -> EmotionClassifier:
        """onnxruntime; ``probe`` (default: yes) first runs the file in a helper process (module docstring)."""
        return cls(open_backend(path, "onnxruntime", probe=probe, threads=threads, providers=providers))

    @classmethod
    def from_tflite(
        cls,
        path: str | Path,
        delegate: str | None = None,
        threads: int | None = None,
        *,
        runtime: str | None = None,
        probe: bool = True,
        num_threads: int | None = None,
    ) -> EmotionClassifier:
        """LiteRT on a workstation; ``tflite_runtime`` first when a board delegate is given.

        ``probe``: check the file in a helper process first (with the delegate), see the module docstring.
        ``num_threads`` is the old name of ``threads`` (deprecated; removed in the next release).
        """
        if num_threads is not None:
            warnings.warn("from_tflite(num_threads=...) is deprecated; use threads=", DeprecationWarning, 2)
            threads = threads or num_threads
        if file_kind(path) != ".tflite":
            raise ModelFileError(f"{path}: not a TFLite file (from_file opens any model)")
        return cls(open_backend(path, runtime, probe=probe, delegate=delegate, threads=threads))

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
        from xruntime_emotion.runtime.integrity import verified_path

        return cls.from_file(verified_path(folder, name), runtime=runtime, **options)

    @classmethod
    def from_target(
        cls,
        target: str,
        artifacts: str | Path = "artifacts",
        *,
        delegate: str | None = None,
        runtime: str | None = None,
        threads: int | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> EmotionClassifier:
        """The artifact a deployment target runs (``xemotion targets``), from an `export` folder.

        The file is taken through the folder's export manifest (sha256 checked) when it records it. The
        target's NPU delegate is used where it exists; elsewhere an int8 model falls back to the CPU
        (``on_fallback`` hears why), while a Vela model, which only its NPU can run, is refused.
        """
        from pathlib import Path

        from xruntime_emotion.model.catalog import FORMATS, get_target
        from xruntime_emotion.runtime.integrity import entries, verified_path

        t = get_target(target)
        folder = Path(artifacts)
        recorded = t.format in entries(folder)
        model = verified_path(folder, t.format) if recorded else folder / FORMATS[t.format].filename
        if delegate is None and t.delegate:
            if Path(t.delegate).exists():
                delegate = t.delegate
            elif not FORMATS[t.format].runs_on_host:
                raise ModelFileError(f"target {t.name.value} runs on its NPU delegate {t.delegate}, not found here")
            elif on_fallback is not None:
                on_fallback(f"{t.delegate} not found; running {model.name} on the CPU")
        return cls.from_file(model, runtime=runtime, delegate=delegate, threads=threads)

    @classmethod
    def default(cls, **options: Any) -> EmotionClassifier:
        """The shipped model (xemotion's own FER2013 weights), on onnxruntime.

        Its bytes are read once, their sha256 checked against the package's manifest, and the session made
        from those bytes; no probe (unless ``probe=True``).
        """
        from xruntime_emotion.errors import IntegrityError
        from xruntime_emotion.runtime.integrity import entries
        from xruntime_emotion.runtime.safety import read_model_file
        from xruntime_emotion.util import sha256
        from xruntime_emotion.weights import DEFAULT_ONNX, FOLDER, shipped_file

        shipped_file(DEFAULT_ONNX)  # installed at all (else a WeightsError that says what to pass instead)
        recorded = entries(FOLDER).get("onnx")
        if recorded is None:
            raise IntegrityError(f"{FOLDER}: the package's manifest records no shipped ONNX model")
        file, expected, manifest = recorded
        path = shipped_file(file)  # its base name: never outside the folder
        data = read_model_file(path)
        actual = sha256(data).hexdigest()
        if actual != expected.lower():
            raise IntegrityError(f"{path}: sha256 is {actual}, but {manifest} records {expected}")
        options.setdefault("probe", False)
        return cls(open_backend(path, "onnxruntime", model_content=data, **options))

    # -- inference --------------------------------------------------------------------------
    def predict(self, faces: Faces) -> np.ndarray:
        """Probabilities (N,7) float32, in ``self.labels`` order, for one face or many."""
        x = prepare(faces)
        p = self.backend.predict(x)
        problem = self._contract.problem(p, len(x))
        if problem:  # a damaged or foreign model, never valid input
            raise ModelFileError(f"{self.backend.path}: its output is not {len(self.labels)} probabilities: {problem}")
        return p

    def classify(self, face: Faces) -> Prediction:
        """Label and probability of the first (usually only) face."""
        return self.classify_many(face)[0]

    def classify_many(self, faces: Faces) -> list[Prediction]:
        from xruntime_emotion.runtime.prediction import Prediction  # on first use: predict() never needs it

        probs = self.predict(faces)
        out = []
        for p in probs:
            i = int(p.argmax())
            out.append(Prediction(self.labels[i], float(p[i]), {k: float(v) for k, v in zip(self.labels, p)}))
        return out

    def analyze(
        self, image: Any, *, margin: float | None = None, detector: Detector | str | None = None
    ) -> list[DetectedFace]:
        """Find the faces in a whole photo (path or RGB/grey array) and classify each, left to right.

        ``detector``: a name from ``DETECTORS`` or a ``Detector``; the default (BlazeFace) needs no extra, Haar
        needs the ``detect`` extra. See ``xruntime_emotion.runtime.detect``.
        """
        from xruntime_emotion.runtime.detect import MARGIN, analyze

        return analyze(self, image, margin=MARGIN if margin is None else margin, detector=detector)


class ModelSpec(NamedTuple):
    """Which model to run, as the command line names it: a file, a deployment target, or the shipped model.

    Immutable and picklable, so that worker processes (the Ray engine's actors) each open their own classifier.
    A named tuple rather than a frozen dataclass: an app's start makes it in a tenth of the time.
    """

    model: Path | None = None
    target: str | None = None
    artifacts: str | Path = "artifacts"
    runtime: str | None = None
    delegate: str | None = None

    def open(
        self, threads: int | None = None, *, on_fallback: Callable[[str], None] | None = None
    ) -> EmotionClassifier:
        if self.target:
            return EmotionClassifier.from_target(
                self.target,
                self.artifacts,
                delegate=self.delegate,
                runtime=self.runtime,
                threads=threads,
                on_fallback=on_fallback,
            )
        if self.model is None:
            if self.runtime is not None or self.delegate is not None:
                raise XEmotionError("--runtime and --delegate need --model or --target (the shipped model is ONNX)")
            return EmotionClassifier.default(threads=threads)
        return EmotionClassifier.from_file(self.model, runtime=self.runtime, delegate=self.delegate, threads=threads)


def __getattr__(name: str) -> Any:
    """``Prediction`` (``runtime.prediction``) on first use: classifying with ``predict`` never builds it."""
    if name == "Prediction":
        from xruntime_emotion.runtime.prediction import Prediction

        globals()[name] = Prediction
        return Prediction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
