"""Write files atomically: a temporary file in the target directory, then a rename."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _anonymous(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux O_TMPFILE) reachable through /proc, or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        fd = os.open(folder, flag | os.O_RDWR, 0o600)
    except OSError:  # a file system without O_TMPFILE
        return None
    if not os.path.exists(f"/proc/{os.getpid()}/fd/{fd}"):
        os.close(fd)
        return None
    return fd


def _publish(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path``, replacing any file there."""
    src = f"/proc/{os.getpid()}/fd/{fd}"
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        # dst_dir_fd makes Python call linkat(AT_SYMLINK_FOLLOW); plain link() would not follow /proc's link
        try:
            os.link(src, path.name, dst_dir_fd=folder, follow_symlinks=True)  # complete from its first instant
            return
        except FileExistsError:
            pass
        tmp = f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
        os.link(src, tmp, dst_dir_fd=folder, follow_symlinks=True)
        try:
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)  # named for two system calls only
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
    finally:
        os.close(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, named: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    On Linux the temporary file has no name until it is complete (O_TMPFILE, reached as
    /proc/PID/fd/N): a process killed mid-write, even by SIGKILL, leaves nothing in the folder.
    Elsewhere, or with ``named=True`` (for writers that resolve the path, as HDF5 does), it is a
    hidden ``.NAME.XXXX.part`` beside ``path``, which only a SIGKILL leaves behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anon = None if named else _anonymous(path.parent)
    if anon is not None:
        try:
            yield Path(f"/proc/{os.getpid()}/fd/{anon}")
            os.fsync(anon)
            os.fchmod(anon, 0o666 & ~_umask())
            _publish(anon, path)
        finally:
            os.close(anon)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """An .npz whose bytes depend only on the arrays (fixed zip timestamps), written atomically."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return Path(path)


def write_output(path: str | Path, text: str) -> Path:
    """A result file the user named (``--json``, reports): written atomically, never through or over a
    symlink, and any failure one XEmotionError line."""
    from xruntime_emotion.errors import XEmotionError

    path = Path(path)
    if path.is_symlink():
        raise XEmotionError(f"{path}: is a symbolic link; name the file itself")
    if path.is_dir():
        raise XEmotionError(f"{path}: is a folder; name a file")
    try:
        return write_text_atomic(path, text)
    except OSError as exc:
        raise XEmotionError(f"{path}: cannot write it ({exc.strerror or exc})") from None
