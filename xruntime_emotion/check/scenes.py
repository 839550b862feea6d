"""A measurement set for face detectors: FER2013 faces pasted into synthetic 640x480 scenes, seeded.

Each scene has 1-3 non-overlapping faces, each upscaled to a side of 60-200 px and rotated by up to
15 degrees inside the upright square it is pasted into; that square is its ground-truth box. The
backgrounds are noise, gradients and random shapes (never faces). The caller picks the faces: use
Training or PublicTest rows only, so PrivateTest stays unseen.

    scenes = make_scenes(fer.split("Training")[0], n=500, seed=0)
    recall, precision, faces_per_s = score(detector, scenes)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from xruntime_emotion.runtime.detect import BlazeFaceDetector, Box, Detector, framing_features

WIDTH, HEIGHT = 640, 480
MIN_SIDE, MAX_SIDE = 60, 200
MAX_ANGLE = 15.0  # degrees, either way
MAX_FACES = 3
IOU = 0.5


@dataclass(frozen=True)
class Scene:
    """One photo: uint8 RGB (480,640,3), the faces' true boxes, the rows of ``faces`` they came from, their angles."""

    image: np.ndarray
    boxes: tuple[Box, ...]
    rows: tuple[int, ...]
    angles: tuple[float, ...]


def _background(rng: np.random.Generator) -> Image.Image:
    """Noise, a gradient, or either with random shapes on it; every kind seen equally often."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    if kind == 0:  # coloured noise, blurred to a random grain
        noise = rng.uniform(0, 255, (HEIGHT, WIDTH, 3))
        im = Image.fromarray(noise.astype(np.uint8)).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 4))))
        return im
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * np.pi)
    t = (np.cos(theta) * xx / WIDTH + np.sin(theta) * yy / HEIGHT) / np.sqrt(2) + 0.5
    canvas = a * (1 - t[..., None]) + b * t[..., None] + rng.normal(0, rng.uniform(0, 12), (HEIGHT, WIDTH, 3))
    im = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if kind >= 2:  # shapes: rectangles, ellipses, polygons and lines in random colours
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(5, 25))):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            x0, y0 = rng.uniform(-50, WIDTH), rng.uniform(-50, HEIGHT)
            w, h = rng.uniform(10, 250, 2)
            shape = rng.integers(4)
            if shape == 0:
                draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
            elif shape == 1:
                draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
            elif shape == 2:
                pts = [(float(x0 + rng.uniform(0, w)), float(y0 + rng.uniform(0, h))) for _ in range(3)]
                draw.polygon(pts, fill=colour)
            else:
                draw.line((x0, y0, x0 + w, y0 + h), fill=colour, width=int(rng.integers(1, 12)))
    return im


def _place(rng: np.random.Generator, taken: list[Box]) -> Box | None:
    """An upright square inside the frame, 60-200 px, overlapping no square already taken (or None)."""
    for _ in range(50):
        side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
        box = Box(int(rng.integers(0, WIDTH - side + 1)), int(rng.integers(0, HEIGHT - side + 1)), side, side)
        gap = box.expand(0.05)
        if all(gap.iou(t) == 0.0 for t in taken):
            return box
    return None


def make_scenes(faces: np.ndarray, n: int, seed: int) -> list[Scene]:
    """``n`` scenes from the uint8 (N,48,48) ``faces``; the same faces, n and seed give the same scenes."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or len(faces) == 0:
        raise ValueError(f"faces must be a non-empty uint8 (N,H,W) array, got {faces.dtype} {faces.shape}")
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        im = _background(rng)
        boxes: list[Box] = []
        rows: list[int] = []
        angles: list[float] = []
        for _ in range(int(rng.integers(1, MAX_FACES + 1))):
            box = _place(rng, boxes)
            if box is None:
                continue
            row = int(rng.integers(len(faces)))
            angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
            face = Image.fromarray(faces[row]).resize((box.w, box.h), Image.Resampling.BICUBIC)
            # rotated inside its square; the corners it uncovers show the background
            mask = Image.new("L", face.size, 255).rotate(angle, Image.Resampling.BILINEAR)
            im.paste(face.rotate(angle, Image.Resampling.BICUBIC).convert("RGB"), (box.x, box.y), mask)
            boxes.append(box)
            rows.append(row)
            angles.append(angle)
        scenes.append(Scene(np.asarray(im), tuple(boxes), tuple(rows), tuple(angles)))
    return scenes


def match(found: list[Box], truth: tuple[Box, ...] | list[Box], iou: float = IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, best IoU first: (found index, truth index) pairs with IoU >= ``iou``."""
    pairs = sorted(((f.iou(t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), key=lambda p: -p[0])
    used_f: set[int] = set()
    used_t: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v < iou:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


def score(detector: Detector, scenes: list[Scene]) -> tuple[float, float, float]:
    """(recall, precision, faces per second) of ``detector`` on ``scenes``, at IoU >= 0.5.

    Faces per second is the number of true faces over the time spent in ``detect``.
    """
    hits = found = truth = 0
    seconds = 0.0
    for s in scenes:
        t0 = time.perf_counter()
        boxes = [d.box for d in detector.detect(s.image)]
        seconds += time.perf_counter() - t0
        hits += len(match(boxes, s.boxes))
        found += len(boxes)
        truth += len(s.boxes)
    recall = hits / truth if truth else 1.0
    precision = hits / found if found else 1.0
    return recall, precision, truth / seconds if seconds > 0 else float("inf")


def fit_framing(detector: BlazeFaceDetector, scenes: list[Scene]) -> np.ndarray:
    """The least-squares FER framing map (15,3) for ``detector``'s raw detections on ``scenes``.

    Each raw detection whose centre lies within a third of a side of a true square's centre is a sample;
    the targets are that square's centre offset and log side, relative to the raw box side.
    """
    xs, ys = [], []
    for s in scenes:
        for c in detector.candidates(s.image):
            for t in s.boxes:
                tx, ty = t.x + t.w / 2, t.y + t.h / 2
                if math.hypot(c.centre[0] - tx, c.centre[1] - ty) < t.w / 3:
                    f, side = framing_features(c)
                    xs.append(f)
                    ys.append([(tx - c.centre[0]) / side, (ty - c.centre[1]) / side, math.log(t.w / side)])
    if len(xs) < 20:
        raise ValueError(f"too few detections to fit ({len(xs)})")
    w, *_ = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)
    return w
