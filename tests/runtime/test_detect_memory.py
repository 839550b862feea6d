"""BlazeFace's memory on photos of any shape: bounded by the photo's pixels, not by its longer side squared.

Photos are made by code (tiny PNGs of one colour); peak memory is measured on `xemotion predict --detect` in a
fresh process, as a user runs it.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xruntime_emotion.runtime.detect import Box, aligned_crop, levels
from xruntime_emotion.runtime.detect.search import _INPUT, _PAD, level_input, view

PEAK_LIMIT_MB = 1024
# Peak RSS of the call measured in a child of a fresh Python, so no earlier child of the test run counts.
_PEAK = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, "MB")
sys.exit(r.returncode)
"""


def _png(path: Path, height: int, width: int) -> Path:
    Image.fromarray(np.full((height, width), 200, np.uint8)).save(path, optimize=True)
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xruntime_emotion.cli", *args]


@pytest.mark.parametrize(("width", "height"), [(1, 20000), (20000, 100)])
def test_a_strip_photo_is_searched_in_bounded_memory(width: int, height: int, tmp_path: Path) -> None:
    """Before: each search square was built at full size; a 1x20000 strip's whole-photo square alone is
    20000x20000x3 bytes, and the run peaked at 4.4 GB (1.7 GB for 20000x100)."""
    photo = _png(tmp_path / "strip.png", height, width)
    r = subprocess.run([sys.executable, "-c", _PEAK, *_cli("predict", "--detect", str(photo))],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "no face found" in r.stdout
    peak = int(r.stdout.strip().splitlines()[-1].split()[0])
    assert peak < PEAK_LIMIT_MB, f"peak RSS {peak} MB"


def test_running_out_of_memory_is_one_line(tmp_path: Path) -> None:
    """Under an address-space cap a large photo runs out of memory: one line, never a traceback."""
    Image.fromarray(np.full((8000, 8000, 3), 120, np.uint8)).save(tmp_path / "big.png")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    r = subprocess.run(_cli("predict", "--detect", str(tmp_path / "big.png")), capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, preexec_fn=cap)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if r.returncode != 0:  # where 1.5 GB is enough (a leaner platform), it simply succeeds
        # "error: out of memory: ..." here; a native library that cannot get its buffers says so in one line too
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    ("height", "width"), [(1, 64_000_000), (64_000_000, 1), (100, 20000), (480, 640), (8000, 8000)]
)
def test_the_pyramid_does_not_grow_with_the_photo(height: int, width: int) -> None:
    """The finest level is at most 1280 px long (max_side), so no level's input outgrows it, at any shape."""
    scales = levels(height, width)
    assert 1 <= len(scales) <= 5 and scales == sorted(scales)
    longest = max(height, width) / scales[0]
    assert longest <= 1280 + 1e-6 and max(height, width) / scales[-1] <= 160 + 1e-6
    if (height, width) == (480, 640):
        assert scales == pytest.approx([32 / 36, 32 / 36 * 2.5, 32 / 36 * 6.25])


@pytest.mark.parametrize(("height", "width"), [(480, 640), (5, 112), (20000, 1), (100, 20000)])
def test_a_level_is_the_photo_scaled_and_mirrored(height: int, width: int) -> None:
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x, _, _ = level_input(rgb, levels(height, width)[0])  # the finest level: at most 1280 long, padded
    assert x.shape[1] % 16 == 0 and x.shape[2] % 16 == 0 and x.shape[1] * x.shape[2] <= (1280 + 2 * _PAD + 16) ** 2
    if max(height, width) <= 1280:  # at scale 1: the photo itself, then its mirror image beyond each edge
        x, sx, sy = level_input(rgb, 1.0)
        assert sx == sy == 1.0
        inside = x[0, _PAD : _PAD + height, _PAD : _PAD + width]
        assert np.array_equal(np.rint((inside + 1) * 127.5).astype(np.uint8), rgb)
        if width > 1:
            assert np.array_equal(x[0, _PAD, _PAD - 1], x[0, _PAD, _PAD + 1])


def test_a_view_is_the_square_resized_and_mirrored_beyond_the_photo() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    got = view(rgb, 50, 60, 200)  # inside: what Pillow makes of the crop
    want = np.asarray(Image.fromarray(rgb[60:260, 50:250]).resize((_INPUT, _INPUT), Image.Resampling.BILINEAR))
    assert got.shape == (_INPUT, _INPUT, 3) and np.array_equal(got, want)
    strip = np.full((20000, 1, 3), 200, np.uint8)  # a huge square over a strip: sampled, mirrored, small
    assert np.array_equal(view(strip, -10000, 0, 20000), np.full((_INPUT, _INPUT, 3), 200, np.uint8))


@pytest.mark.parametrize("angle", [None, 12.0])
def test_a_face_box_far_larger_than_the_photo_is_cropped_coarser_not_whole(angle: float | None) -> None:
    """Before: a 20000-px box on a 1x20000 strip was cropped at full size, 1.6 GB of float32 (more when turned)."""
    grey = np.linspace(0, 1, 20000, dtype=np.float32)[None, :]
    crop = aligned_crop(grey, Box(0, -10000, 20000, 20000), angle)
    assert crop.shape[0] == crop.shape[1] and crop.size <= 4 * grey.size
    assert crop.min() >= 0.0 and crop.max() <= 1.0 and crop[0, -1] > crop[0, 0]  # the strip, left to right
    small = aligned_crop(grey, Box(100, -10, 20, 20), angle)  # an ordinary box: every pixel, as before
    assert small.shape == (20, 20)
