"""Runtimes as a registry: each entry opens an artifact and returns a ``Backend``.

A backend takes the network input (float32 (N,48,48,1) in [0,1]) and returns probabilities
(N,7) float32. It also exposes ``raw``: the runtime's own call on its native input, which
``bench`` compares against.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import MissingDependencyError, ModelFileError


@runtime_checkable
class Backend(Protocol):
    runtime: str
    path: Path
    fixed_batch: int | None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 (N,48,48,1) in [0,1] -> float32 probabilities (N,7). Thread-safe."""
        ...

    def native_input(self, x: np.ndarray) -> np.ndarray:
        """The runtime's own input for ``x`` (e.g. uint8 for a quantized model)."""
        ...

    def raw(self, native: np.ndarray) -> Any:
        """The runtime's bare call on native input, for benchmarks."""
        ...


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    module: str  # the backend module, imported lazily
    probe: tuple[str, ...]  # importable modules, any one of which makes it available
    extra: str  # pip extra that installs it
    suffixes: tuple[str, ...]
    fixed_options: tuple[tuple[str, str], ...] = ()  # passed to the backend (which interpreter module)
    install: str = ""  # how to install it, where the pip extra is not the way
    threads_option: str = "num_threads"  # the backend's name for a thread count ("" = none)

    def available(self) -> bool:
        return any(_importable(m) for m in self.probe)

    def hint(self) -> str:
        return self.install or f"pip install 'xemotion[{self.extra}]'"

    def open(self, path: str | Path, **options: Any) -> Backend:
        if not self.available():
            raise MissingDependencyError(f"runtime {self.name} is not installed; install it with: {self.hint()}")
        mod = importlib.import_module(self.module)
        opener: Callable[..., Backend] = mod.open_backend
        return opener(Path(path), **dict(self.fixed_options), **options)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_LITERT = "xruntime_emotion.runtimes.litert"
RUNTIMES: dict[str, RuntimeSpec] = {
    r.name: r
    for r in (
        RuntimeSpec(
            "onnxruntime",
            "xruntime_emotion.runtimes.ort",
            ("onnxruntime",),
            "",
            (".onnx",),
            (),
            "pip install xemotion",
            "threads",
        ),
        RuntimeSpec("litert", _LITERT, ("ai_edge_litert",), "litert", (".tflite",), (("runtime", "litert"),)),
        RuntimeSpec(  # LiteRT without XNNPACK: TFLite's own kernels, as tflite_runtime 2.14 runs int8
            "litert-builtin",
            _LITERT,
            ("ai_edge_litert",),
            "litert",
            (".tflite",),
            (("runtime", "litert"), ("kernels", "builtin")),
        ),
        RuntimeSpec(
            "tflite_runtime",
            _LITERT,
            ("tflite_runtime",),
            "litert",
            (".tflite",),
            (("runtime", "tflite_runtime"),),
            "on i.MX boards it ships with the BSP; elsewhere pip install tflite-runtime (needs numpy<2)",
        ),  # fmt: skip
        RuntimeSpec("tensorflow", _LITERT, ("tensorflow",), "export", (".tflite",), (("runtime", "tensorflow"),)),
        RuntimeSpec(
            "keras", "xruntime_emotion.runtimes.keras", ("tensorflow",), "export", (".npz", ".h5"), threads_option=""
        ),
        RuntimeSpec(
            "reference",
            "xruntime_emotion.runtimes.reference",
            ("numpy",),
            "",
            (".npz", ".h5"),
            (),
            "pip install xemotion",
            "",
        ),
    )
}

# File kind by content; each kind lists its runtimes in order of preference.
_MAGIC: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda b: b[4:8] == b"TFL3", ".tflite"),
    (lambda b: b.startswith(b"\x89HDF"), ".h5"),
    (lambda b: b.startswith(b"PK"), ".npz"),
)
PREFERENCE: dict[str, tuple[str, ...]] = {
    ".onnx": ("onnxruntime",),
    ".tflite": ("litert", "tflite_runtime", "tensorflow"),
    ".npz": ("keras", "reference"),
    ".h5": ("keras", "reference"),
}


def file_kind(path: str | Path) -> str:
    """'.onnx', '.tflite', '.h5' or '.npz', by the file's bytes (ONNX has no magic: by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ModelFileError(f"{path}: empty file")
    for test, kind in _MAGIC:
        if test(head):
            return kind
    if path.suffix.lower() == ".onnx":
        return ".onnx"
    raise ModelFileError(f"{path}: not a model xemotion knows (ONNX, TFLite, DeepFace .h5, xemotion .npz)")


def pick_runtime(path: str | Path, runtime: str | None = None) -> RuntimeSpec:
    kind = file_kind(path)
    if runtime is not None:
        spec = RUNTIMES.get(runtime)
        if spec is None:
            raise ModelFileError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
        if kind not in spec.suffixes:
            raise ModelFileError(f"{path}: runtime {runtime} cannot run a {kind} file")
        return spec
    for name in PREFERENCE[kind]:
        if RUNTIMES[name].available():
            return RUNTIMES[name]
    first = RUNTIMES[PREFERENCE[kind][0]]
    raise MissingDependencyError(f"no runtime for {kind} files is installed; install one with: {first.hint()}")


def open_backend(path: str | Path, runtime: str | None = None, *, probe: bool | None = None, **options: Any) -> Backend:
    """Open ``path``; ``probe`` (default: for TFLite files) first checks it in a helper process (see safety)."""
    spec = pick_runtime(path, runtime)
    threads = options.pop("threads", None)  # one name for every runtime
    if threads and spec.threads_option:
        options[spec.threads_option] = threads
    if probe or (probe is None and spec.available() and _probed_by_default(path)):
        from ..safety import probe as run_probe

        data = run_probe(path, spec.name, **options)
        if ".tflite" in spec.suffixes:
            options["model_content"] = data  # load the very bytes that were checked
    return spec.open(path, **options)


def _probed_by_default(path: str | Path) -> bool:
    from ..safety import PROBED_BY_DEFAULT

    return file_kind(path) in PROBED_BY_DEFAULT


def predict_batched(backend: Backend, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """``backend.predict`` over ``x`` in fixed batches (bounded memory for whole splits)."""
    return np.concatenate([backend.predict(x[i : i + batch]) for i in range(0, len(x), batch)])
