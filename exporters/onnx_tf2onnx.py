"""ONNX via tf2onnx.convert.from_function (from_keras fails on Keras 3 models)."""

from __future__ import annotations

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
    return finish(proto, ctx, PRODUCER)


def finish(proto: Any, ctx: ExportContext, producer: str) -> Any:
    """Metadata, checker, serialization: shared by both ONNX producers."""
    from ._deps import onnx

    o = onnx()
    o.helper.set_model_props(proto, artifact_metadata(ctx.ir, producer))
    o.checker.check_model(proto)
    return proto


def export(ctx: ExportContext) -> bytes:
    return bytes(model_proto(ctx).SerializeToString())
