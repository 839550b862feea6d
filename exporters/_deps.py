"""Lazy imports of the export toolchain, each with an install hint."""

from __future__ import annotations

import os
from typing import Any

from xruntime_emotion.errors import require

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf() -> Any:
    return require("tensorflow", "export")


def keras() -> Any:
    tf()
    return require("keras", "export")


def tf2onnx() -> Any:
    return require("tf2onnx", "export")


def onnx() -> Any:
    return require("onnx", "onnx")
