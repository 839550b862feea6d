"""Runtimes as a registry: each entry opens an artifact and returns a ``Backend``.

A backend takes the network input (float32 (N,48,48,1) in [0,1]) and returns probabilities
(N,7) float32. It also exposes ``raw``: the runtime's own call on its native input, which
``bench`` compares against.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from xruntime_emotion.errors import MissingDependencyError, ModelFileError

if TYPE_CHECKING:
    from pathlib import Path


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


class RuntimeSpec(NamedTuple):
    """A runtime of the registry: what it opens, how it is found and installed, and its preference. A named tuple,
    as the catalog's rows are (``model.catalog.Format``): quick to build at an app's start."""

    name: str
    module: str  # "module[:function]" opening a backend (default function: open_backend), imported lazily
    probe: tuple[str, ...]  # importable modules, any one of which makes it available
    extra: str  # pip extra that installs it
    suffixes: tuple[str, ...]
    fixed_options: tuple[tuple[str, str], ...] = ()  # passed to the backend (which interpreter module)
    install: str = ""  # how to install it, where the pip extra is not the way
    threads_option: str = "num_threads"  # the backend's name for a thread count ("" = none)
    preference: int = 50  # lower first, among the runtimes of a file kind
    preference_with_delegate: int | None = None  # with an external delegate (a board), if it differs

    def available(self) -> bool:
        return any(_importable(m) for m in self.probe)

    def hint(self) -> str:
        return self.install or f"pip install 'xemotion[{self.extra}]'"

    def _load(self, path: str | Path, **options: Any) -> Backend:
        """The backend itself, without the probe: only ``open_backend`` calls this."""
        if not self.available():
            raise MissingDependencyError(f"runtime {self.name} is not installed; install it with: {self.hint()}")
        module, _, function = self.module.partition(":")
        opener: Callable[..., Backend] = getattr(importlib.import_module(module), function or "open_backend")
        return opener(path, **dict(self.fixed_options), **options)  # each backend makes its own Path, if any


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_LITERT = "xruntime_emotion.runtime.backends.litert"
RUNTIMES: dict[str, RuntimeSpec] = {
    r.name: r
    for r in (
        RuntimeSpec(
            "onnxruntime",
            "xruntime_emotion.runtime.backends.ort",
            ("onnxruntime",),
            "",
            (".onnx",),
            install="pip install xemotion",
            threads_option="threads",
            preference=0,
        ),
        RuntimeSpec(
            "litert",
            _LITERT,
            ("ai_edge_litert",),
            "litert",
            (".tflite",),
            (("interpreter", "ai_edge_litert.interpreter"), ("runtime", "litert")),
            preference=0,
            preference_with_delegate=1,
        ),
        RuntimeSpec(  # LiteRT without XNNPACK: TFLite's own kernels, as tflite_runtime 2.14 runs int8
            "litert-builtin",
            _LITERT,
            ("ai_edge_litert",),
            "litert",
            (".tflite",),
            (("interpreter", "ai_edge_litert.interpreter"), ("runtime", "litert"), ("kernels", "builtin")),
            preference=90,  # only when asked for by name
        ),
        RuntimeSpec(
            "tflite_runtime",
            _LITERT,
            ("tflite_runtime",),
            "litert",
            (".tflite",),
            (("interpreter", "tflite_runtime.interpreter"), ("runtime", "tflite_runtime")),
            "on i.MX boards it ships with the BSP; elsewhere pip install tflite-runtime (needs numpy<2)",
            preference=1,
            preference_with_delegate=0,  # what a board's BSP ships, with its NPU delegates
        ),
        RuntimeSpec(  # tf.lite: deprecated, the last resort; lives with the TensorFlow side
            "tensorflow", "exporters.runtimes:open_tflite", ("tensorflow",), "export", (".tflite",), preference=2
        ),
        RuntimeSpec(
            "keras",
            "exporters.runtimes:open_keras",
            ("tensorflow",),
            "export",
            (".npz", ".h5"),
            threads_option="",
            preference=0,
        ),
        RuntimeSpec(
            "reference",
            "xruntime_emotion.runtime.backends.reference",
            ("numpy",),
            "",
            (".npz", ".h5"),
            install="pip install xemotion",
            threads_option="",
            preference=1,
        ),
    )
}


def preference(kind: str, *, delegate: bool = False) -> tuple[str, ...]:
    """The runtimes of a file kind ('.onnx', '.tflite', '.npz', '.h5'), preferred first."""

    def rank(r: RuntimeSpec) -> int:
        return r.preference_with_delegate if delegate and r.preference_with_delegate is not None else r.preference

    return tuple(r.name for r in sorted((r for r in RUNTIMES.values() if kind in r.suffixes), key=rank))


# File kind by content.
_MAGIC: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda b: b[4:8] == b"TFL3", ".tflite"),
    (lambda b: b.startswith(b"\x89HDF"), ".h5"),
    (lambda b: b.startswith(b"PK"), ".npz"),
)


def file_kind(path: str | Path) -> str:
    """'.onnx', '.tflite', '.h5' or '.npz', by the file's bytes (ONNX has no magic: by suffix)."""
    from xruntime_emotion.runtime.safety import check_model_file

    check_model_file(path)  # a regular file of a sane size: a FIFO would block the read below
    with open(path, "rb") as f:
        head = f.read(16)
    for test, kind in _MAGIC:
        if test(head):
            return kind
    if os.path.splitext(path)[1].lower() == ".onnx":
        return ".onnx"
    raise ModelFileError(f"{path}: not a model xemotion knows (ONNX, TFLite, DeepFace .h5, xemotion .npz)")


