"""The network's labels and input size as bare constants: all that a classifier's start needs of the model
layer. ``architecture`` builds on them (``LABELS``, ``InputContract``); keeping them here spares an app that
only classifies the cost of making the architecture's classes at import."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SHAPE: tuple[int, int, int] = (48, 48, 1)  # height, width, channels of one face (NHWC, grey)
