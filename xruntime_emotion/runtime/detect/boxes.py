"""Boxes and what detectors return: a face's box, its confidence and landmarks, and a classified face."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from xruntime_emotion.errors import ImageError
from xruntime_emotion.runtime.prediction import Prediction


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in photo pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def expand(self, margin: float) -> Box:
        """The box grown by ``margin`` times its width and height on every side (may leave the photo)."""
        dx, dy = round(margin * self.w), round(margin * self.h)
        return Box(self.x - dx, self.y - dy, self.w + 2 * dx, self.h + 2 * dy)

    def iou(self, other: Box) -> float:
        """Intersection over union with another box."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def to_json(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class DetectedFace:
    """One face of a photo: where the detector found it and what the classifier says."""

    box: Box
    prediction: Prediction

    @property
    def label(self) -> str:
        return self.prediction.label

    @property
    def probability(self) -> float:
        return self.prediction.probability

    def to_json(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "box": self.box.to_json(),
            "label": p.label,
            "probability": p.probability,
            "probabilities": p.probabilities,
        }


@dataclass(frozen=True)
class Detection:
    """One face a detector found: its box, a confidence in [0, 1] and, when the detector gives them,
    landmarks in photo pixels (BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear,
    "right" being the person's)."""

    box: Box
    score: float = 1.0
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def eye_angle(self) -> float | None:
        """Degrees the eye line is turned clockwise on screen (None without eye landmarks)."""
        if len(self.landmarks) < 2:
            return None
        (rx, ry), (lx, ly) = self.landmarks[0], self.landmarks[1]
        return math.degrees(math.atan2(ly - ry, lx - rx))


class Detector(Protocol):
    """Anything that finds faces in a uint8 photo, RGB (H,W,3) or grey (H,W)."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def _uint8_photo(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise ImageError(f"detect needs a uint8 RGB (H,W,3) or grey (H,W) image, got {a.dtype} {a.shape}")
    return a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a
