"""TFLite float32 and full-integer int8 (uint8 in, float32 out, as NXP's recipe), from Keras models
via ``TFLiteConverter.from_keras_model`` (``from_concrete_functions`` gave broken files)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from xruntime_emotion.errors import ExportError

from ._deps import tf
from .context import ExportContext

PRODUCER = "tflite-converter"


def _converter(ctx: ExportContext, batch_size: int | None) -> Any:
    return tf().lite.TFLiteConverter.from_keras_model(ctx.keras_model(batch_size))


def _set_granularity(conv: Any, granularity: str) -> None:
    """The converter offers per-tensor weights only through a private flag: isolated here."""
    if granularity not in ("per-channel", "per-tensor"):
        raise ExportError(f"granularity must be per-channel or per-tensor, got {granularity!r}")
    conv._experimental_disable_per_channel = granularity == "per-tensor"


def export_fp32(ctx: ExportContext) -> bytes:
    conv = _converter(ctx, ctx.options.fixed_batch)
    return bytes(conv.convert())


def int8_bytes(ctx: ExportContext, batch_size: int | None) -> bytes:
    """Full integer, builtin ops only; uint8 input scale 1/255 zero point 0; float32 output."""

    def build() -> bytes:
        t = tf()
        calib = ctx.calibration_float()
        conv = _converter(ctx, batch_size)
        conv.optimizations = [t.lite.Optimize.DEFAULT]

        def representative() -> Iterator[list[Any]]:
            for x in calib:
                yield [x[None]]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = t.uint8
        conv.inference_output_type = t.float32
        _set_granularity(conv, ctx.options.granularity)
        model = bytes(conv.convert())
        check_uint8_input(model)
        return model

    return ctx.cached(f"tflite-int8:{batch_size}:{ctx.options.granularity}", build)


def check_uint8_input(model: bytes) -> None:
    """The input must take raw pixels: uint8, scale 1/255, zero point 0."""
    from xruntime_emotion.runtime.inspection import inspect_bytes

    d = inspect_bytes(model, "tflite").inputs[0]
    scale, zero = (d.scale or (0.0,))[0], (d.zero_point or (0,))[0]
    if d.dtype != "uint8" or zero != 0 or abs(scale * 255 - 1) > 1e-6:
        raise ExportError(
            f"int8 input quantization is {d.dtype} scale {scale} zero point {zero}, "
            "expected uint8 1/255, 0: the calibration sample must contain pixels 0 and 255"
        )


def export_int8(ctx: ExportContext) -> bytes:
    return int8_bytes(ctx, ctx.options.fixed_batch)


def tflite_ops(model: bytes) -> list[str]:
    """The file's own operator names (custom ops by their custom code), read from the flatbuffer."""
    from xruntime_emotion.runtime.inspection import inspect_bytes

    return [op.op for op in inspect_bytes(model, "tflite").operators]
