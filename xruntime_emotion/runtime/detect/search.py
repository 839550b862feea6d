"""Where BlazeFace looks: the photo at a few scales (a pyramid, each level run through the model whole), and
a view at the model's own scale around each face found there.

The model is fully convolutional: run on a larger input it scores every 8- and 16-pixel cell of it at once,
as sliding 128x128 windows would, without their overlap. It finds faces of about 36-128 of its input
pixels reliably (on pasted FER2013 faces, 95% of 40 px faces at a score of 0.55, 78% of 32 px ones), so
the pyramid's finest level holds a face of ``min_face`` photo pixels at 36 input pixels and each next
level is 2.5 times coarser, down to one where the whole photo is at most ``_COARSEST`` pixels long. On
100 upright 32 px faces the finest level at 32 input pixels found 87, at 36 92, at 40 95 (for 1.5x the
time of 32). Each level is padded by mirroring the photo's edge, which gives a face cut by the edge the
other half it lacks (faces are near symmetric): on 48-80 px faces with 40% of their side outside the
photo, 93% were found so, against 10-30% with no padding and 40-50% with black.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

_INPUT = 128  # the model's square input, pixels
_XS = np.array([0, 4, 6, 8, 10, 12, 14])  # the x columns of the regression that are anchor-relative
_FACE_INPUT = 36  # input pixels of the smallest face a level is meant to find
_COARSEST = 160  # the coarsest level holds the whole photo in at most this many input pixels
_STEP = 2.5  # each level this many times coarser than the one before
_PAD = 32  # input pixels mirrored beyond each edge
_MAX_SAMPLES = 256  # a view's pixels are sampled at most this finely across before the resize


def _anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres (N,2) in input pixels for an input of that size (multiples of 16): 2 per cell at
    stride 8, then 6 per cell at stride 16, in the model's output order. 128x128 gives its 896."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        yy, xx = np.mgrid[0 : height // stride, 0 : width // stride]
        centres = np.stack([(xx + 0.5) * stride, (yy + 0.5) * stride], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, 1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float64)


def levels(height: int, width: int, min_face: float = 32.0, max_side: int = 1280) -> list[float]:
    """The pyramid's scales, in photo pixels per input pixel, finest first.

    The finest puts a ``min_face`` face at 36 input pixels, but never makes the photo longer than
    ``max_side`` (a larger photo's smallest face found grows with it); each next level is 2.5 times as
    coarse, the last holding the photo in at most ``_COARSEST`` pixels. A 640x480 photo: 0.89, 2.2, 5.6.
    """
    side = max(height, width)
    p = max(min_face / _FACE_INPUT, side / max_side)
    out = [p]
    while side / out[-1] > _COARSEST:
        out.append(out[-1] * _STEP)
    return out


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) about the first and last pixel (as numpy's "reflect" padding)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def level_input(rgb: np.ndarray, p: float) -> tuple[np.ndarray, float, float]:
    """The photo at scale ``p``, mirrored ``_PAD`` pixels beyond each edge and on to a multiple of 16,
    as the model's float input (1,H,W,3); and the photo pixels per input pixel across and down."""
    h, w = rgb.shape[:2]
    ih, iw = max(1, round(h / p)), max(1, round(w / p))
    small = rgb if (ih, iw) == (h, w) else np.asarray(Image.fromarray(rgb).resize((iw, ih), Image.Resampling.BILINEAR))
    hh, ww = -(-(ih + 2 * _PAD) // 16) * 16, -(-(iw + 2 * _PAD) // 16) * 16
    x = np.empty((1, hh, ww, 3), np.float32)
    core = small.astype(np.float32)
    core *= 1 / 127.5
    core -= 1.0
    x[0] = np.pad(core, ((_PAD, hh - ih - _PAD), (_PAD, ww - iw - _PAD), (0, 0)), mode="reflect")
    return x, w / iw, h / ih


def view(rgb: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """The square (x0, y0, side) of a uint8 RGB photo as the model's 128x128 uint8 input, the photo
    mirrored beyond its edges; sampled at most ``_MAX_SAMPLES`` pixels across first, so any size is cheap."""
    h, w = rgb.shape[:2]
    n = max(1, min(math.ceil(side), _MAX_SAMPLES))
    at = (np.arange(n) + 0.5) * (side / n)
    cols = _reflect(np.floor(x0 + at).astype(np.int64), w)
    rows = _reflect(np.floor(y0 + at).astype(np.int64), h)
    crop = np.ascontiguousarray(rgb[np.ix_(rows, cols)])
    return np.asarray(Image.fromarray(crop).resize((_INPUT, _INPUT), Image.Resampling.BILINEAR))
