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
``blazeface`` and ``haar`` (the two detectors), ``catalog`` (DETECTORS, one row each), ``crops`` (crops,
``analyze``, ``annotate``).

    from xruntime_emotion import EmotionClassifier
    for face in EmotionClassifier.default().analyze("photo.jpg"):
        print(face.box, face.label, face.probability)
"""

from __future__ import annotations

from xruntime_emotion.runtime.detect.blazeface import BLAZEFACE, BLAZEFACE_SHA256, BlazeFaceDetector
from xruntime_emotion.runtime.detect.boxes import Box, DetectedFace, Detection, Detector
from xruntime_emotion.runtime.detect.catalog import (
    DEFAULT_DETECTOR,
    DETECTORS,
    DetectorKind,
    build_detector,
    default_detector,
    detector,
)
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
