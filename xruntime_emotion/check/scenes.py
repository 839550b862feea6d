"""A measurement set for face detectors: FER2013 faces pasted into synthetic 640x480 scenes, seeded.

Each scene has 1-3 non-overlapping faces, each upscaled to a side drawn log-uniformly from 32-480 px and
turned by up to 30 degrees inside the upright square it is pasted into; that square is its true box. A
quarter of the faces cross the photo's edge (10-40% of the side outside; the true box is the whole
square). Up to six more faces of 16-31 px, turned by up to 90 degrees, are clutter: smaller than
``detection_score.MIN_FACE``, so a box around one is ignored if it fits the face and false if it is
blown up. The backgrounds are noise, gradients and random shapes (never faces). The caller picks the
faces: use Training or PublicTest rows only, so PrivateTest stays unseen. Scores follow
``xruntime_emotion.check.detection_score``.

    scenes = make_scenes(fer.split("Training")[0], n=500, seed=0)
    recall, precision, faces_per_s = score(detector, scenes)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from xruntime_emotion.check.detection_score import IOU, MIN_FACE, Tally, judge, match, side
from xruntime_emotion.runtime.detect import BlazeFaceDetector, Box, Detector, framing_features
from xruntime_emotion.runtime.detect.search import _INPUT

WIDTH, HEIGHT = 640, 480
MIN_SIDE, MAX_SIDE = MIN_FACE, 480  # faces, log-uniform
MAX_ANGLE = 30.0  # degrees, either way
MAX_FACES = 3
CUT_SHARE = 0.25  # of the faces cross the photo's edge ...
CUT = (0.1, 0.4)  # ... with this share of their side outside it
CLUTTER_SIDES = (16, MIN_FACE - 1)  # small faces, log-uniform
CLUTTER_ANGLE = 90.0
MAX_CLUTTER = 6
SIZE_BINS = (32, 64, 128, 256, 481)  # faces by side, for the per-size figures
__all__ = ["IOU", "Scene", "match", "make_scenes", "score", "evaluate", "fit_framing"]


@dataclass(frozen=True)
class Scene:
    """One photo: uint8 RGB (480,640,3); the faces' true boxes (``MIN_SIDE`` and up, perhaps crossing the
    edge), the rows of ``faces`` they came from and their angles; the clutter faces' boxes."""

    image: np.ndarray
    boxes: tuple[Box, ...]
    rows: tuple[int, ...]
    angles: tuple[float, ...]
    small: tuple[Box, ...] = ()

    @property
    def truth(self) -> tuple[Box, ...]:
        """Every face of the scene, the small ones included."""
        return self.boxes + self.small


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


def _log_side(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _place(rng: np.random.Generator, taken: list[Box], sides: tuple[int, int], cut: float) -> Box | None:
    """A square of a log-uniform side, overlapping no square already taken (or None); with probability
    ``cut`` it crosses one edge of the photo by a share ``CUT`` of its side, else it lies inside."""
    for _ in range(50):
        s = _log_side(rng, *sides)
        x, y = int(rng.integers(0, WIDTH - s + 1)), int(rng.integers(0, HEIGHT - s + 1))
        if rng.uniform() < cut:
            out = round(s * rng.uniform(*CUT))
            edge = int(rng.integers(4))
            if edge == 0:
                x = -out
            elif edge == 1:
                x = WIDTH - s + out
            elif edge == 2:
                y = -out
            else:
                y = HEIGHT - s + out
        box = Box(x, y, s, s)
        gap = box.expand(0.05)
        if all(gap.iou(t) == 0.0 for t in taken):
            return box
    return None


def _paste(im: Image.Image, face: np.ndarray, box: Box, angle: float) -> None:
    """``face`` resized to the box and turned inside it; the corners it uncovers show the background."""
    f = Image.fromarray(face).resize((box.w, box.h), Image.Resampling.BICUBIC)
    mask = Image.new("L", f.size, 255).rotate(angle, Image.Resampling.BILINEAR)
    im.paste(f.rotate(angle, Image.Resampling.BICUBIC).convert("RGB"), (box.x, box.y), mask)


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
            box = _place(rng, boxes, (MIN_SIDE, MAX_SIDE), CUT_SHARE)
            if box is None:
                continue
            row = int(rng.integers(len(faces)))
            angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
            _paste(im, faces[row], box, angle)
            boxes.append(box)
            rows.append(row)
            angles.append(angle)
        small: list[Box] = []
        for _ in range(int(rng.integers(0, MAX_CLUTTER + 1))):
            box = _place(rng, boxes + small, CLUTTER_SIDES, 0.0)
            if box is None:
                continue
            _paste(im, faces[int(rng.integers(len(faces)))], box, float(rng.uniform(-CLUTTER_ANGLE, CLUTTER_ANGLE)))
            small.append(box)
        scenes.append(Scene(np.asarray(im), tuple(boxes), tuple(rows), tuple(angles), tuple(small)))
    return scenes


@dataclass
class Report:
    """A detector's figures on scenes: the overall tally, one per face size (``SIZE_BINS``; a false box
    counts in the bin of its own side), and true faces per second of ``detect``."""

    total: Tally = field(default_factory=Tally)
    by_size: dict[tuple[int, int], Tally] = field(default_factory=dict)
    faces_per_s: float = 0.0


def _bin(s: int) -> tuple[int, int] | None:
    for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:]):
        if lo <= s < hi:
            return lo, hi
    return None


