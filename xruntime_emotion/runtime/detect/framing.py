"""FER2013 framing: from BlazeFace's box and landmarks to the square a FER2013 crop of that face would be."""

from __future__ import annotations

import math

import numpy as np

from xruntime_emotion.runtime.detect.boxes import Box
from xruntime_emotion.runtime.detect.nms import Candidate
from xruntime_emotion.runtime.detect.tiles import _INPUT

# FER2013 framing: the true square's centre offset and log side, relative to the model's box side, as a
# linear function of ``framing_features`` ([1, the six landmarks' offsets from the box centre / side, the
# box's log side in model input pixels and its square]). Fitted by least squares
# (``xruntime_emotion.check.scenes.fit_framing``, min_score 0.55) on 1000 Training scenes, seeds 11 and 12.
# On 500 other scenes (seed 13) recall and precision rose from 95.4% to 96.8% over the earlier map (landmarks
# only, 300 scenes, seed 11); a fixed 1.22x scale and centre offset scored about 2 points lower than that one.
_FRAMING = np.array(
    [
        [0.0193, 0.6059, -0.5188],
        [-0.2819, 0.9343, 1.9249],
        [2.6641, -0.2871, 0.1420],
        [-1.6222, 0.9330, -8.2149],
        [-2.4197, -0.7754, 2.2260],
        [0.0530, -2.5671, 8.8285],
        [-0.5687, 0.8643, -0.0802],
        [1.7201, 1.8426, -6.1575],
        [0.6673, 0.0608, -2.4962],
        [0.0293, -0.0849, -1.4745],
        [-2.2075, 0.3032, 0.3434],
        [0.7491, -0.6414, 4.1765],
        [2.1057, 0.7123, -1.2298],
        [-0.0760, -0.3433, 0.7748],
        [0.0097, 0.0500, -0.1140],
    ],
    dtype=np.float64,
)


def framing_features(c: Candidate) -> tuple[np.ndarray, float]:
    """The inputs of the FER framing map, and the box side they are relative to.

    Besides the landmarks' offsets, the box's log side in the model's input pixels and its square: the
    model's boxes are too big on faces it sees small and too small on faces it sees big.
    """
    side = float(max(c.size))
    scale = math.log(side * _INPUT / c.tile)
    return np.concatenate([[1.0], ((c.landmarks - c.centre) / side).ravel(), [scale, scale * scale]]), side


def frame(c: Candidate) -> Box:
    """The FER2013 square for a merged detection, by the framing map."""
    f, side = framing_features(c)
    dx, dy, log_side = f @ _FRAMING
    s = side * math.exp(log_side)
    cx, cy = c.centre[0] + dx * side, c.centre[1] + dy * side
    return Box(round(cx - s / 2), round(cy - s / 2), round(s), round(s))
