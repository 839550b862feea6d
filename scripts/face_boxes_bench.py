"""Face detectors on real photos with face boxes drawn by people: recall and precision, overall and by face size.

    python scripts/face_boxes_bench.py FOLDER LIST.xml [LIST.xml ...] [--detector NAME[:k=v,...]]

Each LIST is an imglab XML file (dlib's format: ``<image file=...>`` holding ``<box top left width height
[ignore='1']/>``); its images are read from FOLDER. A file over 10 MB is refused, and an image listed in two
files is counted once, with the boxes of the first. Each detector (every one in ``DETECTORS`` at its
defaults unless named) is scored on its own boxes: BlazeFace's model box (before the FER2013 framing that
``detect`` applies; the faces the framing drops are left out, as ``detect`` leaves them out), any other
detector's ``detect`` box. Scores follow ``xruntime_emotion.check.detection_score``, with the detector's
stated minimum face size (the catalog row's ``min_face`` setting) as the minimum, and boxes marked
ignore scored like faces below it. A face's size is its box's longer side; a false box counts in the bin
of its own side. On the hits: the median IoU and the median ratio of the detector box's side to the true
box's side and of its centre's offset, per true side, to show a difference in box convention; and, as a
diagnostic, the recall at IoU 0.3. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from detection_bench import parse_detector  # this folder: the same --detector syntax

from xruntime_emotion.check.detection_score import FALSE, IOU, Tally, judge, match, side
from xruntime_emotion.runtime.detect import DETECTORS, Box, Detector, build_detector, frame
from xruntime_emotion.runtime.preprocess import load_image

MAX_XML = 10 * 1024 * 1024  # bytes
SIZE_BINS = (0, 32, 64, 128, 10**9)  # true faces by side, px
LOOSE_IOU = 0.3


@dataclass(frozen=True)
class Photo:
    """One listed image: its path, its scored faces and its faces marked ignore."""

    path: Path
    faces: tuple[Box, ...]
    ignored: tuple[Box, ...]
    size: tuple[int, int] | None = None  # width, height, as listed


def read_lists(folder: Path, lists: list[Path]) -> list[Photo]:
    """The images of imglab XML ``lists``, found in ``folder``; an image listed again is left out."""
    photos: dict[str, Photo] = {}
    for xml in lists:
        if xml.stat().st_size > MAX_XML:
            raise SystemExit(f"{xml}: over {MAX_XML // 2**20} MB, refused")
        for image in ET.parse(xml).getroot().iter("image"):
            name = image.get("file", "")
            if name in photos:
                print(f"{name}: listed again in {xml.name}, counted once", file=sys.stderr)
                continue
            faces, ignored = [], []
            for b in image.iter("box"):
                box = Box(*(int(b.get(k, "0")) for k in ("left", "top", "width", "height")))
                (ignored if b.get("ignore") == "1" else faces).append(box)
            size = (int(image.get("width", "0")), int(image.get("height", "0"))) if image.get("width") else None
            photos[name] = Photo(folder / name, tuple(faces), tuple(ignored), size)
    return list(photos.values())


def own_boxes(det: Detector, image: np.ndarray) -> list[Box]:
    """The detector's own boxes for the faces ``detect`` returns (BlazeFace: the model's box, not the framed one)."""
    candidates = getattr(det, "candidates", None)
    if candidates is None:
        return [d.box for d in det.detect(image)]
    return [
        Box(round(c.centre[0] - c.size[0] / 2), round(c.centre[1] - c.size[1] / 2), round(c.size[0]), round(c.size[1]))
        for c in candidates(image)
        if frame(c) is not None
    ]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)


def _share(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} ({k}/{n}, 95% {lo:.3f}-{hi:.3f})" if n else "- (0/0)"


def _bin(s: int) -> int:
    return next(i for i in range(len(SIZE_BINS) - 1) if SIZE_BINS[i] <= s < SIZE_BINS[i + 1])


def _label(i: int) -> str:
    lo, hi = SIZE_BINS[i], SIZE_BINS[i + 1]
    return f"<{hi}" if lo == 0 else f">={lo}" if hi == SIZE_BINS[-1] else f"{lo}-{hi - 1}"


def bench(label: str, det: Detector, min_face: int, photos: list[Photo], images: list[np.ndarray]) -> None:
    """Score ``det`` on ``photos`` and print its figures."""
    total = Tally()
    bins = [Tally() for _ in SIZE_BINS[1:]]
    ious, ratios, dx, dy = [], [], [], []
    loose = small = 0
    for photo, image in zip(photos, images):
        found = own_boxes(det, image)
        j = judge(found, photo.faces, min_face=min_face, ignore=photo.ignored)
        total.add(j)
        faces = [t for t in photo.faces if side(t) >= min_face]  # judge's order
        small += len(photo.faces) - len(faces)
        for face, hit in zip(faces, j.faces):
            bins[_bin(side(face))].faces += 1
            bins[_bin(side(face))].hits += hit
        for box, verdict in zip(found, j.boxes):
            bins[_bin(side(box))].false += verdict == FALSE
        for i, k in match(found, faces):
            f, t = found[i], faces[k]
            ious.append(f.iou(t))
            ratios.append(side(f) / side(t))
            dx.append((f.x + f.w / 2 - t.x - t.w / 2) / side(t))
            dy.append((f.y + f.h / 2 - t.y - t.h / 2) / side(t))
        loose += len(match(found, faces, LOOSE_IOU))
    print(f"{label} (minimum face {min_face} px): recall {_share(total.hits, total.faces)}, precision "
          f"{_share(total.hits, total.hits + total.false)}, ignored boxes {total.ignored}; faces below the minimum, "
          f"not scored: {small}")  # fmt: skip
    for i, t in enumerate(bins):
        if t.faces or t.false:
            print(f"  {_label(i)} px: recall {_share(t.hits, t.faces)}, precision {_share(t.hits, t.hits + t.false)}")
    if ious:
        print(f"  hits: median IoU {statistics.median(ious):.3f}, box side / true side {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}), centre offset / true side x {statistics.median(dx):+.2f} "
              f"y {statistics.median(dy):+.2f}")  # fmt: skip
        print(f"  recall at IoU >= {LOOSE_IOU} (box convention aside): {_share(loose, total.faces)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="the folder holding the listed images")
    ap.add_argument("lists", type=Path, nargs="+", help="imglab XML files (dlib's format)")
    ap.add_argument("--detector", action="append", help="NAME[:k=v,...] (repeatable; default: every detector)")
    args = ap.parse_args()
    photos = read_lists(args.folder, args.lists)
    print(f"reading {len(photos)} images", file=sys.stderr)
    images = [load_image(p.path) for p in photos]
    for p, image in zip(photos, images):
        if p.size and p.size != (image.shape[1], image.shape[0]):
            print(f"{p.path.name}: {image.shape[1]}x{image.shape[0]}, listed as {p.size[0]}x{p.size[1]}",
                  file=sys.stderr)  # fmt: skip
    sides = [side(f) for p in photos for f in p.faces]
    print(f"{len(photos)} photos, {len(sides)} faces (side {min(sides, default=0)}-{max(sides, default=0)} px, "
          f"median {statistics.median(sides) if sides else 0:g}), {sum(len(p.ignored) for p in photos)} marked "
          f"ignore; hit at IoU >= {IOU}")  # fmt: skip
    chosen = [parse_detector(t) for t in args.detector] if args.detector else [(n, {}) for n in DETECTORS]
    for name, opts in chosen:
        print(f"{name}: detecting", file=sys.stderr)
        det = build_detector(name, **opts)
        setting = DETECTORS[name].min_face
        min_face = int(getattr(det, setting)) if setting else 1
        bench(name + "".join(f" {k}={v}" for k, v in opts.items()), det, min_face, photos, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
