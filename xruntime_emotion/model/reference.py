"""The NumPy reference forward pass of the IR: the oracle every artifact is checked against.

Computed in float64 so that it is more exact than any float32 runtime it judges.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xruntime_emotion.model.architecture import Layer, LayerKind, Network

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "softmax": lambda x: softmax(x),
}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _windows(x: np.ndarray, layer: Layer) -> np.ndarray:
    kh, kw = layer.kernel
    sh, sw = layer.strides
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # N,Ho,Wo,C,kh,kw


def _conv(x: np.ndarray, layer: Layer, w: tuple[np.ndarray, ...]) -> np.ndarray:
    k, b = w
    return np.einsum("nhwcij,ijco->nhwo", _windows(x, layer), k.astype(np.float64), optimize=True) + b


def _dense(x: np.ndarray, layer: Layer, w: tuple[np.ndarray, ...]) -> np.ndarray:
    k, b = w
    return x @ k.astype(np.float64) + b


_LAYERS: dict[LayerKind, Callable[[np.ndarray, Layer, tuple[np.ndarray, ...]], np.ndarray]] = {
    LayerKind.CONV2D: _conv,
    LayerKind.DENSE: _dense,
    LayerKind.MAXPOOL2D: lambda x, layer, w: _windows(x, layer).max(axis=(-2, -1)),
    LayerKind.AVGPOOL2D: lambda x, layer, w: _windows(x, layer).mean(axis=(-2, -1)),
    LayerKind.FLATTEN: lambda x, layer, w: x.reshape(x.shape[0], -1),
    LayerKind.DROPOUT: lambda x, layer, w: x,  # inference
}


def forward(ir: Network, x: np.ndarray, *, logits: bool = False, chunk: int = 256) -> np.ndarray:
    """Probabilities (N,7) float64 for inputs (N,48,48,1) in [0,1]; pre-softmax logits if asked."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[1:] != ir.contract.shape:
        raise ValueError(f"reference input must be (N,{','.join(map(str, ir.contract.shape))}), got {x.shape}")
    outs = [_forward_chunk(ir, x[i : i + chunk], logits) for i in range(0, len(x), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0, len(ir.labels)))


def _forward_chunk(ir: Network, x: np.ndarray, logits: bool) -> np.ndarray:
    last = len(ir.layers) - 1
    for i, layer in enumerate(ir.layers):
        x = _LAYERS[layer.kind](x, layer, ir.weights.get(layer.name, ()))
        act = "linear" if (logits and i == last) else layer.activation
        x = _ACTIVATIONS[act](x)
    return x
