"""Artifact formats and deployment targets, as data.

A format names what an exporter writes; a target names which format a board runs, on which
runtime, with which delegate. The exporters (TensorFlow side) and the runtimes (app side) both
read these tables; neither hard-codes a format in an if-chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Precision(str, Enum):
    FP32 = "fp32"
    INT8 = "int8"


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    precision: Precision
    runtime: str  # the runtime that validates and verifies it
    calibrated: bool = False
    fixed_batch: int | None = None  # NPU artifacts are batch 1
    description: str = ""
    baseline: str | None = None  # int8: the fp32 format its accuracy is judged against


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("keras", "emotion_weights.npz", Precision.FP32, "keras", description="IR weights, run by Keras"),
        Format(
            "onnx", "emotion_float32.onnx", Precision.FP32, "onnxruntime", description="ONNX opset 17, dynamic batch"
        ),
        Format(
            "onnx-int8",
            "emotion_int8.onnx",
            Precision.INT8,
            "onnxruntime",
            calibrated=True,
            description="ONNX QDQ: uint8 activations, int8 per-channel weights",
            baseline="onnx",
        ),
        Format("tflite-fp32", "emotion_float32.tflite", Precision.FP32, "litert", description="TFLite float32"),
        Format(
            "tflite-int8",
            "emotion_uint8_float32.tflite",
            Precision.INT8,
            "litert",
            calibrated=True,
            description="TFLite full integer, uint8 input, float32 output (NXP's recipe)",
            baseline="tflite-fp32",
        ),
        Format(
            "vela",
            "emotion_uint8_float32_vela.tflite",
            Precision.INT8,
            "litert",
            calibrated=True,
            fixed_batch=1,
            description="tflite-int8 (batch 1) compiled by Vela for the Ethos-U65",
            baseline="tflite-fp32",
        ),
    )
}

# The ONNX emitted from the IR (`--via ir`), named apart so both producers can sit side by side.
IR_ONNX_FILENAME = "emotion_float32_ir.onnx"

# What `export --all` writes.
ALL_FORMATS: tuple[str, ...] = ("onnx", "onnx-int8", "tflite-fp32", "tflite-int8", "vela")


class TargetName(str, Enum):
    CPU = "cpu"
    IMX8MP = "imx8mp"
    IMX93 = "imx93"


@dataclass(frozen=True)
class Target:
    name: TargetName
    board: str
    format: str
    runtime: str
    delegate: str | None
    fixed_batch: int | None
    formats: tuple[str, ...]  # everything `export --target` builds for it
    note: str = ""


TARGETS: dict[str, Target] = {
    t.name.value: t
    for t in (
        Target(TargetName.CPU, "generic CPU (x86-64, Arm)", "onnx", "onnxruntime", None, None, ("onnx",)),
        Target(
            TargetName.IMX8MP,
            "NXP i.MX 8M Plus (VeriSilicon NPU)",
            "tflite-int8",
            "tflite_runtime",
            "/usr/lib/libvx_delegate.so",
            1,
            ("tflite-int8",),
            "fixed batch 1, run by the VX delegate",
        ),
        Target(
            TargetName.IMX93,
            "NXP i.MX 93 (Arm Ethos-U65)",
            "vela",
            "tflite_runtime",
            "/usr/lib/libethosu_delegate.so",
            1,
            ("tflite-int8", "vela"),
            "Vela-compiled for ethos-u65-256",
        ),
    )
}


def get_format(name: str) -> Format:
    from .errors import XEmotionError

    try:
        return FORMATS[name]
    except KeyError:
        raise XEmotionError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}") from None


def get_target(name: str) -> Target:
    from .errors import XEmotionError

    try:
        return TARGETS[name]
    except KeyError:
        raise XEmotionError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}") from None
