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
from xruntime_emotion.util import open_regular


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _walk(path: Path, group: Any, name: str) -> Any:
    """``group[name]``, reached one hard link at a time: every component of the path is looked at as a link
    (never followed to find out) before it is entered. A soft or external link anywhere on the way would
    lead to another object or another file (a FIFO, say); ``a/ext/kernel`` is refused at ``ext``."""
    import h5py

    parts = name.split("/")
    if any(part in ("", ".") for part in parts):
        raise WeightsError(f"{path}: {name!r} under {group.name} is not a plain relative path")
    item = group
    for part in parts:
        if not isinstance(item, h5py.Group):
            raise WeightsError(f"{path}: {item.name} is not a group, so it has no {part!r}")
        link = item.get(part, getlink=True)
        if link is None:
            raise WeightsError(f"{path}: {item.name.rstrip('/')}/{part} is missing")
        if not isinstance(link, h5py.HardLink):
            where = f"{item.name.rstrip('/')}/{part}"
            raise WeightsError(f"{path}: {where} is a {type(link).__name__}; only plain datasets are read")
        item = item[part]
    return item


def _member(path: Path, group: Any, name: str, expected: tuple[int, ...] | None) -> Any:
    """``group[name]`` once it is known to be a plain dataset, stored in this file, of the expected shape.

    Nothing is read before these checks: HDF5 external storage and virtual datasets can point at any
    file on the machine, soft and external links anywhere, and a declared shape can be any size.
    """
    import h5py

    item = _walk(path, group, name)
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
    architecture expects, in order; each dataset is checked against them before it is read.

    The file must be a regular file (``util.open_regular``); HDF5 reads it through the descriptor that was
    checked, never by its name again.
    """
    import h5py

    path = Path(path)
    try:
        with open_regular(path, error=WeightsError, what="weights file") as fh, h5py.File(fh, "r") as f:
            nested = f.get("model_weights", getlink=True) is not None  # a full-model h5 keeps them here
            root = _member(path, f, "model_weights", None) if nested else f
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
