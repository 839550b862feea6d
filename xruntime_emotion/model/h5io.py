"""DeepFace's weights file: the legacy (Keras 2) HDF5 weights layout, read and written with h5py.

Layout: root attrs ``layer_names``, ``backend``, ``keras_version``; one group per layer with
attr ``weight_names`` (``conv2d/kernel:0``, ...) and the arrays beneath it. Weighted layers
are matched to the architecture by order, not by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import WeightsError
from xruntime_emotion.model.architecture import Network


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _member(path: Path, group: Any, name: str, expected: tuple[int, ...] | None) -> Any:
    """``group[name]`` once it is known to be a plain dataset, stored in this file, of the expected shape.

    Nothing is read before these checks: HDF5 external storage and virtual datasets can point at any
    file on the machine, soft and external links anywhere, and a declared shape can be any size.
    """
    import h5py

    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise WeightsError(f"{path}: {group.name}/{name} is a {type(link).__name__}; only plain datasets are read")
    item = group[name]
    if expected is None:
        return item
    if not isinstance(item, h5py.Dataset):
        raise WeightsError(f"{path}: {item.name} is not a dataset")
    if item.external or item.is_virtual:
        raise WeightsError(f"{path}: {item.name} keeps its data outside this file (external or virtual storage)")
    if tuple(item.shape) != expected:
        raise WeightsError(
            f"{path}: layer {group.name.strip('/')}: {name} has shape {tuple(item.shape)}, the architecture needs "
            f"{expected}"
        )
    return item


def read_deepface_h5(
    path: str | Path, shapes: list[tuple[tuple[int, ...], ...]] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every weighted layer, in file order. ``shapes``: the (kernel, bias) shapes the
    architecture expects, in order; each dataset is checked against them before it is read."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            root = _member(path, f, "model_weights", None) if "model_weights" in f else f  # full-model h5 too
            if "layer_names" not in root.attrs:
                raise WeightsError(f"{path}: HDF5 file without 'layer_names': not a Keras weights file")
            out: list[tuple[np.ndarray, np.ndarray]] = []
            for lname in (_s(n) for n in root.attrs["layer_names"]):
                group = _member(path, root, lname, None)
                names = [_s(n) for n in group.attrs.get("weight_names", [])]
                if not names:
                    continue
                if len(names) != 2:
                    raise WeightsError(f"{path}: layer {lname} has {len(names)} weights, expected kernel and bias")
                if shapes is not None and len(out) >= len(shapes):
                    raise WeightsError(f"{path}: more weighted layers than the architecture's {len(shapes)}")
                want = shapes[len(out)] if shapes is not None else (None, None)
                kernel, bias = (_member(path, group, n, w) for n, w in zip(names, want))
                out.append((np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)))
            return out
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:  # h5py raises RuntimeError on damage
        raise WeightsError(f"{path}: unreadable HDF5 weights file ({type(exc).__name__}: {exc})") from exc


def write_deepface_h5(ir: Network, path: str | Path) -> Path:
    """Write ``ir``'s weights in DeepFace's legacy layout, so the file drops into DeepFace itself."""
    import h5py

    from xruntime_emotion.atomic import atomic_path

    with atomic_path(path, named=True) as tmp:  # HDF5 needs a real path
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["layer_names"] = np.array([layer.name.encode() for layer in ir.layers])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.15.0"
            for layer in ir.layers:
                g = f.create_group(layer.name)
                if not layer.has_weights:
                    g.attrs["weight_names"] = np.array([], dtype="S1")
                    continue
                names = [f"{layer.name}/kernel:0", f"{layer.name}/bias:0"]
                g.attrs["weight_names"] = np.array([n.encode() for n in names])
                for n, a in zip(names, ir.weights[layer.name]):
                    g.create_dataset(n, data=a)
    return Path(path)
