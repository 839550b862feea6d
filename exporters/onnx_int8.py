"""onnx-int8: onnxruntime ``quantize_static``, QDQ, uint8 activations / int8 per-channel weights,
calibrated on the same Training sample as TFLite int8. No TensorFlow needed beyond the fp32 ONNX."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from xruntime_emotion.model.onnx_ir import finish

from .context import ExportContext

PRODUCER = "onnxruntime.quantization"


def export(ctx: ExportContext, fp32: bytes) -> bytes:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = ctx.calibration_float()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, Any] | None:
            x = next(self.it, None)
            return None if x is None else {"input": x[None]}

    with tempfile.TemporaryDirectory(prefix="xemotion-q-") as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=ctx.options.reduce_range,
            calibrate_method=CalibrationMethod.MinMax,
        )
        import onnx

        proto = onnx.load(str(dst))
        return bytes(finish(proto, ctx.ir, PRODUCER).SerializeToString())


def settings(ctx: ExportContext) -> dict[str, Any]:
    return {
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per-channel",
        "calibration_method": "MinMax",
        "reduce_range": ctx.options.reduce_range,
        "reduce_range_reason": "7-bit weights avoid U8S8 saturation on x86 CPUs without VNNI (onnxruntime's advice)",
    }