def evaluate(detector: Detector, scenes: list[Scene]) -> Report:
    """``detector`` on ``scenes``, scored by ``detection_score.judge``."""
    report = Report(by_size={(lo, hi): Tally() for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:])})
    seconds = 0.0
    for s in scenes:
        t0 = time.perf_counter()
        found = [d.box for d in detector.detect(s.image)]
        seconds += time.perf_counter() - t0
        j = judge(found, s.truth)
        report.total.add(j)
        for face, hit in zip(s.boxes, j.faces):
            b = _bin(side(face))
            if b:
                report.by_size[b].faces += 1
                report.by_size[b].hits += hit
        for box, verdict in zip(found, j.boxes):
            b = _bin(min(max(side(box), SIZE_BINS[0]), SIZE_BINS[-1] - 1))
            if b and verdict == "false":
                report.by_size[b].false += 1
    report.faces_per_s = report.total.faces / seconds if seconds > 0 else float("inf")
    return report


def score(detector: Detector, scenes: list[Scene]) -> tuple[float, float, float]:
    """(recall, precision, faces per second) of ``detector`` on ``scenes`` (``evaluate``'s totals)."""
    r = evaluate(detector, scenes)
    return r.total.recall, r.total.precision, r.faces_per_s


def fit_framing(detector: BlazeFaceDetector, scenes: list[Scene]) -> tuple[np.ndarray, tuple[float, float]]:
    """The least-squares FER framing map (15,3) for ``detector``'s confirmed boxes on ``scenes``, and the
    range of the size feature it saw (log model pixels; ``framing._SIZE_RANGE``).

    Each box whose centre lies within a third of a side of a true square's centre (the nearest, small
    faces included) is a sample; the targets are that square's centre offset and log side, relative to
    the box side.
    """
    xs, ys = [], []
    for s in scenes:
        for c in detector.candidates(s.image):
            near = [t for t in s.truth if math.dist(c.centre, (t.x + t.w / 2, t.y + t.h / 2)) < t.w / 3]
            if not near:
                continue
            t = min(near, key=lambda t: math.dist(c.centre, (t.x + t.w / 2, t.y + t.h / 2)))
            f, side = framing_features(c)
            scale = math.log(side * _INPUT / c.tile)  # unclamped
            f[-2:] = scale, scale * scale
            xs.append(f)
            tx, ty = t.x + t.w / 2, t.y + t.h / 2
            ys.append([(tx - c.centre[0]) / side, (ty - c.centre[1]) / side, math.log(t.w / side)])
    if len(xs) < 20:
        raise ValueError(f"too few detections to fit ({len(xs)})")
    x = np.array(xs)
    w, *_ = np.linalg.lstsq(x, np.array(ys), rcond=None)
    return w, (float(x[:, -2].min()), float(x[:, -2].max()))
