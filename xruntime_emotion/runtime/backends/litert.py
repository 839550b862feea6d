"""TFLite backends: LiteRT (``ai_edge_litert``), ``tflite_runtime`` (what i.MX BSPs ship) and any other
module with the same ``Interpreter`` API (the TensorFlow side registers ``tf.lite`` this way), with
optional external delegates.

``kernels="builtin"`` turns off the default XNNPACK delegate, so TFLite's own kernels run: what
``tflite_runtime`` 2.14 runs for int8 (it has no int8 XNNPACK). The two kernel sets round int8
differently (measured here: up to 15 output steps apart), so each needs its own golden recording.

Input quantization and output dequantization come from the model's own tensors, never from
names or constants, so any .tflite with the (N,48,48,1) -> (N,7) contract runs. An interpreter is
not thread-safe: each thread gets its own (created on first use). Measured with 8 threads on 2 cores
(tflite-int8, one interpreter thread each): 4,994 faces/s this way, 3,097 with one shared
interpreter behind a lock.

TFLite's C++ side announces itself on file descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK delegate
for CPU."), which an embedding app cannot silence from Python: while an interpreter is made, fd 2 goes to
a temporary file, and what was written there comes back to stderr without TFLite's INFO lines.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import MissingDependencyError, ModelFileError
from xruntime_emotion.model.ir import CONTRACT, LABELS

CLASSES = len(LABELS)

# kernels -> OpResolverType member ("" = the interpreter's default: builtin kernels + XNNPACK)
_RESOLVERS: dict[str, str] = {"default": "", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


_fd2_lock = threading.Lock()  # one redirection of fd 2 at a time (interpreters made in several threads)


@contextlib.contextmanager
def _without_native_info() -> Iterator[None]:
    """For the block, fd 2 into a temporary file; afterwards its lines, less those starting ``INFO: ``, go to
    the real fd 2 (so other threads' messages of that moment are delayed, never lost)."""
    import tempfile

    with _fd2_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no stderr at all: nothing to keep clean
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                kept = [line for line in tmp.read().splitlines(keepends=True) if not line.startswith(b"INFO: ")]
                if kept:
                    with contextlib.suppress(OSError):
                        os.write(2, b"".join(kept))


def _resolver_enum(mod: Any) -> Any:
    """``OpResolverType`` of an interpreter module (``tf.lite`` keeps it under ``experimental``)."""
    return getattr(mod, "OpResolverType", None) or mod.experimental.OpResolverType


def _interpreter_module(interpreter: str | Any, runtime: str) -> Any:
    """The module holding ``Interpreter``: a module name (imported now) or the module itself."""
    if not isinstance(interpreter, str):
        return interpreter
    try:
        return importlib.import_module(interpreter)
    except (ImportError, AttributeError) as exc:  # tflite_runtime 2.14 fails at import under NumPy 2
        raise MissingDependencyError(f"{runtime} cannot be imported ({exc})") from exc


class LiteRTBackend:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interpreter: str | Any = "ai_edge_litert.interpreter",
        runtime: str = "litert",
        delegate: str | None = None,
        num_threads: int | None = None,
        delegate_options: dict[str, str] | None = None,
        model_content: bytes | None = None,
        kernels: str = "default",
    ) -> None:
        if kernels not in _RESOLVERS:
            raise ModelFileError(f"kernels must be one of {', '.join(_RESOLVERS)}, got {kernels!r}")
        self.path = path = Path(path)
        self.runtime = runtime if kernels == "default" else f"{runtime}-{kernels}"
        self.kernels = kernels
        self._mod = _interpreter_module(interpreter, runtime)
        self._delegate_path = delegate
        self._delegate_options = delegate_options or {}
        self._num_threads = num_threads
        self._model = model_content if model_content is not None else _read(path)
        self._local = threading.local()
        interp = self._interpreter()  # validates the file in this thread
        try:
            inp, out = interp.get_input_details(), interp.get_output_details()
        except (ValueError, RuntimeError) as exc:  # e.g. a tensor name that is not UTF-8
            raise ModelFileError(f"{path}: unreadable input or output tensors ({str(exc).strip()[:300]})") from exc
        if len(inp) != 1 or len(out) != 1:
            raise ModelFileError(f"{path}: expected one input and one output, got {len(inp)} and {len(out)}")
        self.input, self.output = inp[0], out[0]
        sig = list(self.input.get("shape_signature", self.input["shape"]))
        if len(sig) != 4 or list(sig[1:]) != list(CONTRACT.shape):
            raise ModelFileError(f"{path}: input shape {sig}, expected [N,{','.join(map(str, CONTRACT.shape))}]")
        out_shape = list(self.output.get("shape_signature", self.output["shape"]))
        if len(out_shape) != 2 or out_shape[1] != CLASSES:  # [7,N] has the right size and the wrong meaning
            raise ModelFileError(f"{path}: output shape {out_shape}, expected [N,{CLASSES}]")
        out_dtype = np.dtype(self.output["dtype"])
        if not (out_dtype == np.float32 or out_dtype in (np.uint8, np.int8) and self.output["quantization"][0]):
            raise ModelFileError(f"{path}: output type {out_dtype}, expected float32 or quantized int8 probabilities")
        self.fixed_batch: int | None = None if sig[0] == -1 else int(sig[0])
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise ModelFileError(f"{path}: input batch dimension {self.fixed_batch}, expected -1 or a positive size")
        self.in_dtype = np.dtype(self.input["dtype"])
        self.in_scale, self.in_zero = self.input["quantization"]
        self.out_scale, self.out_zero = self.output["quantization"]
        if self.in_dtype.kind not in "fiu":
            raise ModelFileError(f"{path}: input type {self.in_dtype}, expected float or integer")
        if self.in_dtype.kind in "iu" and not self.in_scale:
            raise ModelFileError(f"{path}: integer input without quantization parameters")

    def _interpreter(self) -> Any:
        interp = getattr(self._local, "interp", None)
        if interp is not None:
            return interp
        delegates = []
        if self._delegate_path:
            if "/" in self._delegate_path and not Path(self._delegate_path).is_file():
                # a bare name is for dlopen's search path; a missing path would make LiteRT's
                # half-built Delegate complain again at garbage collection
                raise ModelFileError(f"delegate {self._delegate_path} not found")
            try:
                delegates = [self._mod.load_delegate(self._delegate_path, self._delegate_options)]
            except (ValueError, OSError, RuntimeError) as exc:
                raise ModelFileError(f"delegate {self._delegate_path} failed to load ({exc})") from exc
        try:
            resolver = _RESOLVERS[self.kernels]
            extra = {"experimental_op_resolver_type": getattr(_resolver_enum(self._mod), resolver)} if resolver else {}
            with _without_native_info():  # XNNPACK announces itself at the first allocation
                interp = self._mod.Interpreter(
                    model_content=self._model,
                    experimental_delegates=delegates or None,
                    num_threads=self._num_threads,
                    **extra,
                )
                interp.allocate_tensors()
            batch = int(interp.get_input_details()[0]["shape"][0])
        except (ValueError, RuntimeError, IndexError) as exc:
            raise ModelFileError(f"{self.path}: not a loadable TFLite model ({str(exc).strip()[:300]})") from exc
        self._local.interp = interp
        self._local.batch = batch
        return interp

    def native_input(self, x: np.ndarray) -> np.ndarray:
        """Quantize float [0,1] input with the model's own (scale, zero point)."""
        if self.in_dtype.kind == "f":
            return x.astype(self.in_dtype, copy=False)
        info = np.iinfo(self.in_dtype)
        q = np.rint(x / np.float32(self.in_scale)) + self.in_zero
        return np.clip(q, info.min, info.max).astype(self.in_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if y.dtype.kind == "f":
            return y.astype(np.float32, copy=False)
        return ((y.astype(np.float32) - np.float32(self.out_zero)) * np.float32(self.out_scale)).astype(np.float32)

    def raw(self, native: np.ndarray) -> Any:
        interp = self._interpreter()
        try:
            if self.fixed_batch is None and self._local.batch != len(native):
                interp.resize_tensor_input(self.input["index"], native.shape)
                interp.allocate_tensors()
                self._local.batch = len(native)
            interp.set_tensor(self.input["index"], native)
            interp.invoke()
            return interp.get_tensor(self.output["index"])
        except BaseException:
            # A failed resize, allocation, set_tensor or invoke can leave the interpreter resized or
            # half-allocated while _local.batch still holds the old size: the next call of that size
            # would skip the resize and fail too. Drop this thread's interpreter; the next call makes
            # a fresh one. Success costs nothing extra.
            del self._local.interp, self._local.batch
            raise

    def predict(self, x: np.ndarray) -> np.ndarray:
        from xruntime_emotion.runtime.backends import in_fixed_batches

        native = self.native_input(x)
        step = self.fixed_batch
        try:
            y = self.raw(native) if step is None else in_fixed_batches(self.raw, native, step)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{self.path}: inference failed ({str(exc).strip()[:300]})") from exc
        y = self._dequantize(np.asarray(y))
        if y.size != len(x) * CLASSES:
            raise ModelFileError(f"{self.path}: {y.size} output values for {len(x)} faces, expected {len(x) * CLASSES}")
        return y.reshape(len(x), CLASSES)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror})") from None


def open_backend(path: str | os.PathLike[str], **options: Any) -> LiteRTBackend:
    return LiteRTBackend(path, **options)
