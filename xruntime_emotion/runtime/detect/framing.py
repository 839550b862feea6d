"""FER2013 framing: from BlazeFace's box and landmarks to the square a FER2013 crop of that face would be.

The map is linear in ``framing_features`` and gives the true square's centre offset and log side,
relative to the model's box side. It cannot blow up: the size feature is held to the range it was
fitted on, and a square outside ``BAND`` times the model's box side is not guessed: the face is dropped.
"""

from __future__ import annotations

import math

import numpy as np

from xruntime_emotion.runtime.detect.boxes import Box
from xruntime_emotion.runtime.detect.nms import Candidate
from xruntime_emotion.runtime.detect.search import _INPUT

# The framed square's side over the model's box side, at least and at most. On the fitting scenes the
# true ratio's 1st-99th percentiles were 0.81-1.79 (median 1.20; 766 boxes of 200 scenes, seeds 11 and 12).
BAND = (0.8, 1.8)
# Fitted by least squares (``xruntime_emotion.check.scenes.fit_framing``) on the boxes the detector confirms
# in 300 scenes of seeds 11 and 12 (faces 16-480 px, turned up to 90 degrees, some cut by the edge).
_FRAMING = np.array(
    [
        [-0.9478, -1.2962, -5.4137],
        [-1.3207, 1.7487, 6.3129],
        [3.5781, -1.7160, 1.3233],
        [-3.1390, -1.1358, -7.8804],
        [-2.7618, 0.8120, 4.4454],
        [1.3899, -1.0117, 2.0121],
        [-0.8083, 1.0723, -4.6106],
        [1.9904, 0.8543, -1.2227],
        [0.7504, -0.2528, 3.7221],
        [0.3194, -0.5769, -4.0936],
        [-2.9654, 1.1324, 1.0772],
        [1.5994, 0.5485, 4.9963],
        [3.1579, 0.0812, -0.4080],
        [0.3648, 0.5234, 2.7918],
        [-0.0398, -0.0475, -0.3761],
    ],
    dtype=np.float64,
)
_SIZE_RANGE = (math.log(22.7), math.log(103.4))  # the box's side in the model's pixels, as fitted (log)


def framing_features(c: Candidate) -> tuple[np.ndarray, float]:
    """The inputs of the FER framing map, and the box side they are relative to.

    Besides the landmarks' offsets, the box's log side in the model's input pixels (held to the fitted
    range) and its square: the model's boxes are too big on faces it sees small and too small on faces
    it sees big.
    """
    side = float(max(c.size))
    scale = min(max(math.log(side * _INPUT / c.tile), _SIZE_RANGE[0]), _SIZE_RANGE[1])
    return np.concatenate([[1.0], ((c.landmarks - c.centre) / side).ravel(), [scale, scale * scale]]), side


def frame(c: Candidate) -> Box | None:
    """The FER2013 square for a merged detection, by the framing map; None where it falls outside ``BAND``."""
    f, side = framing_features(c)
    dx, dy, log_side = f @ _FRAMING
    ratio = math.exp(log_side)
    if not BAND[0] <= ratio <= BAND[1]:
        return None
    s = side * ratio
    cx, cy = c.centre[0] + dx * side, c.centre[1] + dy * side
    return Box(round(cx - s / 2), round(cy - s / 2), round(s), round(s))
