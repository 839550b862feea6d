"""Small helpers every layer may use: file digests, the versions of the libraries at hand, and the one door
through which files from outside (models, weights, golden sets) are opened and read.

The door (``open_regular``, ``read_bounded``, ``read_json``, ``read_npz``): a path is opened only once it is
known to be a regular file (a FIFO would block the reader for ever, /dev/zero never ends, a folder or device
is no file); it is opened non-blocking and checked again with fstat, so what is read is what was checked,
even if the name is swapped meanwhile; sizes are capped before a byte is read; an npz's members are judged by
their zip and .npy headers before an array is allocated; every refusal is one ``XEmotionError`` (or the
subclass the caller names) that names the path.
"""

from __future__ import annotations

import os
import platform
import stat
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from hashlib import _Hash
    from pathlib import Path

    import numpy as np

    from xruntime_emotion.errors import XEmotionError


def sha256(data: bytes = b"") -> _Hash:
    """``hashlib.sha256``: OpenSSL's, taken from ``_hashlib`` without ``hashlib`` itself, whose import (its other
    algorithms, BLAKE2) costs an app's start about 1 ms; Python's own where this Python has no OpenSSL."""
    try:
        from _hashlib import openssl_sha256 as new
    except ImportError:
        from hashlib import sha256 as new
    return new(data)


def sha256_file(path: str | Path) -> str:
    """The file's sha256 (a regular file only: a FIFO or device is refused, never waited on)."""
    h = sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _error(error: type[XEmotionError] | None) -> type[XEmotionError]:
    from xruntime_emotion.errors import XEmotionError

    return error or XEmotionError


def _judge(p: str, st: os.stat_result, max_bytes: int | None, error: type[XEmotionError]) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{p}: a symbolic link; only regular files are read here")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p}: not a regular file (a FIFO, device or folder is never opened)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{p}: {st.st_size} bytes, over the {max_bytes}-byte limit")


def open_regular(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    follow_symlinks: bool = True,
    error: type[XEmotionError] | None = None,
    what: str = "file",
) -> BinaryIO:
    """``path`` opened for binary reading, once it is known to be a regular file of at most ``max_bytes``.

    ``follow_symlinks=False``: a symbolic link is refused too (lstat, then O_NOFOLLOW). ``error``: the
    XEmotionError subclass raised (default XEmotionError); ``what``: what messages call the file.
    """
    error = _error(error)
    p = os.fspath(path)
    try:
        before = os.stat(p, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise error(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    _judge(p, before, max_bytes, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(p, flags)  # non-blocking: a FIFO swapped in after the stat does not hang the open
    except OSError as exc:
        raise error(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        now = os.fstat(fd)  # the file that was opened, not the name that was checked
        _judge(p, now, max_bytes, error)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise error(f"{p}: changed while being opened")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(
    path: str | os.PathLike[str],
    max_bytes: int,
    *,
    follow_symlinks: bool = True,
    error: type[XEmotionError] | None = None,
    what: str = "file",
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``open_regular``); never more are read."""
    with open_regular(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks, error=error, what=what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _error(error)(f"{os.fspath(path)}: grew past the {max_bytes}-byte limit while being read")
    return data


def read_json(
    path: str | os.PathLike[str],
    max_bytes: int,
    *,
    follow_symlinks: bool = True,
    error: type[XEmotionError] | None = None,
    what: str = "file",
) -> Any:
    """A JSON document from a regular file of at most ``max_bytes``; malformed or too deeply nested: ``error``."""
    import json

    data = read_bounded(path, max_bytes, follow_symlinks=follow_symlinks, error=error, what=what)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad encodings are ValueErrors
        raise _error(error)(f"{os.fspath(path)}: not readable JSON ({type(exc).__name__}: {exc})") from None


def read_npz(
    path: str | os.PathLike[str],
    max_bytes: int,
    max_array_bytes: int,
    *,
    follow_symlinks: bool = True,
    error: type[XEmotionError] | None = None,
    what: str = "file",
) -> dict[str, np.ndarray]:
    """The arrays of an npz file of at most ``max_bytes``, holding at most ``max_array_bytes`` in all.

    Before an array is allocated: the zip's declared sizes are summed, and each member must be a .npy
    whose header (version 1 or 2, no object dtype) declares no more bytes than the member holds.
    """
    import io
    import zipfile

    import numpy as np

    from xruntime_emotion.errors import XEmotionError

    error = _error(error)
    p = os.fspath(path)
    data = read_bounded(path, max_bytes, follow_symlinks=follow_symlinks, error=error, what=what)
    fmt = np.lib.format
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
            declared = sum(m.file_size for m in members)
            if declared > max_array_bytes:
                raise error(f"{p}: its members declare {declared} bytes, over the {max_array_bytes}-byte limit")
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise error(f"{p}: member {m.filename!r} is not an array (.npy)")
                with z.open(m) as member:
                    version = fmt.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise error(f"{p}: member {m.filename!r} has .npy format version {version}")
                    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read_header(member)
                    if dtype.hasobject:
                        raise error(f"{p}: member {m.filename!r} holds Python objects; only plain arrays are read")
                    size = dtype.itemsize
                    for n in shape:
                        size *= n
                    if size > m.file_size:
                        raise error(f"{p}: member {m.filename!r} declares {shape} {dtype} ({size} bytes) but holds "
                                    f"{m.file_size}")  # fmt: skip
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                return {k: arrays[k] for k in arrays.files}
    except XEmotionError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, ValueError, EOFError, ...: damaged members
        raise error(f"{p}: not a readable npz ({type(exc).__name__}: {exc})") from None


def versions(*distributions: str) -> dict[str, str]:
    """Python's and each installed distribution's version (missing ones left out)."""
    import importlib.metadata  # here, not at the top: it costs an app's start ~10 ms

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
