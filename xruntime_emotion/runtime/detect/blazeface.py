"""MediaPipe's BlazeFace short-range model, shipped as ONNX and run by onnxruntime over the whole photo and tiles."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.runtime.detect.boxes import Detection, _uint8_photo
from xruntime_emotion.runtime.detect.framing import frame
from xruntime_emotion.runtime.detect.nms import Candidate, _drop_contained, _weighted_nms
from xruntime_emotion.runtime.detect.tiles import _INPUT, _XS, _anchors, _view, regions

BLAZEFACE = Path(__file__).resolve().parents[2] / "detector" / "blazeface_short_range.onnx"
BLAZEFACE_SHA256 = "21515fe458dbf629ef20bae682f0cf4373fec57e5830ad4d47c92aae667d7373"


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (short range), on onnxruntime; safe to share between threads.

    The model file's sha256 is checked at load. Each photo is searched whole and in overlapping tiles
    (``regions``), the raw boxes are merged by weighted suppression, and each face's box is reframed
    from its landmarks to the square a FER2013 crop would be (``_FRAMING``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        sha256: str = BLAZEFACE_SHA256,
        min_score: float = 0.55,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from xruntime_emotion.runtime.integrity import verify_sha256

        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must lie in (0, 1), got {min_score}")
        self.model = verify_sha256(BLAZEFACE if model is None else Path(model), sha256, "the detector's record")
        self.min_score = min_score
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(self.model), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.model}: onnxruntime cannot load it ({exc})") from exc
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        if len(names) != 2:
            raise ModelFileError(f"{self.model}: expected two outputs (regressors, classificators), got {names}")
        self._outputs = sorted(names)[::-1]  # regressors, classificators
        self._anchors = _anchors()
        self._min_logit = math.log(min_score / (1 - min_score))

    def _run(self, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB views (T,128,128,3) -> their boxes' regressions (T,896,16) in view fractions, scores (T,896)."""
        x = views.astype(np.float32) / 127.5 - 1.0
        reg, logits = self._session.run(self._outputs, {self._input: x})  # one call, batched
        reg = reg / _INPUT  # [dx, dy, w, h, then x, y of each landmark], offsets from the anchor
        reg[:, :, _XS] += self._anchors[None, :, :1]
        reg[:, :, _XS + 1] += self._anchors[None, :, 1:]
        return reg, 1.0 / (1.0 + np.exp(-np.clip(logits[:, :, 0], -80, 80)))

    def candidates(self, image: np.ndarray) -> list[Candidate]:
        """The merged raw detections in a uint8 photo, before FER framing, best first."""
        a = _uint8_photo(image)
        rgb = np.repeat(a[:, :, None], 3, 2) if a.ndim == 2 else a[:, :, :3]
        h, w = rgb.shape[:2]
        squares = regions(h, w)
        regs, scores = self._run(np.stack([_view(rgb, *square) for square in squares]))  # black pads, as MediaPipe
        found = []
        for (x0, y0, side), reg, score in zip(squares, regs, scores):
            keep = score >= self.min_score
            # a box crossing a tile edge inside the photo is a cut face: another square sees it whole
            bw, bh = reg[:, 2], reg[:, 3]
            keep &= (x0 == 0) | (reg[:, 0] - bw / 2 >= 0)
            keep &= (y0 == 0) | (reg[:, 1] - bh / 2 >= 0)
            keep &= (x0 + side >= w) | (reg[:, 0] + bw / 2 <= 1)
            keep &= (y0 + side >= h) | (reg[:, 1] + bh / 2 <= 1)
            if keep.any():
                r = reg[keep].astype(np.float64) * side
                r[:, _XS] += x0
                r[:, _XS + 1] += y0
                found.append((r, score[keep].astype(np.float64), np.full(int(keep.sum()), float(side))))
        if not found:
            return []
        reg = np.concatenate([f[0] for f in found])
        score = np.concatenate([f[1] for f in found])
        tile = np.concatenate([f[2] for f in found])
        merged = _weighted_nms(reg[:, :2], reg[:, 2:4], score, reg[:, 4:].reshape(-1, 6, 2), tile)
        return _drop_contained(merged)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 RGB or grey photo, left to right, boxes framed like FER2013 crops."""
        out = []
        for c in self.candidates(image):
            box = frame(c)
            marks = tuple((float(x), float(y)) for x, y in c.landmarks)
            out.append(Detection(box, c.score, marks))
        return sorted(out, key=lambda d: (d.box.x, d.box.y))
