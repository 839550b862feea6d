"""ONNX straight from the IR with onnx.helper: no TensorFlow (the ``onnx`` extra). One emitter per layer kind.

Same contract as the tf2onnx export: input ``input`` float32 [N,H,W,C] NHWC, output ``probabilities``
[N,classes]. The graph transposes NHWC -> NCHW once, runs ONNX's NCHW ops, and flattens after
transposing back, so that Flatten sees Keras' (H,W,C) order. ``finish`` (metadata and the checker)
is shared with every ONNX producer, the TensorFlow-side ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xruntime_emotion.errors import require
from xruntime_emotion.model.ir import Layer, LayerKind, ModelIR
from xruntime_emotion.model.metadata import artifact_metadata

PRODUCER = "xemotion-ir"


def onnx() -> Any:
    return require("onnx", "onnx")


def finish(proto: Any, ir: ModelIR, producer: str) -> Any:
    """Metadata and the ONNX checker: the last step of every ONNX producer."""
    o = onnx()
    o.helper.set_model_props(proto, artifact_metadata(ir, producer))
    o.checker.check_model(proto)
    return proto


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.last = "input"

    def add(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(onnx().helper.make_node(op, [self.last, *inputs], [name], name=name, **attrs))
        self.last = name
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(onnx().numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name


def _act(g: _Graph, layer: Layer) -> None:
    ops = {"relu": "Relu", "softmax": "Softmax", "linear": None}
    op = ops[layer.activation]
    if op:
        g.add(op, [], f"{layer.name}/{layer.activation}", **({"axis": -1} if op == "Softmax" else {}))


def _conv(g: _Graph, layer: Layer, w: tuple[np.ndarray, ...]) -> None:
    k = g.const(f"{layer.name}/kernel", w[0].transpose(3, 2, 0, 1))  # HWIO -> OIHW
    b = g.const(f"{layer.name}/bias", w[1])
    g.add("Conv", [k, b], layer.name, kernel_shape=list(layer.kernel), strides=list(layer.strides))
    _act(g, layer)


def _pool(op: str) -> Callable[[_Graph, Layer, tuple[np.ndarray, ...]], None]:
    def emit(g: _Graph, layer: Layer, w: tuple[np.ndarray, ...]) -> None:
        g.add(op, [], layer.name, kernel_shape=list(layer.kernel), strides=list(layer.strides))

    return emit


def _flatten(g: _Graph, layer: Layer, w: tuple[np.ndarray, ...]) -> None:
    g.add("Transpose", [], f"{layer.name}/to_nhwc", perm=[0, 2, 3, 1])
    g.add("Flatten", [], layer.name, axis=1)


def _dense(g: _Graph, layer: Layer, w: tuple[np.ndarray, ...]) -> None:
    k = g.const(f"{layer.name}/kernel", w[0])
    b = g.const(f"{layer.name}/bias", w[1])
    g.add("Gemm", [k, b], layer.name)
    _act(g, layer)


EMITTERS: dict[LayerKind, Callable[[_Graph, Layer, tuple[np.ndarray, ...]], None]] = {
    LayerKind.CONV2D: _conv,
    LayerKind.MAXPOOL2D: _pool("MaxPool"),
    LayerKind.AVGPOOL2D: _pool("AveragePool"),
    LayerKind.FLATTEN: _flatten,
    LayerKind.DENSE: _dense,
    LayerKind.DROPOUT: lambda g, layer, w: None,  # inference: identity
}


def model_proto(ir: ModelIR, opset: int = 17, fixed_batch: int | None = None) -> Any:
    o = onnx()
    h = o.helper
    g = _Graph()
    g.add("Transpose", [], "input/to_nchw", perm=[0, 3, 1, 2])
    for layer in ir.layers:
        EMITTERS[layer.kind](g, layer, ir.weights.get(layer.name, ()))
    g.nodes[-1].output[0] = "probabilities"
    batch: Any = fixed_batch or "N"
    graph = h.make_graph(
        g.nodes,
        "deepface_emotion",
        [h.make_tensor_value_info("input", o.TensorProto.FLOAT, [batch, *ir.contract.shape])],
        [h.make_tensor_value_info("probabilities", o.TensorProto.FLOAT, [batch, len(ir.labels)])],
        g.inits,
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name=PRODUCER)
    proto.ir_version = 8
    return finish(proto, ir, PRODUCER)
