"""Describe a model file: IO contract, metadata, op/node counts, sha256. No TensorFlow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ModelFileError
from .ir import ModelIR, sha256_file
from .runtimes import file_kind, open_backend


def _onnx(path: Path) -> dict[str, Any]:
    backend = open_backend(path, "onnxruntime")
    s = backend.session  # type: ignore[attr-defined]
    out: dict[str, Any] = {
        "inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in s.get_inputs()],
        "outputs": [{"name": o.name, "shape": o.shape, "type": o.type} for o in s.get_outputs()],
        "metadata": dict(s.get_modelmeta().custom_metadata_map),
        "producer": s.get_modelmeta().producer_name,
    }
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        ops = Counter(n.op_type for n in proto.graph.node)
        out.update(
            nodes=len(proto.graph.node),
            ops=dict(sorted(ops.items())),
            opset=[f"{o.domain or 'ai.onnx'}:{o.version}" for o in proto.opset_import],
        )
    except ImportError:
        out["nodes"] = "install xemotion[onnx] to count nodes"
    return out


def _tflite(path: Path) -> dict[str, Any]:
    backend = open_backend(path)
    interp = backend._interpreter()  # type: ignore[attr-defined]

    def tensor(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero = d["quantization"]
        return {
            "name": d["name"],
            "shape": [int(v) for v in d.get("shape_signature", d["shape"])],
            "type": d["dtype"].__name__,
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None,
        }

    try:
        ops = [op["op_name"] for op in interp._get_ops_details()]
    except (AttributeError, RuntimeError, ValueError):
        ops = []
    return {
        "inputs": [tensor(d) for d in interp.get_input_details()],
        "outputs": [tensor(d) for d in interp.get_output_details()],
        "runtime": backend.runtime,
        "nodes": len(ops),
        "ops": dict(sorted(Counter(ops).items())),
    }


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
    ".onnx": _onnx,
    ".tflite": _tflite,
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
