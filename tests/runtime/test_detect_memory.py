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

from xruntime_emotion.runtime.detect import Box, aligned_crop, regions
from xruntime_emotion.runtime.detect.tiles import _INPUT, _view

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


@pytest.mark.parametrize(("height", "width"), [(1, 64_000_000), (64_000_000, 1), (100, 20000), (480, 640)])
def test_the_number_of_search_squares_does_not_grow_with_the_aspect_ratio(height: int, width: int) -> None:
    squares = regions(height, width)
    assert 1 < len(squares) <= 42
    assert all(0 <= x < width and 0 <= y < height for x, y, _ in squares)


def _padded_square(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The reference: the whole square built, black beyond the photo, then resized (what MediaPipe does)."""
    square = np.zeros((side, side, 3), np.uint8)
    part = rgb[y0 : y0 + side, x0 : x0 + side]
    square[: part.shape[0], : part.shape[1]] = part
    return np.asarray(Image.fromarray(square).resize((_INPUT, _INPUT), Image.Resampling.BILINEAR))


@pytest.mark.parametrize(("height", "width"), [(480, 640), (1000, 333), (5, 112), (300, 4000), (129, 128)])
def test_each_view_is_the_padded_square_pixel_for_pixel(height: int, width: int) -> None:
    """Ordinary photos (up to ~25:1) see exactly the pixels of the padded square, so their boxes do not move."""
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for square in regions(height, width):
        assert np.array_equal(_view(rgb, *square), _padded_square(rgb, *square)), square


def test_a_strip_view_keeps_the_strip_and_pads_with_black() -> None:
    rgb = np.full((20000, 1, 3), 200, np.uint8)
    view = _view(rgb, 0, 0, 20000)
    assert view.shape == (_INPUT, _INPUT, 3)
    assert (view[:, 0] == 200).all() and (view[:, 1:] == 0).all()


@pytest.mark.parametrize("angle", [None, 12.0])
def test_a_face_box_far_larger_than_the_photo_is_cropped_coarser_not_whole(angle: float | None) -> None:
    """Before: a 20000-px box on a 1x20000 strip was cropped at full size, 1.6 GB of float32 (more when turned)."""
    grey = np.linspace(0, 1, 20000, dtype=np.float32)[None, :]
    crop = aligned_crop(grey, Box(0, -10000, 20000, 20000), angle)
    assert crop.shape[0] == crop.shape[1] and crop.size <= 4 * grey.size
    assert crop.min() >= 0.0 and crop.max() <= 1.0 and crop[0, -1] > crop[0, 0]  # the strip, left to right
    small = aligned_crop(grey, Box(100, -10, 20, 20), angle)  # an ordinary box: every pixel, as before
    assert small.shape == (20, 20)
