"""The artifact catalog, as data (and the deployment targets, ``TARGETS``: rows of ``model.targets``,
re-exported here and built on first use).

One row per artifact kind says everything the rest of xemotion needs to know about it: file name,
precision, who makes it, whether it runs on a host CPU, its output contract, the runtimes `verify`
runs it on, the int8 kernel sets the golden set records for it, whether it needs calibration, and the
fp32 kind it is judged against. `verify`'s matrix, the golden recordings, `export --all`, bench's
default rows and the tests' parametrisations are all derived from these rows; adding a kind is
adding a row (``register``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from xruntime_emotion.errors import XEmotionError

if TYPE_CHECKING:
    from xruntime_emotion.model.targets import TARGETS as TARGETS
    from xruntime_emotion.model.targets import Target as Target
    from xruntime_emotion.model.targets import TargetName as TargetName
    from xruntime_emotion.model.targets import get_target as get_target


class Precision(str, Enum):
    FP32 = "fp32"
    INT8 = "int8"


class OutputContract(NamedTuple):
    """What a row's model must return for N faces: float probabilities (N, classes) in [0, 1] summing to 1."""

    classes: int = 7
    row_sum_tolerance: float = 1e-4  # int8 outputs are multiples of one step: their sums are looser

    def problem(self, p: np.ndarray, n: int) -> str:
        """Why ``p`` (the outputs for ``n`` faces) breaks the contract; "" when it keeps it."""
        if p.shape != (n, self.classes):
            return f"shape {list(p.shape)} for {n} faces, expected [{n},{self.classes}]"
        if not np.isfinite(p).all():
            return "NaN or inf"
        if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
            return f"values outside [0,1] (min {p.min():.3g}, max {p.max():.3g})"
        worst = float(np.abs(p.sum(axis=1, dtype=np.float64) - 1).max()) if p.size else 0.0
        if worst > self.row_sum_tolerance:
            return f"rows sum to 1 only within {worst:.3g} (> {self.row_sum_tolerance:g})"
        return ""


INT8_OUTPUT = OutputContract(row_sum_tolerance=0.05)
FOREIGN_OUTPUT = INT8_OUTPUT  # a file the catalog does not name: the loosest contract of any row


class Format(NamedTuple):
    """One artifact kind: a row of the catalog. Rows (and ``OutputContract``) are named tuples rather than frozen
    dataclasses: an app's start builds them in a third of the time."""

    name: str
    filename: str
    precision: Precision
    runtime: str  # the runtime that validates it after export
    producer: str = ""  # the exporter that writes it: "module:function" (module imported lazily)
    verified_by: tuple[str, ...] = ()  # the runtimes `verify` runs it on, in order
    recorded_on: tuple[str, ...] = ()  # int8: the kernel sets whose outputs the golden set records
    calibrated: bool = False
    exported: bool = True  # part of `export --all`
    runs_on_host: bool = True  # False: needs its accelerator (Vela's Ethos-U)
    fixed_batch: int | None = None  # NPU artifacts are batch 1
    baseline: str | None = None  # int8: the fp32 kind its accuracy is judged against
    variant_of: str | None = None  # another producer's file of that kind (`--format onnx --via ir`)
    via: str = ""  # ONNX: the producer `--via` names (tf2onnx, ir)
    shipped: bool = False  # the package's own file (xruntime_emotion/weights/), not an export's
    output: OutputContract = OutputContract()
    description: str = ""


