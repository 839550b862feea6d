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
