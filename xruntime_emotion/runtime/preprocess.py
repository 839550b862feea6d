"""Turn images and arrays into the network's input: float32 (N,48,48,1) in [0,1].

Accepted, one face or many:
- a path to an image file (decoded with Pillow; EXIF rotation applied, an unreadable EXIF block
  ignored; 16-bit grey divided by 257 into 8-bit, whatever its range; RGBA, palette and CMYK
  converted to RGB, CMYK naively (no ICC profile); alpha dropped, not composited). Files over
  ``MAX_PIXELS`` pixels (64 million; $XEMOTION_MAX_PIXELS) are refused before they are decoded;
- a NumPy array, by this grammar (anything else is refused, naming it):
    (H,W)                 one grey face, any size
    (H,W,C), C in 1,3,4   one face with channels
    (N,H,W), H,W >= 8     N grey faces (so (48,48,2) or (48,48,5) is refused, not read as 48 faces)
    (N,H,W,C), C in 1,3,4 N faces with channels
  Three- and four-channel arrays are **RGB(A)** order (convert OpenCV's BGR first); grey is
  ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B, as Pillow's "L".
- dtypes: uint8 (scaled by 1/255), uint16 (1/65535), float16/32/64 already in [0,1]; NaN, inf,
  values outside [0,1], other dtypes (int64, bool, ...), other ranks and empty input: ImageError.
Any size is resized to 48x48: area averaging (box filter) when shrinking, bilinear when enlarging.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Union

import numpy as np

from xruntime_emotion.errors import ImageError
from xruntime_emotion.model.labels import INPUT_SHAPE
from xruntime_emotion.util import env_number

SIZE = INPUT_SHAPE[0]  # square crops; the input contract: model.architecture.CONTRACT
# Refuse images above this many pixels (decompression bombs); $XEMOTION_MAX_PIXELS overrides.
MAX_PIXELS = 64_000_000  # the default limit; read through max_pixels(), where $XEMOTION_MAX_PIXELS overrides it


def max_pixels() -> int:
    """The decoded-size limit now ($XEMOTION_MAX_PIXELS, validated when it is used, not at import)."""
    return int(env_number("XEMOTION_MAX_PIXELS", MAX_PIXELS, 0, 2**40))


# The decoders Pillow may use: formats whose header states the image size. ICO, ICNS and other
# containers are refused: their header can hide a much larger embedded image.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF", "PPM")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Face = Union[np.ndarray, str, os.PathLike]  # noqa: UP007 (a runtime alias)
Faces = Union[Face, Sequence[Face]]  # noqa: UP007


def load_image(source: str | os.PathLike | bytes, *, name: str | None = None) -> np.ndarray:
    """Decode an image file (or the bytes of one, such as a table's image column) to uint8 grey (H,W)
    or RGB (H,W,3). ``name`` is what error messages call it (default: the path, or "image bytes")."""
    from PIL import Image, ImageOps

    if isinstance(source, (bytes, bytearray, memoryview)):
        path: Any = name or "image bytes"
        stream: Any = io.BytesIO(source)
    else:
        from pathlib import Path

        stream = Path(source)
        path = name or stream
        if stream.exists() and not stream.is_file():  # a FIFO or a device would block or never end
            raise ImageError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is the limit here
            limit = max_pixels()
            with Image.open(stream, formats=IMAGE_FORMATS) as opened:
                if opened.width * opened.height > limit:
                    raise ImageError(f"{path}: {opened.width}x{opened.height} exceeds the limit of {limit} pixels")
                opened.load()
                im: Image.Image = opened
                try:
                    im = ImageOps.exif_transpose(opened)
                except Exception:  # a damaged EXIF block: keep the pixels as stored
                    pass
                if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grey ("I" from some decoders)
                    a = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
                    return np.rint(a / 257.0).astype(np.uint8)
                if im.mode == "F":  # float grey (TIFF): the same rule as float arrays
                    f = np.asarray(im, dtype=np.float32)
                    if not np.isfinite(f).all():
                        raise ImageError(f"{path}: float image with NaN or inf pixels")
                    if f.size and (f.min() < 0.0 or f.max() > 1.0):
                        raise ImageError(f"{path}: float image outside [0,1] (min {f.min():g}, max {f.max():g})")
                    return np.rint(f * 255.0).astype(np.uint8)
                if im.mode not in ("L", "RGB"):
                    rgb = im.mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "RGBX", "RGBa", "La", "LAB", "HSV")
                    im = im.convert("RGB") if rgb else im.convert("L")
                a = np.asarray(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except Image.DecompressionBombError as exc:  # past Pillow's own limit, before ours could look
        raise ImageError(f"{path}: exceeds the limit of {max_pixels()} pixels ({exc})") from None
    except MemoryError:
        raise ImageError(f"{path}: too large to decode") from None
    except Exception as exc:  # Pillow's decoders raise many types on damaged files
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if a.size == 0:
        raise ImageError(f"{path}: empty image")
    return a


def _to_gray_float(a: np.ndarray) -> np.ndarray:
    """One image (H,W[,C]) of any accepted dtype -> float32 (H,W) in [0,1]."""
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[:, :, 0]
        elif a.shape[2] in (3, 4):
            a = a[:, :, :3]
        else:
            raise ImageError(f"an image must have 1, 3 or 4 channels, got {a.shape[2]}")
    elif a.ndim != 2:
        raise ImageError(f"an image must be (H,W) or (H,W,C), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"empty image of shape {a.shape}")
    if a.dtype in (np.uint8, np.uint16):  # divided in place: one float copy of a large photo, not two
        f = a.astype(np.float32)
        f /= np.float32(255.0 if a.dtype == np.uint8 else 65535.0)
    elif a.dtype in (np.float32, np.float64, np.float16):
        if not np.isfinite(a).all():
            raise ImageError("image contains NaN or inf")
        if a.min() < 0.0 or a.max() > 1.0:
            raise ImageError(f"float images must lie in [0,1], got [{a.min():.3g}, {a.max():.3g}]; divide uint8 by 255")
        f = a.astype(np.float32, copy=False)
    else:
        raise ImageError(f"unsupported dtype {a.dtype}; use uint8, uint16 or float in [0,1]")
    if f.ndim == 3:
        f = f @ _LUMA
    return f


def _resize(f: np.ndarray) -> np.ndarray:
    if f.shape == (SIZE, SIZE):
        return f
    from PIL import Image

    shrink = f.shape[0] >= SIZE and f.shape[1] >= SIZE
    im = Image.fromarray(np.ascontiguousarray(f, dtype=np.float32), mode="F")
    im = im.resize((SIZE, SIZE), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    return np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)


CHANNELS = (1, 3, 4)
MIN_BATCH_SIDE = 8  # (N,H,W) is a batch only when its faces are at least this large
GRAMMAR = "(H,W), (H,W,C), (N,H,W) with H,W >= 8, or (N,H,W,C); C in 1, 3, 4"


def _is_batch(a: np.ndarray) -> bool:
    """Whether an array is many faces (see the module docstring); ambiguous shapes are refused."""
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in CHANNELS):
        return False
    if a.ndim == 4 and a.shape[3] in CHANNELS:
        return True
    if a.ndim == 3 and min(a.shape[1:]) >= MIN_BATCH_SIDE:
        return True
    raise ImageError(f"cannot tell faces from channels in an array of shape {a.shape}; accepted: {GRAMMAR}")


def prepare(faces: Faces) -> np.ndarray:
    """float32 (N,48,48,1) in [0,1] from one face or many (see the module docstring)."""
    if isinstance(faces, np.ndarray):
        if faces.size == 0:
            raise ImageError(f"no faces given (an empty array of shape {faces.shape})")
        if faces.dtype == np.float32 and faces.ndim == 4 and faces.shape[1:] == (SIZE, SIZE, 1):
            if not np.isfinite(faces).all():
                raise ImageError("input contains NaN or inf")
            if faces.min() < 0.0 or faces.max() > 1.0:
                raise ImageError("float input must lie in [0,1]; divide uint8 by 255")
            return np.ascontiguousarray(faces)  # fast path: already the contract
        if faces.dtype == np.uint8 and faces.shape[-2:] == (SIZE, SIZE) and faces.ndim in (2, 3):
            return (faces.astype(np.float32) / np.float32(255.0)).reshape(-1, SIZE, SIZE, 1)  # grey crops
        items: Iterable[Face] = list(faces) if _is_batch(faces) else [faces]
    elif isinstance(faces, (str, os.PathLike)):
        items = [faces]
    elif isinstance(faces, (bytes, bytearray)):
        raise ImageError("bytes are not a face: pass a path or a decoded array")
    elif isinstance(faces, Sequence):
        items = faces
    else:
        raise ImageError(f"cannot read a face from {type(faces).__name__}")
    out = []
    for item in items:
        try:
            a = load_image(item) if isinstance(item, (str, os.PathLike)) else np.asarray(item)
        except (ValueError, TypeError) as exc:  # ragged nesting, objects NumPy cannot hold
            raise ImageError(f"cannot read a face from {type(item).__name__} ({exc})") from None
        if a.dtype == object or a.dtype.kind not in "uif" and a.dtype != np.bool_:
            raise ImageError(f"unsupported array dtype {a.dtype}")
        out.append(_resize(_to_gray_float(a)))
    if not out:
        raise ImageError("no faces given")
    return np.stack(out)[..., None]
