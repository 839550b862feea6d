"""The emotion network's architecture as data: labels, layers (DeepFace's order), the input contract.

No weights and no behaviour beyond shape arithmetic; everything else in the model layer builds on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from xruntime_emotion.errors import WeightsError
from xruntime_emotion.model.labels import INPUT_SHAPE, LABELS  # LABELS: re-exported, the architecture's vocabulary

ACTIVATIONS = ("linear", "relu", "softmax")  # what the reference, Keras builder and ONNX emitter implement
MAX_WINDOW = 64  # kernel and stride sides
MAX_UNITS = 65_536  # filters or dense width: bounds every weight shape an architecture can declare


class LayerKind(str, Enum):
    CONV2D = "conv2d"
    MAXPOOL2D = "maxpool2d"
    AVGPOOL2D = "avgpool2d"
    FLATTEN = "flatten"
    DENSE = "dense"
    DROPOUT = "dropout"


@dataclass(frozen=True)
class Layer:
    """One layer. Convs and pools use valid padding; ``units`` is filters or dense width."""

    name: str
    kind: LayerKind
    units: int = 0
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    activation: str = "linear"
    rate: float = 0.0

    def __post_init__(self) -> None:
        """Refuse what no network of this family has: files carry architectures too (xemotion .npz)."""
        problems = []
        if not isinstance(self.kind, LayerKind):
            problems.append(f"kind {self.kind!r}")
        if not all(isinstance(v, int) and 1 <= v <= MAX_WINDOW for v in (*self.kernel, *self.strides)):
            problems.append(f"kernel {self.kernel} / strides {self.strides} (each 1..{MAX_WINDOW})")
        if not 0 <= self.units <= MAX_UNITS:
            problems.append(f"units {self.units} (0..{MAX_UNITS})")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation {self.activation!r} (one of {', '.join(ACTIVATIONS)})")
        if not 0.0 <= self.rate < 1.0:
            problems.append(f"dropout rate {self.rate}")
        if problems:
            raise WeightsError(f"layer {self.name!r}: unsupported {'; '.join(problems)}")

    @property
    def has_weights(self) -> bool:
        return self.kind in (LayerKind.CONV2D, LayerKind.DENSE)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["kernel"] = list(self.kernel)
        d["strides"] = list(self.strides)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Layer:
        return Layer(
            name=str(d["name"]),
            kind=LayerKind(d["kind"]),
            units=int(d.get("units", 0)),
            kernel=(int(d["kernel"][0]), int(d["kernel"][1])),
            strides=(int(d["strides"][0]), int(d["strides"][1])),
            activation=str(d.get("activation", "linear")),
            rate=float(d.get("rate", 0.0)),
        )


def _conv(name: str, filters: int, k: int) -> Layer:
    return Layer(name, LayerKind.CONV2D, filters, (k, k), (1, 1), "relu")


# deepface/models/demography/Emotion.py, in order; names as Keras 2 gave them.
DEEPFACE_LAYERS: tuple[Layer, ...] = (
    _conv("conv2d", 64, 5),
    Layer("max_pooling2d", LayerKind.MAXPOOL2D, 0, (5, 5), (2, 2)),
    _conv("conv2d_1", 64, 3),
    _conv("conv2d_2", 64, 3),
    Layer("average_pooling2d", LayerKind.AVGPOOL2D, 0, (3, 3), (2, 2)),
    _conv("conv2d_3", 128, 3),
    _conv("conv2d_4", 128, 3),
    Layer("average_pooling2d_1", LayerKind.AVGPOOL2D, 0, (3, 3), (2, 2)),
    Layer("flatten", LayerKind.FLATTEN),
    Layer("dense", LayerKind.DENSE, 1024, activation="relu"),
    Layer("dropout", LayerKind.DROPOUT, rate=0.2),
    Layer("dense_1", LayerKind.DENSE, 1024, activation="relu"),
    Layer("dropout_1", LayerKind.DROPOUT, rate=0.2),
    Layer("dense_2", LayerKind.DENSE, len(LABELS), activation="softmax"),
)


@dataclass(frozen=True)
class InputContract:
    """What the network expects: NHWC float32 grayscale, pixels scaled by 1/255 into [0, 1]."""

    height: int = INPUT_SHAPE[0]
    width: int = INPUT_SHAPE[1]
    channels: int = INPUT_SHAPE[2]
    dtype: str = "float32"
    scale: float = 1.0 / 255.0
    value_range: tuple[float, float] = (0.0, 1.0)
    layout: str = "NHWC"
    color: str = "grayscale"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def scale_text(self) -> str:
        """The pixel scale as written in metadata: "1/255"."""
        return f"1/{round(1 / self.scale)}"


CONTRACT = InputContract()  # the one contract of the emotion model: size, channels, scale (classes: LABELS)


def weight_shapes(layers: tuple[Layer, ...], contract: InputContract) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Expected (kernel, bias) shapes of every weighted layer, by walking the shapes."""
    h, w, c = contract.shape
    flat = 0
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
    for layer in layers:
        kh, kw = layer.kernel
        sh, sw = layer.strides
        if layer.kind is LayerKind.CONV2D:
            shapes[layer.name] = ((kh, kw, c, layer.units), (layer.units,))
            h, w, c = (h - kh) // sh + 1, (w - kw) // sw + 1, layer.units
        elif layer.kind in (LayerKind.MAXPOOL2D, LayerKind.AVGPOOL2D):
            h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
        if h < 1 or w < 1:
            raise WeightsError(f"layer {layer.name!r}: its window no longer fits the {contract.shape} input")
        elif layer.kind is LayerKind.FLATTEN:
            flat = h * w * c
        elif layer.kind is LayerKind.DENSE:
            shapes[layer.name] = ((flat, layer.units), (layer.units,))
            flat = layer.units
    return shapes


class Network(Protocol):
    """What the NumPy reference and the weights writers need of a model (``ModelIR`` is one)."""

    layers: tuple[Layer, ...]
    weights: Mapping[str, tuple[np.ndarray, np.ndarray]]
    labels: tuple[str, ...]
    contract: InputContract
