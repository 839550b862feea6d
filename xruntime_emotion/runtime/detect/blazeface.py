"""MediaPipe's BlazeFace short-range model, shipped as ONNX and run by onnxruntime: a pyramid of the whole
photo proposes faces, a view of each at the model's own scale confirms and places it."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.runtime.detect.boxes import Detection, _uint8_photo
from xruntime_emotion.runtime.detect.framing import frame
from xruntime_emotion.runtime.detect.nms import Candidate, _drop_contained, _weighted_nms
from xruntime_emotion.runtime.detect.search import _INPUT, _PAD, _XS, _anchors, level_input, levels, view

BLAZEFACE = Path(__file__).resolve().parents[2] / "detector" / "blazeface_short_range.onnx"
BLAZEFACE_SHA256 = "9000baf278c110c95a496c8886a8ca709e70747449f3c7254fbc2916893510a3"
# A pyramid box scoring this much is a proposal; at most _PROPOSALS of them, best first, are looked at
# again in views of _VIEWS times their side (two views: their boxes are averaged, which halves the
# framing misses of one view). On 100 scenes (seed 1) of the widened set, one view at 2.6x gave recall
# and precision 0.918 / 0.909, two at 2.2x and 3.2x 0.929 / 0.943. A proposal stands when both views
# confirm it (min_score 0.6) or one is sure (_SURE): on seeds 1 and 2 (100 scenes each) that gave 0.898 /
# 0.946 and 0.887 / 0.956, against 0.893 / 0.921 and 0.908 / 0.908 for either view at 0.65 (both at 0.55,
# or one at 0.8: 0.903 / 0.937 and 0.903 / 0.941, but a 123 px box around a 20 px face got through).
_PROPOSE = 0.4
_PROPOSALS = 16
_VIEWS = (2.2, 3.2)
_SURE = 0.75
_NEAR = 0.2  # a view's box counts when its centre lies within this share of the view of the view's centre


def _merge(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[Candidate]:
    """Raw boxes (regressions in photo pixels, scores, the side of the square each was seen in) merged."""
    found = [f for f in found if len(f[1])]
    if not found:
        return []
    reg = np.concatenate([f[0] for f in found])
    score = np.concatenate([f[1] for f in found])
    seen = np.concatenate([f[2] for f in found])
    return _drop_contained(_weighted_nms(reg[:, :2], reg[:, 2:4], score, reg[:, 4:].reshape(-1, 6, 2), seen))


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (short range), on onnxruntime; safe to share between threads.

    The model file's sha256 is checked at load. Each photo is searched at a few scales (``levels``: the
    finest holds a ``min_face`` face at the model's reliable size), the boxes scoring ``_PROPOSE`` are
    merged, and each is looked at again in two views at the model's own scale (``view``); a proposal
    that both views confirm (score ``min_score``), or one with ``_SURE``, is merged again and framed like
    a FER2013 crop (``framing.frame``), or dropped where it cannot be framed inside the band. ``min_face``
    below 32 searches a finer level (24: 1.6x the time of 32's); a photo is searched at most ``max_side``
    pixels long.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        sha256: str = BLAZEFACE_SHA256,
        min_score: float = 0.6,
        min_face: int = 32,
        max_side: int = 1280,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from xruntime_emotion.runtime.integrity import verify_sha256

        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must lie in (0, 1), got {min_score}")
        if not 24 <= min_face <= max_side or max_side < _INPUT:
            raise ValueError(f"need 24 <= min_face <= max_side and max_side >= 128, got {min_face}, {max_side}")
        self.model = verify_sha256(BLAZEFACE if model is None else Path(model), sha256, "the detector's record")
        self.min_score = min_score
        self.min_face = min_face
        self.max_side = max_side
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
        self._view_anchors = _anchors(_INPUT, _INPUT)

    def _run(self, x: np.ndarray, anchors: np.ndarray, at_least: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """float input (T,H,W,3) in [-1,1] -> per input, its boxes scoring ``at_least``: regressions (n,16) in
        input pixels ([centre x, y, w, h, then x, y of each landmark]) and scores (n,)."""
        reg, logits = self._session.run(self._outputs, {self._input: x})  # one call, batched
        out = []
        for r, logit in zip(reg, logits[:, :, 0]):
            keep = np.flatnonzero(logit >= math.log(at_least / (1 - at_least)))
            got = r[keep].astype(np.float64)  # offsets from the anchor
            got[:, _XS] += anchors[keep, :1]
            got[:, _XS + 1] += anchors[keep, 1:]
            out.append((got, 1.0 / (1.0 + np.exp(-logit[keep].astype(np.float64)))))
        return out

    def proposals(self, rgb: np.ndarray) -> list[Candidate]:
        """The pyramid's merged boxes scoring ``_PROPOSE``, best first (boxes centred beyond the photo,
        in the mirrored margin, are left out)."""
        h, w = rgb.shape[:2]
        found = []
        for p in levels(h, w, self.min_face, self.max_side):
            x, sx, sy = level_input(rgb, p)
            [(reg, score)] = self._run(x, _anchors(*x.shape[1:3]), _PROPOSE)
            reg[:, _XS] -= _PAD  # the mirrored margin
            reg[:, _XS + 1] -= _PAD
            reg[:, 0::2] *= sx
            reg[:, 1::2] *= sy
            keep = (reg[:, 0] >= 0) & (reg[:, 0] < w) & (reg[:, 1] >= 0) & (reg[:, 1] < h)
            found.append((reg[keep], score[keep], np.full(int(keep.sum()), _INPUT * (sx + sy) / 2)))
        return _merge(found)

    def candidates(self, image: np.ndarray) -> list[Candidate]:
        """The faces confirmed in views at the model's scale (score ``min_score``), merged, before FER framing."""
        a = _uint8_photo(image)
        rgb = np.repeat(a[:, :, None], 3, 2) if a.ndim == 2 else a[:, :, :3]
        first = self.proposals(rgb)[:_PROPOSALS]
        if not first:
            return []
        squares = []
        for c in first:
            for k in _VIEWS:
                side = k * float(max(c.size))
                squares.append((c.centre[0] - side / 2, c.centre[1] - side / 2, side))
        views = np.stack([view(rgb, *s) for s in squares]).astype(np.float32) / 127.5 - 1.0
        seen = []
        for (x0, y0, side), (reg, score) in zip(squares, self._run(views, self._view_anchors, self.min_score)):
            near = np.hypot(reg[:, 0] - _INPUT / 2, reg[:, 1] - _INPUT / 2) < _NEAR * _INPUT
            r = reg[near] * (side / _INPUT)
            r[:, _XS] += x0
            r[:, _XS + 1] += y0
            seen.append((r, score[near], np.full(int(near.sum()), side)))
        found = []
        for i in range(0, len(seen), len(_VIEWS)):  # one proposal's views
            views_of = seen[i : i + len(_VIEWS)]
            best = [float(v[1].max()) if len(v[1]) else 0.0 for v in views_of]
            if min(best) > 0.0 or max(best) >= _SURE:
                found += views_of
        return _merge(found)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 RGB or grey photo, left to right, boxes framed like FER2013 crops."""
        out = []
        for c in self.candidates(image):
            box = frame(c)
            if box is not None:
                out.append(Detection(box, c.score, tuple((float(x), float(y)) for x, y in c.landmarks)))
        return sorted(out, key=lambda d: (d.box.x, d.box.y))