def pick_runtime(path: str | Path, runtime: str | None = None, *, delegate: bool = False) -> RuntimeSpec:
    if runtime is not None:
        spec = RUNTIMES.get(runtime)
        if spec is None:
            raise ModelFileError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
        try:
            kind = file_kind(path)
        except ModelFileError:
            if not os.path.isfile(path):
                raise
            return spec  # content without magic and a name without suffix: the named runtime judges it
        if kind not in spec.suffixes:
            raise ModelFileError(f"{path}: runtime {runtime} cannot run a {kind} file")
        return spec
    kind = file_kind(path)
    order = preference(kind, delegate=delegate)
    for name in order:
        if RUNTIMES[name].available():
            return RUNTIMES[name]
    first = RUNTIMES[order[0]]
    raise MissingDependencyError(f"no runtime for {kind} files is installed; install one with: {first.hint()}")


def open_backend(path: str | Path, runtime: str | None = None, *, probe: bool | None = None, **options: Any) -> Backend:
    """The one door to a backend: every command and API path opens model files here.

    ``runtime`` picks one by name (else the preferred installed one for the file's kind). ``probe``
    (default: for the kinds in ``safety.PROBED_BY_DEFAULT``, ONNX and TFLite) first opens and runs the file
    in a helper process, or finds its pass in the probe cache, so that a malformed file cannot crash or hang
    this one (see ``safety``); the backend then loads the very bytes that were checked (``model_content``,
    which the backends of probed kinds take), except an ONNX file with external data, which it loads by path.
    """
    spec = pick_runtime(path, runtime, delegate=bool(options.get("delegate")))
    threads = options.pop("threads", None)  # one name for every runtime
    if threads and spec.threads_option:
        options[spec.threads_option] = threads
    if options.get("delegate") is None:
        options.pop("delegate", None)
    if probe or (probe is None and spec.available() and _probed_by_default(spec)):
        from xruntime_emotion.runtime.safety import has_external_data
        from xruntime_emotion.runtime.safety import probe as run_probe

        data = run_probe(path, spec.name, spec=spec._asdict(), **options)  # the spec: plug-in runtimes too
        if ".tflite" in spec.suffixes or ".onnx" in spec.suffixes and not has_external_data(data):
            options["model_content"] = data  # load the very bytes that were checked, not the path again
    return spec._load(path, **options)


def _probed_by_default(spec: RuntimeSpec) -> bool:
    from xruntime_emotion.runtime.safety import PROBED_BY_DEFAULT

    return bool(PROBED_BY_DEFAULT.intersection(spec.suffixes))


def in_fixed_batches(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    """``run`` on chunks of exactly ``batch`` rows (a fixed-batch model): the last chunk is padded with
    copies of its last row, and the padding's outputs dropped."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        outs.append(np.asarray(run(chunk))[:n])
    return np.concatenate(outs)


def predict_batched(backend: Backend, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """``backend.predict`` over ``x`` in fixed batches (bounded memory for whole splits)."""
    return np.concatenate([backend.predict(x[i : i + batch]) for i in range(0, len(x), batch)])
