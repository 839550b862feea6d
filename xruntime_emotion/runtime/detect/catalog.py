"""The detector catalog: one row per detector (how to make it, the settings it takes, its model file)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xruntime_emotion.runtime.detect.blazeface import BLAZEFACE, BlazeFaceDetector
from xruntime_emotion.runtime.detect.boxes import Detector
from xruntime_emotion.runtime.detect.haar import HaarDetector


@dataclass(frozen=True)
class DetectorKind:
    """One row of the detector catalog: how to make it, the settings it takes, and what it is."""

    make: Callable[..., Detector]
    about: str
    options: tuple[str, ...] = ()  # keyword settings ``make`` accepts
    model: Path | None = None  # the shipped model file, if the detector has one
    runtime: str = "onnxruntime"  # what runs it
    min_face: str | None = None  # the setting (one of ``options``) that is the smallest face side searched, px
    min_face_least: int = 1  # the least value ``make`` takes for it (the CLI's --min-face is checked against it)


DETECTORS: dict[str, DetectorKind] = {
    "blazeface": DetectorKind(
        BlazeFaceDetector,
        "MediaPipe BlazeFace short-range, ONNX on onnxruntime (shipped)",
        ("min_score", "min_face", "max_side", "threads"),
        BLAZEFACE,
        min_face="min_face",
        min_face_least=24,  # BlazeFaceDetector refuses less
    ),
    "haar": DetectorKind(
        HaarDetector,
        "OpenCV Haar frontal-face cascade (needs the detect extra)",
        ("min_size", "scale_factor", "min_neighbors", "max_side"),
        runtime="opencv",
        min_face="min_size",
    ),
}
DEFAULT_DETECTOR = "blazeface"


def build_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> Detector:
    """A new detector of that name with these settings (each must be one the row lists)."""
    kind = DETECTORS.get(name)
    if kind is None:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    foreign = sorted(set(options) - set(kind.options))
    if foreign:
        raise ValueError(f"detector {name!r} takes no {', '.join(foreign)} (it takes: {', '.join(kind.options)})")
    return kind.make(**options)


@functools.cache
def detector(name: str = DEFAULT_DETECTOR, **options: Any) -> Detector:
    """The shared detector of that name and settings, made once per process (both kinds are thread-safe)."""
    return build_detector(name, **options)


def default_detector() -> Detector:
    """The default detector, shared."""
    return detector(DEFAULT_DETECTOR)
