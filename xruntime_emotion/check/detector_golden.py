"""The face detectors' part of the golden set: a few fixed photos and the boxes each detector finds there.

``golden/detector/photo_N.png``: 640x480 RGB photos made by code from faces of the shipped FER2013
Training sample, pasted at fixed places, sizes and angles onto smooth gradients (small files, no noise).
``manifest["detectors"]`` (sealed with the rest of the manifest) holds each photo's pixel sha256 and
true boxes, the box tolerance, and per detector of the catalog its recorded boxes and scores, with the
sha256 of its model file. `verify` runs each installed detector on the photos and holds it to them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import ConformanceError, MissingDependencyError
from xruntime_emotion.model.calibration import shipped_sample
from xruntime_emotion.model.data import image_sha256
from xruntime_emotion.runtime.detect import DETECTORS, Box, Detection, build_detector
from xruntime_emotion.runtime.preprocess import load_image
from xruntime_emotion.util import read_bounded, sha256_file, versions

FOLDER = "detector"
MAX_PHOTO_BYTES = 16 * 2**20  # a golden photo file (about 50 KB each); a larger one is refused unread
WIDTH, HEIGHT = 640, 480
TOLERANCE = {
    "max_px": 2,
    "reason": "the same detector on another CPU or onnxruntime build moves a box edge by rounding only "
    "(0 px seen between runs here); a changed decoder or model moves it by far more",
}
# Per photo: gradient end colours and direction (degrees), then faces as (sample row, x, y, side, turn).
Placed = tuple[tuple[int, int, int, int, float], ...]
PhotoSpec = tuple[tuple[int, ...], tuple[int, ...], float, Placed]
PHOTOS: tuple[PhotoSpec, ...] = (
    ((40, 90, 160), (220, 200, 170), 30.0, ((0, 80, 120, 180, 0.0), (1, 400, 90, 110, -8.0))),
    ((200, 210, 220), (60, 60, 60), 120.0, ((2, 250, 150, 200, 6.0),)),
    ((120, 160, 90), (250, 240, 230), 200.0, ((3, 40, 40, 72, 0.0), (4, 300, 250, 140, 12.0), (5, 470, 60, 120, -5.0))),
    ((30, 30, 40), (90, 80, 120), 75.0, ((6, 200, 100, 160, -12.0),)),
)


def make_photo(
    faces: np.ndarray,
    spec: tuple[tuple[int, ...], tuple[int, ...], float, tuple[tuple[int, int, int, int, float], ...]],
) -> tuple[np.ndarray, list[Box]]:
    """One golden photo (uint8 RGB) and its true boxes, from the faces ``spec`` names."""
    from PIL import Image

    a, b, direction, placed = spec
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    t = (math.cos(math.radians(direction)) * xx / WIDTH + math.sin(math.radians(direction)) * yy / HEIGHT + 1) / 2
    canvas = np.array(a, np.float64) * (1 - t[..., None]) + np.array(b, np.float64) * t[..., None]
    photo = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    boxes = []
    for row, x, y, side, turn in placed:
        face = Image.fromarray(faces[row]).resize((side, side), Image.Resampling.BICUBIC).convert("RGB")
        mask = Image.new("L", (side, side), 255)
        photo.paste(face.rotate(turn, Image.Resampling.BICUBIC), (x, y), mask.rotate(turn, Image.Resampling.BICUBIC))
        boxes.append(Box(x, y, side, side))
    return np.asarray(photo), boxes


def boxes(found: list[Detection]) -> list[list[float]]:
    """Detections as recorded: [x, y, w, h, score] each."""
    return [[d.box.x, d.box.y, d.box.w, d.box.h, round(float(d.score), 4)] for d in found]


def record(directory: Path) -> dict[str, Any]:
    """Write the photos into ``directory``/detector and return the manifest section (every installed detector)."""
    from xruntime_emotion.atomic import write_bytes_atomic

    faces = shipped_sample().images
    photos, entries = [], []
    for i, spec in enumerate(PHOTOS):
        pixels, truth = make_photo(faces, spec)
        name = f"{FOLDER}/photo_{i}.png"
        write_bytes_atomic(directory / name, _png(pixels))
        photos.append(pixels)
        entries.append({"file": name, "sha256": image_sha256(pixels), "truth": [[b.x, b.y, b.w, b.h] for b in truth]})
    recorded: dict[str, Any] = {}
    for name, kind in DETECTORS.items():
        try:
            det = build_detector(name)
        except MissingDependencyError:
            continue  # not installed here: not recorded (verify says so)
        recorded[name] = {
            "model_sha256": sha256_file(kind.model) if kind.model else None,
            "boxes": [boxes(det.detect(p)) for p in photos],
            "versions": versions("onnxruntime", "opencv-python-headless", "numpy", "pillow"),
        }
    return {"photos": entries, "tolerance": TOLERANCE, "recorded": recorded}


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def photos(directory: Path, section: dict[str, Any]) -> list[np.ndarray]:
    """The golden photos, each checked against its recorded pixel sha256."""
    out = []
    for entry in section["photos"]:
        path = directory / entry["file"]
        data = read_bounded(path, MAX_PHOTO_BYTES, follow_symlinks=False, error=ConformanceError, what="golden photo")
        pixels = load_image(data, name=str(path))  # decoded from the bytes that were checked
        if image_sha256(pixels) != entry["sha256"]:
            raise ConformanceError(f"{path}: pixels do not match their sha256 (corrupt golden set?)")
        out.append(pixels)
    return out


def box_error(got: list[list[float]], want: list[list[float]]) -> float:
    """The largest box-edge difference in pixels between two detections of one photo, left to right
    (inf when they found a different number of faces)."""
    if len(got) != len(want):
        return math.inf
    worst = 0.0
    for g, w in zip(sorted(got), sorted(want)):
        gx, gy, gw, gh, *_ = g
        wx, wy, ww, wh, *_ = w
        worst = max(worst, abs(gx - wx), abs(gy - wy), abs(gx + gw - wx - ww), abs(gy + gh - wy - wh))
    return float(worst)


def check(section: dict[str, Any]) -> None:
    """The section's fields, of the types `verify` computes with (raises TypeError/KeyError/ValueError)."""
    if not isinstance(section["tolerance"]["max_px"], (int, float)) or isinstance(section["tolerance"]["max_px"], bool):
        raise TypeError("detectors.tolerance.max_px is not a number")
    for entry in section["photos"]:
        inside = isinstance(entry["file"], str) and not Path(entry["file"]).is_absolute() and ".." not in entry["file"]
        if not inside or not isinstance(entry["sha256"], str):
            raise TypeError("detectors.photos: each needs a file (inside the golden set) and a sha256")
    for name, rec in section["recorded"].items():
        if len(rec["boxes"]) != len(section["photos"]):
            raise ValueError(f"detectors.recorded.{name}: one list of boxes per photo is needed")
        for listed in rec["boxes"]:
            for b in listed:
                if len(b) != 5 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b):
                    raise TypeError(f"detectors.recorded.{name}: a box is [x, y, w, h, score]")
