"""xruntime_emotion.runtime.preprocess: image files and arrays, bad inputs refused with ImageError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import _write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.errors import (
    ImageError,
)
from xruntime_emotion.runtime.preprocess import MAX_PIXELS, load_image, prepare


def _png_bomb(path: Path, side: int) -> Path:
    """A tiny PNG whose header claims side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return _write(
        path,
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""),
    )


@pytest.mark.parametrize("side", [10_000, 100_000])  # past our limit; past Pillow's too
def test_decompression_bomb_is_refused(side: int, tmp_path: Path) -> None:
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError, match=f"limit of {MAX_PIXELS} pixels"):
        load_image(_png_bomb(tmp_path / "bomb.png", side))


@pytest.mark.parametrize("content", [b"", b"GIF89a", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_unreadable_image_files(content: bytes, tmp_path: Path, onnx_clf: EmotionClassifier) -> None:
    path = _write(tmp_path / "face.png", content)
    with pytest.raises(ImageError, match="face.png"):
        onnx_clf.predict(path)


def test_image_conversions(tmp_path: Path) -> None:
    from PIL import Image

    grey = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    rgb = np.stack([grey, 255 - grey, grey // 2], -1)
    # 16-bit grey: divided by 257, the same for a dark image as for a bright one
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.array_equal(load_image(tmp_path / "g16.png"), grey)
    dark = (grey // 64).astype(np.uint16) * 257  # every value <= 255 * 257 / 64
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert np.array_equal(load_image(tmp_path / "dark16.png"), grey // 64)
    # RGBA: alpha dropped
    Image.fromarray(np.dstack([rgb, np.full(grey.shape, 9, np.uint8)])).save(tmp_path / "rgba.png")
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgb)
    # CMYK JPEG: to RGB
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert load_image(tmp_path / "cmyk.jpg").shape == (48, 64, 3)
    # EXIF orientation 6 (rotate 90 clockwise): 48x64 stored, 64x48 seen
    im = Image.fromarray(grey)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "rot.jpg").shape == (64, 48)
    # 1x1: enlarged
    Image.fromarray(np.array([[200]], np.uint8)).save(tmp_path / "one.png")
    x = prepare(tmp_path / "one.png")
    assert x.shape == (1, 48, 48, 1) and np.allclose(x, 200 / 255)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((48, 48), np.nan, np.float32),
        np.full((48, 48), np.inf),
        np.full((48, 48), 2.0),
        np.full((48, 48), -0.5, np.float32),
        np.zeros((48, 48), np.int64),
        np.zeros((48, 48), bool),
        np.zeros((48, 48), np.complex64),
        np.zeros((2, 48, 48, 2), np.uint8),
        np.zeros((2, 2, 48, 48, 1), np.uint8),
        np.zeros(48, np.uint8),
        np.array(3, np.uint8),
        np.zeros((0, 48, 48, 1), np.float32),
        np.zeros((0, 48, 48), np.uint8),
        np.zeros((0, 5), np.uint8),
        np.array([None, None]),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_bad_arrays(bad: np.ndarray, onnx_clf: EmotionClassifier) -> None:
    with pytest.raises(ImageError):
        onnx_clf.predict(bad)


@pytest.mark.parametrize("bad", [[], [[1, 2], [3]], b"\x89PNG", 3.5, None, {"a": 1}, [np.zeros((4, 4)), None]])
def test_bad_python_inputs(bad: Any, onnx_clf: EmotionClassifier) -> None:
    with pytest.raises(ImageError):
        onnx_clf.predict(bad)


DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
)


SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6),
    st.sampled_from([(48, 48), (48, 48, 1), (48, 48, 3), (48, 48, 4), (2, 48, 48), (3, 48, 48, 1), (1, 1), (1, 7, 4)]),
)


ANY_ARRAY = st.one_of(
    hnp.arrays(DTYPES, SHAPES),  # any values, NaN and inf included
    hnp.arrays(st.sampled_from([np.float32, np.float64]), SHAPES, elements=st.floats(0, 1, width=32)),
    hnp.arrays(np.uint8, SHAPES),
)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def surely_valid(a: Any) -> bool:
    """A face the documented grammar accepts: grey (H,W), (H,W,1|3|4) or a batch (N,48,48), non-empty, in
    uint8/uint16, or float32/64 within [0, 1]. Refusing one of these is a bug, not caution."""
    if not isinstance(a, np.ndarray) or a.size == 0:
        return False
    if a.dtype in (np.uint8, np.uint16):
        values = True
    elif a.dtype in (np.float32, np.float64):
        values = bool(np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0)
    else:
        return False
    shape = a.ndim == 2 or (a.ndim == 3 and (a.shape[2] in (1, 3, 4) or a.shape[1:] == (48, 48)))
    return values and shape


@PROPERTY
@given(a=ANY_ARRAY)
def test_prepare_returns_the_contract_or_an_image_error(a: np.ndarray) -> None:
    try:
        x = prepare(a)
    except ImageError:
        assert not surely_valid(a), f"a valid face was refused: {a.dtype} {a.shape}"
        return
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (48, 48, 1) and len(x) >= 1
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0


@PROPERTY
@given(faces=st.one_of(ANY_ARRAY, st.lists(ANY_ARRAY, min_size=0, max_size=3)))
def test_predict_answers_or_raises_an_image_error(faces: Any, onnx_clf: EmotionClassifier) -> None:
    try:
        p = onnx_clf.predict(faces)
    except ImageError:
        if isinstance(faces, np.ndarray):
            assert not surely_valid(faces), f"a valid face was refused: {faces.dtype} {faces.shape}"
        else:  # a list: each item is one face, never a batch
            one_face = [surely_valid(f) and (f.ndim == 2 or f.shape[2] in (1, 3, 4)) for f in faces]
            assert not (faces and all(one_face)), "valid faces were refused"
        return
    assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 7
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1.0, atol=1e-4)
    assert np.array_equal(p, onnx_clf.predict(faces)), "the same question must get the same answer"


@PROPERTY
@given(a=hnp.arrays(np.uint8, st.sampled_from([(48, 48), (30, 70), (48, 48, 3), (100, 90, 4)])))
def test_dtype_and_layout_conversions_agree(a: np.ndarray) -> None:
    """uint8, uint16 (x257) and float (/255) copies of one image are the same face."""
    x8 = prepare(a)
    assert np.allclose(prepare(a.astype(np.uint16) * 257), x8, atol=1e-6)
    assert np.allclose(prepare(a.astype(np.float64) / 255.0), x8, atol=1e-6)
    assert np.array_equal(prepare([a, a]), np.concatenate([x8, x8]))
