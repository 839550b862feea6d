"""A golden folder from outside (--golden, $XEMOTION_GOLDEN) is read through one door before its seal is checked:
regular files only, sizes capped, npz headers judged before an array is made, one line for every refusal.

Each attack is made by code on a copy of the shipped set and run in a child process under a wall-clock bound
and a 2 GiB address-space cap, so that a regression fails here instead of hanging CI or eating the machine.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import _copy_golden

from xruntime_emotion.check import golden as G
from xruntime_emotion.errors import ConformanceError

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file types")
CAP = 2 << 30

# G.load in a child: prints the ConformanceError's message, or "loaded", and its own peak RSS in MB (VmHWM: a
# child's ru_maxrss would count the parent's pages at the fork, the whole test run's).
_LOAD = """
import resource, sys
from xruntime_emotion.check import golden as G
from xruntime_emotion.errors import ConformanceError
try:
    G.load(G.Path(sys.argv[1]))
except ConformanceError as exc:
    print(exc)
else:
    print("loaded")
try:
    print(next(int(x.split()[1]) // 1024 for x in open("/proc/self/status") if x.startswith("VmHWM:")))
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def _child(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, preexec_fn=_capped,
                          env={**os.environ, **(env or {})}, cwd=cwd)  # fmt: skip


def _load_in_child(d: Path) -> tuple[str, int]:
    """G.load(d) in a child: (its one line, peak RSS MB); a traceback or a second line fails."""
    r = _child("-c", _LOAD, str(d))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    message, peak = r.stdout.strip().splitlines()
    return message, int(peak)


def _cli_refuses(d: Path, tmp_path: Path, *needles: str) -> None:
    """`golden mirror --golden d` and `verify` with $XEMOTION_GOLDEN=d: one line each, naming the file."""
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    for args, env in (
        (["golden", "mirror", "--golden", str(d), "-o", str(tmp_path / "mirror")], None),
        (["verify", "--artifacts", str(tmp_path / "artifacts")], {"XEMOTION_GOLDEN": str(d)}),
    ):
        r = _child("-m", "xruntime_emotion.cli", *args, env=env, cwd=tmp_path)
        assert r.returncode != 0, r.stdout[-1000:]
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        for needle in needles:
            assert needle in lines[0], lines[0]
    assert not (tmp_path / "mirror").exists()


def test_a_manifest_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Before: reading manifest.json waited for a writer for ever."""
    d = _copy_golden(tmp_path)
    (d / "manifest.json").unlink()
    os.mkfifo(d / "manifest.json")
    message, _ = _load_in_child(d)
    assert "manifest.json: not a regular file" in message, message
    _cli_refuses(d, tmp_path, "manifest.json: not a regular file")


def test_a_manifest_linked_to_dev_zero_is_refused_unread(tmp_path: Path) -> None:
    """Before: /dev/zero was read as text until memory ran out (7.7 GB, then a MemoryError traceback)."""
    d = _copy_golden(tmp_path)
    (d / "manifest.json").unlink()
    (d / "manifest.json").symlink_to("/dev/zero")
    message, _ = _load_in_child(d)
    assert "manifest.json: a symbolic link" in message, message
    _cli_refuses(d, tmp_path, "manifest.json: a symbolic link")


def test_a_link_is_refused_even_to_the_right_file(tmp_path: Path) -> None:
    """The decision: files of a golden set are never links (``save`` writes none), so a link to a good file
    is refused as well as one to a device; the folder itself may be reached through a link."""
    d = _copy_golden(tmp_path / "real")
    (d / "faces.npz").rename(tmp_path / "faces.npz")
    (d / "faces.npz").symlink_to(tmp_path / "faces.npz")
    with pytest.raises(ConformanceError, match="faces.npz: a symbolic link"):
        G.load(d)
    (d / "faces.npz").unlink()
    (tmp_path / "faces.npz").rename(d / "faces.npz")
    (tmp_path / "via").symlink_to(d)
    assert len(G.load(tmp_path / "via").cases) == len(G.load().cases)


def _npy(shape: tuple[int, ...], dtype: str, body: bytes) -> bytes:
    """A .npy member whose header declares ``shape`` whatever ``body`` holds."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + body


def test_an_npz_header_declaring_a_trillion_values_is_refused_before_allocating(tmp_path: Path) -> None:
    """Before: np.load believed the header and asked for 8 TB: a MemoryError traceback."""
    d = _copy_golden(tmp_path)
    with zipfile.ZipFile(d / "expected.npz", "w") as z:
        z.writestr("fp32.npy", _npy((10**12,), "<f8", b"\0" * 64))
    message, _ = _load_in_child(d)
    assert "fp32.npy' declares (1000000000000,)" in message, message
    _cli_refuses(d, tmp_path, "expected.npz", "declares (1000000000000,)")


def test_an_npz_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    """A true header, but 512 MiB of zeros packed into half a megabyte: refused by the sizes the zip declares,
    before a byte is inflated. Before: inflated whole (peak RSS 549 MB), then refused by the seal (now 34 MB)."""
    d = _copy_golden(tmp_path)
    n = 512 << 20
    with zipfile.ZipFile(d / "faces.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("names.npy", _npy((1,), "<U4", "face".encode("utf-32-le")))
        with z.open("images.npy", "w", force_zip64=True) as member:
            member.write(_npy((n,), "|u1", b""))
            zeros = bytes(1 << 20)
            for _ in range(n >> 20):
                member.write(zeros)
    assert (d / "faces.npz").stat().st_size < 2 << 20  # a small file
    message, peak = _load_in_child(d)
    assert "faces.npz: its members declare" in message and "limit" in message, message
    assert peak < 400, f"peak RSS {peak} MB"


def test_a_golden_photo_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    """The detector photos come through the same door (before: Pillow opened them by name)."""
    from xruntime_emotion.check import detector_golden

    d = _copy_golden(tmp_path)
    section = G.load(d).manifest["detectors"]
    photo = d / section["photos"][0]["file"]
    photo.unlink()
    os.mkfifo(photo)
    with pytest.raises(ConformanceError, match="photo_0.png: not a regular file"):
        detector_golden.photos(d, section)
