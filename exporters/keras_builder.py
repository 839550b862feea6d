"""IR -> Keras 3 model, with exactly DeepFace's layer order (deepface/models/demography/Emotion.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xruntime_emotion.model.ir import DEEPFACE_LAYERS, InputContract, Layer, LayerKind, ModelIR

from ._deps import keras


def _layer_factories(k: Any) -> dict[LayerKind, Callable[[Layer], Any]]:
    L = k.layers
    return {
        LayerKind.CONV2D: lambda s: L.Conv2D(
            s.units, s.kernel, strides=s.strides, padding="valid", activation=s.activation, name=s.name
        ),
        LayerKind.MAXPOOL2D: lambda s: L.MaxPooling2D(s.kernel, strides=s.strides, padding="valid", name=s.name),
        LayerKind.AVGPOOL2D: lambda s: L.AveragePooling2D(s.kernel, strides=s.strides, padding="valid", name=s.name),
        LayerKind.FLATTEN: lambda s: L.Flatten(name=s.name),
        LayerKind.DENSE: lambda s: L.Dense(s.units, activation=s.activation, name=s.name),
        LayerKind.DROPOUT: lambda s: L.Dropout(s.rate, name=s.name),
    }


def build_model(
    ir: ModelIR | None = None,
    *,
    batch_size: int | None = None,
    layers: tuple[Layer, ...] = DEEPFACE_LAYERS,
    contract: InputContract | None = None,
    name: str = "deepface_emotion",
) -> Any:
    """A Sequential Keras model; with ``ir`` its weights are set from the IR.

    ``batch_size=1`` gives the fixed-batch model the NPU targets need (no dynamic Flatten).
    """
    k = keras()
    if ir is not None:
        layers, contract = ir.layers, ir.contract
    contract = contract or InputContract()
    make = _layer_factories(k)
    model = k.Sequential(
        [k.Input(contract.shape, batch_size=batch_size, name="input"), *(make[s.kind](s) for s in layers)], name=name
    )
    if ir is not None:
        for s in ir.weighted_layers:
            model.get_layer(s.name).set_weights(list(ir.weights[s.name]))
    return model


def logits_model(model: Any) -> Any:
    """A model sharing ``model``'s weights whose last layer outputs pre-softmax logits."""
    k = keras()
    last = model.layers[-1]
    dense = k.layers.Dense(last.units, activation="linear", name=f"{last.name}_logits")
    x = k.Input(model.input_shape[1:], batch_size=model.input_shape[0])
    h = x
    for layer in model.layers[:-1]:
        h = layer(h)
    out = dense(h)
    dense.set_weights(last.get_weights())
    return k.Model(x, out)
