"""ONNX via tf2onnx.convert.from_function (from_keras fails on Keras 3 models)."""

from __future__ import annotations

import re
from typing import Any

from xruntime_emotion.metadata import artifact_metadata

from ._deps import tf, tf2onnx
from .context import ExportContext

PRODUCER = "tf2onnx"


def model_proto(ctx: ExportContext) -> Any:
    t, convert = tf(), tf2onnx()
    model = ctx.keras_model(ctx.options.fixed_batch)
    spec = (t.TensorSpec((ctx.options.fixed_batch, 48, 48, 1), t.float32, name="input"),)

    @t.function(input_signature=spec)
    def fn(x: Any) -> dict[str, Any]:
        return {"probabilities": model(x, training=False)}

    proto, _ = convert.convert.from_function(fn, input_signature=spec, opset=ctx.options.opset)
    for value in (*proto.graph.input, *proto.graph.output):  # tf2onnx names the batch dim unk__NN
        dim = value.type.tensor_type.shape.dim[0]
        if dim.dim_param:
            dim.dim_param = "N"
    _canonical_names(proto.graph)
    return finish(proto, ctx, PRODUCER)


_COUNTER = re.compile(r"__(\d+)")


def _canonical_names(graph: Any) -> None:
    """Renumber the ``__N`` suffixes tf2onnx gives the names it makes, in order of appearance.

    tf2onnx numbers them from a process-wide counter whose value at conversion time varies between
    processes (``new_shape__58`` in one, ``new_shape__59`` in another); renumbered, two processes
    export byte-identical files. The map is one-to-one, so names stay unique.
    """
    numbers: dict[str, str] = {}

    def rename(name: str) -> str:
        return _COUNTER.sub(lambda m: "__" + numbers.setdefault(m.group(1), str(len(numbers))), name)

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    for t in graph.initializer:
        t.name = rename(t.name)
    for v in (*graph.input, *graph.output, *graph.value_info):
        v.name = rename(v.name)


def finish(proto: Any, ctx: ExportContext, producer: str) -> Any:
    """Metadata, checker, serialization: shared by both ONNX producers."""
    from ._deps import onnx

    o = onnx()
    o.helper.set_model_props(proto, artifact_metadata(ctx.ir, producer))
    o.checker.check_model(proto)
    return proto


def export(ctx: ExportContext) -> bytes:
    return bytes(model_proto(ctx).SerializeToString())
