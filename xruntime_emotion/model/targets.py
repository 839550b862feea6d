"""The deployment targets, as data: one row of ``TARGETS`` per board (the artifact it runs, its runtime and NPU
delegate). The artifact kinds they name are rows of ``model.catalog``, which re-exports these names; they live
apart so that a classifier's start-up does not build them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from xruntime_emotion.errors import XEmotionError


class TargetName(str, Enum):
    CPU = "cpu"
    IMX8MP = "imx8mp"
    IMX93 = "imx93"


@dataclass(frozen=True)
class Target:
    """A deployment target: the board, the artifact it runs, its runtime and NPU delegate."""

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


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise XEmotionError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}") from None
