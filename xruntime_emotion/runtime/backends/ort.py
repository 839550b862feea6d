"""onnxruntime backend. ``InferenceSession.run`` is thread-safe, so one session serves all threads.

``model_content``: the file's bytes, already read (and checked): the session is made from them and the
path is not opened again. Without it (or for a file with external data) onnxruntime reads the path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.model.labels import INPUT_SHAPE, LABELS

if TYPE_CHECKING:
    from pathlib import Path


class OrtBackend:
    runtime = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        model_content: bytes | None = None,
    ) -> None:
        import onnxruntime as ort

        self.file = os.fspath(path)  # a string: pathlib stays out of an app's start (``path`` makes the Path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                self.file if model_content is None else model_content,
                sess_options=opts,
                providers=providers or ["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.file}: onnxruntime cannot load it ({_first_line(exc)})") from exc
        try:
            self._check_contract(self.file)
            self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        except (ValueError, RuntimeError) as exc:  # e.g. names or metadata that are not UTF-8
            raise ModelFileError(f"{self.file}: unreadable inputs, outputs or metadata ({_first_line(exc)})") from exc

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.file)

    def _check_contract(self, path: str) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(outs) < 1:
            raise ModelFileError(f"{path}: expected one input and one output, got {len(ins)} and {len(outs)}")
        self.input_name = ins[0].name
        self.output_names = [outs[0].name]
        if outs[0].type != "tensor(float)":
            raise ModelFileError(f"{path}: output type {outs[0].type}, expected float32 probabilities")
        out_shape = outs[0].shape
        if len(out_shape) != 2 or out_shape[1] != len(LABELS):
            raise ModelFileError(f"{path}: output {outs[0].name} has shape {out_shape}, expected [N,{len(LABELS)}]")
        shape = ins[0].shape
        if len(shape) != 4 or list(shape[1:]) != list(INPUT_SHAPE):
            expected = ",".join(map(str, INPUT_SHAPE))
            raise ModelFileError(f"{path}: input {ins[0].name} has shape {shape}, expected [N,{expected}]")
        if ins[0].type != "tensor(float)":
            raise ModelFileError(f"{path}: input type {ins[0].type}, expected float32")
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise ModelFileError(f"{path}: input batch dimension {self.fixed_batch}, expected N or a positive size")

    def native_input(self, x: np.ndarray) -> np.ndarray:
        return x

    def raw(self, native: np.ndarray) -> Any:
        return self.session.run(self.output_names, {self.input_name: native})[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run(self.output_names, {self.input_name: x})[0]
        except Exception as exc:
            raise ModelFileError(f"{self.file}: inference failed ({_first_line(exc)})") from exc
        return _check_output(out, len(x), self.file)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_batch and len(x) != self.fixed_batch:
            from xruntime_emotion.runtime.backends import in_fixed_batches

            return in_fixed_batches(self._run, x, self.fixed_batch)
        return self._run(x)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _check_output(out: Any, n: int, path: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != (n, len(LABELS)):  # [7,N] has the right size and the wrong meaning
        raise ModelFileError(f"{path}: output shape {list(out.shape)} for {n} faces, expected [{n},{len(LABELS)}]")
    return out.astype(np.float32, copy=False)


def open_backend(path: str | os.PathLike[str], **options: Any) -> OrtBackend:
    return OrtBackend(path, **options)
