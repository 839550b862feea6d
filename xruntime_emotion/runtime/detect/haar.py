"""OpenCV's Haar frontal-face cascade (needs the ``detect`` extra: opencv-python-headless < 5)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import MissingDependencyError, ModelFileError, require
from xruntime_emotion.runtime.detect.boxes import Box, Detection, _uint8_photo
from xruntime_emotion.runtime.preprocess import _to_gray_float

CASCADE = "haarcascade_frontalface_default.xml"


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


class HaarDetector:
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

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 RGB or grey image, left to right (score 1: the cascade gives none)."""
        gray = _uint8_photo(image)
        if gray.ndim == 3:
            gray = np.rint(_to_gray_float(gray) * 255.0).astype(np.uint8)
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
        return [Detection(b) for b in sorted(boxes, key=lambda b: (b.x, b.y))]


FaceDetector = HaarDetector  # its name before there was more than one detector
