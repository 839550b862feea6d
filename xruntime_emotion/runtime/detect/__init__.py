"""Whole photos: find the faces, crop each square (upright along the eye line when the detector gives
eyes), classify it.

Two detectors, by name in ``DETECTORS``:
- ``blazeface`` (the default): MediaPipe's BlazeFace short-range model, shipped in the package as ONNX and run
  by onnxruntime over a pyramid of the whole photo, then on a view of each face it proposes; needs only
  numpy, Pillow and onnxruntime. Its boxes are framed like FER2013 crops, so they go to the emotion model as they are.
- ``haar``: OpenCV's bundled Haar cascade; needs the ``detect`` extra: ``pip install 'xemotion[detect]'``
  (opencv-python-headless < 5; the cascade files ship inside that package up to 4.x, and OpenCV 5 moved
  ``CascadeClassifier`` out of it).

One module per concern: ``boxes`` (Box, Detection, DetectedFace), ``search`` (BlazeFace's anchors, the
pyramid's levels and the views), ``nms`` (merging raw boxes), ``framing`` (the FER2013 square from a BlazeFace box),
``blazeface`` and ``haar`` (the two detectors), ``crops`` (crops, ``analyze``, ``annotate``); the catalog here.

    from xruntime_emotion import EmotionClassifier
    for face in EmotionClassifier.default().analyze("photo.jpg"):
        print(face.box, face.label, face.probability)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xruntime_emotion.runtime.detect.blazeface import BLAZEFACE, BLAZEFACE_SHA256, BlazeFaceDetector
from xruntime_emotion.runtime.detect.boxes import Box, DetectedFace, Detection, Detector
from xruntime_emotion.runtime.detect.crops import MARGIN, aligned_crop, analyze, annotate, find_faces
from xruntime_emotion.runtime.detect.framing import frame, framing_features
from xruntime_emotion.runtime.detect.haar import CASCADE, FaceDetector, HaarDetector, cascade_path
from xruntime_emotion.runtime.detect.nms import Candidate
from xruntime_emotion.runtime.detect.search import levels

__all__ = [
    "BLAZEFACE",
    "BLAZEFACE_SHA256",
    "CASCADE",
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "MARGIN",
    "BlazeFaceDetector",
    "Box",
    "Candidate",
    "DetectedFace",
    "Detection",
    "Detector",
    "DetectorKind",
    "FaceDetector",
    "HaarDetector",
    "aligned_crop",
    "analyze",
    "annotate",
    "build_detector",
    "cascade_path",
    "default_detector",
    "detector",
    "find_faces",
    "frame",
    "framing_features",
    "levels",
]


@dataclass(frozen=True)
class DetectorKind:
    """One row of the detector catalog: how to make it, the settings it takes, and what it is."""

    make: Callable[..., Detector]
    about: str
    options: tuple[str, ...] = ()  # keyword settings ``make`` accepts (the CLI's --min-face is haar's min_size)
    model: Path | None = None  # the shipped model file, if the detector has one
    runtime: str = "onnxruntime"  # what runs it


DETECTORS: dict[str, DetectorKind] = {
    "blazeface": DetectorKind(
        BlazeFaceDetector,
        "MediaPipe BlazeFace short-range, ONNX on onnxruntime (shipped)",
        ("min_score", "min_face", "max_side", "threads"),
        BLAZEFACE,
    ),
    "haar": DetectorKind(
        HaarDetector,
        "OpenCV Haar frontal-face cascade (needs the detect extra)",
        ("min_size", "scale_factor", "min_neighbors", "max_side"),
        runtime="opencv",
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
