"""Small helpers every layer may use: file digests and the versions of the libraries at hand."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions(*distributions: str) -> dict[str, str]:
    """Python's and each installed distribution's version (missing ones left out)."""
    out = {"python": platform.python_version()}
    for dist in distributions:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def env_number(name: str, default: float, low: float, high: float) -> float:
    """``$name`` as a number in (low, high], or ``default`` when unset; anything else is one clear error."""
    import os

    from xruntime_emotion.errors import XEmotionError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low < value <= high:  # NaN fails too
        raise XEmotionError(f"${name} must be a number in ({low:g}, {high:g}], got {raw!r}")
    return value
