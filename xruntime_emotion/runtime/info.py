"""Describe a model file: IO contract, metadata, op/node counts, sha256. No TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.runtime.backends import file_kind
from xruntime_emotion.runtime.inspection import Tensor, inspect_file
from xruntime_emotion.util import sha256_file


def _tensor(t: Tensor) -> dict[str, Any]:
    q = None
    if t.scale:
        per_channel = len(t.scale) > 1
        q = {
            "scale": list(t.scale) if per_channel else t.scale[0],
            "zero_point": list(t.zero_point) if per_channel else (t.zero_point or (0,))[0],
        }
    return {"name": t.name, "shape": list(t.shape), "type": t.dtype, "quantization": q}


def _model_file(path: Path) -> dict[str, Any]:
    """ONNX and TFLite, read from the file itself (no runtime, no delegate): its own operators."""
    info = inspect_file(path)
    out: dict[str, Any] = {
        "inputs": [_tensor(t) for t in info.inputs],
        "outputs": [_tensor(t) for t in info.outputs],
        "nodes": len(info.operators),
        "ops": dict(sorted(info.op_counts().items())),
        "metadata": dict(info.metadata),
    }
    if info.kind == "onnx":
        out.update(producer=info.producer, opset=list(info.opset))
    else:
        out.update(subgraphs=info.subgraphs, buffers_bytes=info.buffers_bytes)
        custom = [op for op in info.operators if op.custom_options_bytes or not op.op.isupper()]
        if custom:  # e.g. Vela's ethos-u: the NPU's command stream, run only by its delegate
            out["custom_ops"] = [{"op": op.op, "options_bytes": op.custom_options_bytes} for op in custom]
    return out


def _weights(path: Path) -> dict[str, Any]:
    ir = ModelIR.load(path)
    return {
        "inputs": [{"name": "input", "shape": ["N", *ir.contract.shape], "type": "float32"}],
        "outputs": [{"name": "probabilities", "shape": ["N", len(ir.labels)], "type": "float32"}],
        "format": ir.provenance.format,
        "parameters": ir.num_parameters,
        "weights_sha256": ir.weights_sha256,
        "ir_hash": ir.ir_hash,
        "labels": list(ir.labels),
    }


_DESCRIBERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    ".onnx": _model_file,
    ".tflite": _model_file,
    ".h5": _weights,
    ".npz": _weights,
}


def describe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    kind = file_kind(path)
    try:
        details = _DESCRIBERS[kind](path)
    except ModelFileError:
        raise
    return {
        "file": str(path),
        "kind": kind.lstrip("."),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        **details,
    }


def shipped() -> list[dict[str, Any]]:
    """The models the package ships: the emotion model (ONNX and its weights) and each face detector of the
    catalog, with what runs it and, where it has one, its file described as ``describe`` does."""
    from xruntime_emotion.errors import MissingDependencyError
    from xruntime_emotion.runtime.detect import DETECTORS, cascade_path
    from xruntime_emotion.weights import default_onnx_path, default_weights_path

    out = [
        {"name": "emotion", "about": "xemotion's FER2013 weights, ONNX on onnxruntime (the default model)",
         "runtime": "onnxruntime", **describe(default_onnx_path())},
        {"name": "emotion-weights", "about": "the same weights as NumPy arrays (exports start here)",
         "runtime": "reference", **describe(default_weights_path())},
    ]  # fmt: skip
    for name, kind in DETECTORS.items():
        row: dict[str, Any] = {"name": f"detector {name}", "about": kind.about, "runtime": kind.runtime}
        if kind.model is not None:
            row.update(describe(kind.model))
        else:
            try:
                path = cascade_path()
                row.update(file=str(path), kind=path.suffix.lstrip("."), bytes=path.stat().st_size)
                row["sha256"] = sha256_file(path)
            except MissingDependencyError as exc:
                row["missing"] = str(exc)
        out.append(row)
    return out
