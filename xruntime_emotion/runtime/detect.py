"""Whole photos: find faces with OpenCV's bundled Haar cascade, crop each with a margin, classify it.

Needs the ``detect`` extra: ``pip install 'xemotion[detect]'`` (opencv-python-headless < 5; the cascade
files ship inside that package up to 4.x, and OpenCV 5 moved ``CascadeClassifier`` out of it).

    from xruntime_emotion import EmotionClassifier
    for face in EmotionClassifier.default().analyze("photo.jpg"):
        print(face.box, face.label, face.probability)
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.atomic import atomic_path
from xruntime_emotion.errors import ImageError, MissingDependencyError, ModelFileError, require
from xruntime_emotion.runtime.prediction import Classifies, Prediction
from xruntime_emotion.runtime.preprocess import _to_gray_float, load_image

CASCADE = "haarcascade_frontalface_default.xml"
# FER2013 crops are about as large as the cascade's box (median 0.98x on PrivateTest faces), so the
# margin is small: on 294 pasted PrivateTest faces (interim model), detected crops kept the crop's own
# label 78% of the time at 0.05 (79% at 0, 70% at 0.15) and scored best against the labels at 0.05.
MARGIN = 0.05
# Label colours for --annotate, in LABELS order (angry, disgust, fear, happy, sad, surprise, neutral).
_COLOURS = ((230, 40, 40), (120, 160, 30), (150, 60, 200), (250, 200, 0), (40, 110, 230), (250, 120, 20), (200,) * 3)


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


def _cv2() -> Any:
    return require("cv2", "detect")


def cascade_path() -> Path:
    """The frontal-face cascade shipped inside opencv-python(-headless) 4.x."""
    cv2 = _cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder) / CASCADE if folder else None
    if path is None or not path.is_file() or not hasattr(cv2, "CascadeClassifier"):
        raise MissingDependencyError(
            f"OpenCV {getattr(cv2, '__version__', '?')} has no bundled Haar cascades (OpenCV 5 moved them out); "
            "install it with: pip install 'xemotion[detect]' (opencv-python-headless<5)"
        )
    return path


class FaceDetector:
    """OpenCV's Haar frontal-face cascade. Safe to share between threads (one cascade per thread).

    Photos whose longer side exceeds ``max_side`` are searched at that size (faster; boxes are
    mapped back to full-size pixels), so faces much smaller than ``min_size`` there are missed.
    """

    def __init__(
        self,
        *,
        min_size: int = 30,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        max_side: int = 1600,
        cascade: str | os.PathLike[str] | None = None,
    ) -> None:
        if min_size < 1 or scale_factor <= 1.0 or min_neighbors < 0 or max_side < 48:
            raise ValueError("need min_size >= 1, scale_factor > 1, min_neighbors >= 0 and max_side >= 48")
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.max_side = max_side
        self.cascade = Path(cascade) if cascade is not None else cascade_path()
        self._local = threading.local()
        self._classifier()  # fail here, not at the first photo

    def _classifier(self) -> Any:
        clf = getattr(self._local, "cascade", None)
        if clf is None:
            clf = _cv2().CascadeClassifier(str(self.cascade))
            if clf.empty():
                raise ModelFileError(f"{self.cascade}: not a readable OpenCV cascade")
            self._local.cascade = clf
        return clf

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Face boxes in a uint8 grey image (H,W), left to right."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ImageError(f"detect needs a uint8 grey (H,W) image, got {gray.dtype} {gray.shape}")
        cv2 = _cv2()
        scale = min(1.0, self.max_side / max(gray.shape))
        small = gray
        if scale < 1.0:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        side = max(1, round(self.min_size * scale))
        found = self._classifier().detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [Box(*(round(int(v) / scale) for v in b)) for b in found]
        return sorted(boxes, key=lambda b: (b.x, b.y))


@functools.cache
def default_detector() -> FaceDetector:
    """A detector with the default settings, shared (it keeps one cascade per thread)."""
    return FaceDetector()


def _photo(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """A photo (path or array, as ``preprocess`` accepts one) -> (uint8 RGB or grey for drawing, float grey)."""
    a = load_image(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    grey = _to_gray_float(a)
    if a.dtype == np.uint8 and a.ndim == 3:
        return np.ascontiguousarray(a[:, :, :3]), grey
    return np.rint(grey * 255.0).astype(np.uint8), grey


def _crop(grey: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels; any part outside the photo repeats the nearest edge, so the crop stays square."""
    h, w = grey.shape
    x0, y0, x1, y1 = max(box.x, 0), max(box.y, 0), min(box.x + box.w, w), min(box.y + box.h, h)
    pad = ((y0 - box.y, box.y + box.h - y1), (x0 - box.x, box.x + box.w - x1))
    return np.pad(grey[y0:y1, x0:x1], pad, mode="edge")


def analyze(
    classifier: Classifies,
    image: Any,
    *,
    margin: float = MARGIN,
    detector: FaceDetector | None = None,
) -> list[DetectedFace]:
    """Every face found in ``image`` (a path or an RGB/grey array), classified, left to right."""
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin must lie in [0, 1], got {margin}")
    _, grey = _photo(image)
    detector = detector or default_detector()
    boxes = detector.detect(np.rint(grey * 255.0).astype(np.uint8))
    if not boxes:
        return []
    predictions = classifier.classify_many([_crop(grey, b.expand(margin)) for b in boxes])
    return [DetectedFace(b, p) for b, p in zip(boxes, predictions)]


def annotate(image: Any, faces: list[DetectedFace], path: str | os.PathLike[str]) -> Path:
    """Write ``image`` with each face's box and label drawn; the format follows the suffix (PNG if unknown)."""
    from PIL import Image, ImageDraw, ImageFont

    from xruntime_emotion.model.ir import LABELS

    pixels, _ = _photo(image)
    im = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(im)
    line = max(2, round(min(im.size) / 250))
    try:
        font: Any = ImageFont.load_default(size=max(12, round(min(im.size) / 30)))
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    for face in faces:
        b = face.box
        colour = _COLOURS[LABELS.index(face.label)] if face.label in LABELS else (255, 255, 255)
        draw.rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), outline=colour, width=line)
        text = f"{face.label} {face.probability:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * line, bottom - top + 2 * line
        ty = b.y - th if b.y - th >= 0 else b.y + b.h  # above the box, or below it at the top edge
        draw.rectangle((b.x, ty, b.x + tw, ty + th), fill=colour)
        draw.text((b.x + line - left, ty + line - top), text, fill=(0, 0, 0), font=font)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt)
    return path