_ROWS: tuple[Format, ...] = (
    Format(
        "weights",
        "emotion_weights.npz",
        Precision.FP32,
        "keras",
        verified_by=("keras",),
        exported=False,
        shipped=True,
        description="IR weights (xemotion .npz or DeepFace .h5), run by Keras",
    ),
    Format(
        "deepface-h5",
        "facial_expression_model_weights.h5",
        Precision.FP32,
        "reference",
        "exporters.pipeline:make_deepface_h5",
        ("reference",),
        exported=False,
        description="the weights in DeepFace's legacy Keras layout: drops into DeepFace itself",
    ),
    Format(
        "onnx",
        "emotion_float32.onnx",
        Precision.FP32,
        "onnxruntime",
        "exporters.pipeline:make_onnx",
        ("onnxruntime",),
        via="tf2onnx",
        description="ONNX opset 17, dynamic batch",
    ),
    Format(
        "onnx-ir",
        "emotion_float32_ir.onnx",
        Precision.FP32,
        "onnxruntime",
        "exporters.pipeline:make_onnx_ir",
        ("onnxruntime",),
        exported=False,
        variant_of="onnx",
        via="ir",
        description="the same ONNX emitted straight from the IR, without TensorFlow (`--via ir`)",
    ),
    Format(
        "onnx-int8",
        "emotion_int8.onnx",
        Precision.INT8,
        "onnxruntime",
        "exporters.pipeline:make_onnx_int8",
        ("onnxruntime",),
        ("onnxruntime",),
        calibrated=True,
        baseline="onnx",
        output=INT8_OUTPUT,
        description="ONNX QDQ: uint8 activations, int8 per-channel weights",
    ),
    Format(
        "tflite-fp32",
        "emotion_float32.tflite",
        Precision.FP32,
        "litert",
        "exporters.pipeline:make_tflite_fp32",
        ("litert", "tflite_runtime"),
        description="TFLite float32",
    ),
    Format(
        "tflite-int8",
        "emotion_uint8_float32.tflite",
        Precision.INT8,
        "litert",
        "exporters.pipeline:make_tflite_int8",
        ("litert", "litert-builtin", "tflite_runtime"),
        ("litert", "litert-builtin"),  # XNNPACK and TFLite's builtin kernels round int8 differently
        calibrated=True,
        baseline="tflite-fp32",
        output=INT8_OUTPUT,
        description="TFLite full integer, uint8 input, float32 output (NXP's recipe)",
    ),
    Format(
        "vela",
        "emotion_uint8_float32_vela.tflite",
        Precision.INT8,
        "litert",
        "exporters.pipeline:make_vela",
        calibrated=True,
        runs_on_host=False,
        fixed_batch=1,
        baseline="tflite-fp32",
        output=INT8_OUTPUT,
        description="tflite-int8 (batch 1) compiled by Vela for the Ethos-U65",
    ),
)
FORMATS: dict[str, Format] = {f.name: f for f in _ROWS}


def exported_formats() -> tuple[str, ...]:
    """What `export --all` writes, in catalog order."""
    return tuple(f.name for f in FORMATS.values() if f.exported)


def exportable_formats() -> tuple[str, ...]:
    """Every kind `export --format` takes: those of `--all` first, then the others, in catalog order."""
    rows = [f for f in FORMATS.values() if f.producer]
    return tuple(f.name for f in sorted(rows, key=lambda f: not f.exported))


def describe_formats() -> list[str]:
    """One line per exportable kind: its name, file and what it is (for `export --help`)."""
    return [
        f"{f.name}: {f.filename}, {f.description}{'' if f.exported else ' (not in --all)'}"
        for f in (FORMATS[n] for n in exportable_formats())
    ]


def by_filename() -> dict[str, Format]:
    """Artifact file name -> its row, for every kind `export` writes (weights are an input, not listed)."""
    return {f.filename: f for f in FORMATS.values() if f.producer}


def output_contract(filename: str) -> OutputContract:
    """The output contract of the row a file name belongs to; ``FOREIGN_OUTPUT`` for any other file."""
    row = next((f for f in FORMATS.values() if f.filename == filename), None)
    return row.output if row else FOREIGN_OUTPUT


@contextmanager
def registered(row: Format) -> Iterator[Format]:
    """Add ``row`` to the catalog for the duration of a block (a plug-in format, or a test's)."""
    if row.name in FORMATS:
        raise XEmotionError(f"format {row.name!r} is already in the catalog")
    FORMATS[row.name] = row
    try:
        yield row
    finally:
        del FORMATS[row.name]


# Kept for one release: the names earlier versions exported.
IR_ONNX_FILENAME = FORMATS["onnx-ir"].filename
ALL_FORMATS: tuple[str, ...] = exported_formats()


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise XEmotionError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}") from None


_TARGET_NAMES = ("TARGETS", "Target", "TargetName", "get_target")


def __getattr__(name: str) -> Any:
    """The deployment targets (``model.targets``) on first use: a classifier never needs them at start-up."""
    if name in _TARGET_NAMES:
        from xruntime_emotion.model import targets

        value = getattr(targets, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
