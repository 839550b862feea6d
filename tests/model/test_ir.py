"""xruntime_emotion.model.ir, .architecture and .reference: the DeepFace layers, the NumPy forward pass vs Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import inputs64

from xruntime_emotion import LABELS, ModelIR
from xruntime_emotion.model.ir import DEEPFACE_LAYERS


def test_architecture_is_deepface() -> None:
    kinds = [
        (layer.kind.value, layer.units, layer.kernel, layer.strides, layer.activation) for layer in DEEPFACE_LAYERS
    ]
    assert kinds == [
        ("conv2d", 64, (5, 5), (1, 1), "relu"),
        ("maxpool2d", 0, (5, 5), (2, 2), "linear"),
        ("conv2d", 64, (3, 3), (1, 1), "relu"),
        ("conv2d", 64, (3, 3), (1, 1), "relu"),
        ("avgpool2d", 0, (3, 3), (2, 2), "linear"),
        ("conv2d", 128, (3, 3), (1, 1), "relu"),
        ("conv2d", 128, (3, 3), (1, 1), "relu"),
        ("avgpool2d", 0, (3, 3), (2, 2), "linear"),
        ("flatten", 0, (1, 1), (1, 1), "linear"),
        ("dense", 1024, (1, 1), (1, 1), "relu"),
        ("dropout", 0, (1, 1), (1, 1), "linear"),
        ("dense", 1024, (1, 1), (1, 1), "relu"),
        ("dropout", 0, (1, 1), (1, 1), "linear"),
        ("dense", 7, (1, 1), (1, 1), "softmax"),
    ]
    assert LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_parameter_count(random_ir: ModelIR) -> None:
    assert random_ir.num_parameters == 1_485_831


def test_random_fixture_is_confident(random_ir: ModelIR, fer, happy_jpg: Path) -> None:
    p = random_ir.forward(inputs64(fer, happy_jpg))
    assert (p.max(1) > 0.9).sum() >= 8, "test weights must give confident outputs"


@pytest.mark.parametrize("which", ["random", "default"])
def test_reference_matches_keras(which: str, random_ir: ModelIR, default_ir: ModelIR, fer, happy_jpg: Path) -> None:
    from exporters.keras_builder import build_model, logits_model

    ir = random_ir if which == "random" else default_ir
    x = inputs64(fer, happy_jpg)
    model = build_model(ir)
    keras_p = np.asarray(model(x, training=False))
    keras_z = np.asarray(logits_model(model)(x, training=False))
    assert np.abs(ir.forward(x) - keras_p).max() <= 1e-5
    assert np.abs(ir.forward(x, logits=True) - keras_z).max() <= 1e-5 * max(1.0, np.abs(keras_z).max())
