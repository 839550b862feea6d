"""How a face detector's boxes are scored against the true faces of a photo.

- A box is a **hit** when its IoU with a true face's box is at least 0.5 (one box per face, best IoU
  first); a true face without a hit is a **miss**.
- A box that is no hit is a **false box**, except a box around a face smaller than the stated minimum
  size (``MIN_FACE``) whose side is at most twice that face's side: it is **ignored**, neither credit
  nor penalty. A box more than twice the size of the face it surrounds is always a false box.
- Faces smaller than the minimum count neither as found nor as missed; so do faces a data set marks to be
  ignored (``judge``'s ``ignore``), whatever their size, and a box fitting one (as above) is ignored too.

Recall is hits over true faces of the minimum size and up; precision is hits over hits and false boxes.
A face's size is its box's longer side; a box surrounds a face when it holds the face's centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xruntime_emotion.runtime.detect import Box

IOU = 0.5
MIN_FACE = 32  # px: the smallest face a detector is held to by default
BLOWN_UP = 2.0  # a box over this many times the side of the face it surrounds is never ignored
HIT, FALSE, IGNORED = "hit", "false", "ignored"


def match(found: Sequence[Box], truth: Sequence[Box], iou: float = IOU) -> list[tuple[int, int]]:
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


def side(box: Box) -> int:
    """A face's size: its box's longer side."""
    return max(box.w, box.h)


def surrounds(box: Box, face: Box) -> bool:
    """Whether ``box`` holds ``face``'s centre."""
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    return box.x <= cx <= box.x + box.w and box.y <= cy <= box.y + box.h


@dataclass(frozen=True)
class Judged:
    """One photo's verdicts: per box ``HIT``, ``FALSE`` or ``IGNORED``; per true face (of the minimum size
    and up) whether a box hit it."""

    boxes: tuple[str, ...]
    faces: tuple[bool, ...]

    @property
    def hits(self) -> int:
        return sum(self.faces)

    @property
    def false(self) -> int:
        return self.boxes.count(FALSE)

    @property
    def ignored(self) -> int:
        return self.boxes.count(IGNORED)


def judge(
    found: Sequence[Box], truth: Sequence[Box], min_face: int = MIN_FACE, iou: float = IOU, ignore: Sequence[Box] = ()
) -> Judged:
    """Score one photo's boxes against its true faces (all of them, small ones included) by the rules above;
    ``ignore``: faces marked to be ignored, scored as faces below the minimum are (not part of ``truth``)."""
    faces = [t for t in truth if side(t) >= min_face]
    small = [t for t in truth if side(t) < min_face] + list(ignore)
    verdict = [FALSE] * len(found)
    hit = [False] * len(faces)
    for i, j in match(found, faces, iou):
        verdict[i], hit[j] = HIT, True
    for i, b in enumerate(found):
        if verdict[i] == FALSE and any(surrounds(b, t) and side(b) <= BLOWN_UP * side(t) for t in small):
            verdict[i] = IGNORED
    return Judged(tuple(verdict), tuple(hit))


@dataclass
class Tally:
    """Counts over many photos: true faces, hits, false and ignored boxes."""

    faces: int = 0
    hits: int = 0
    false: int = 0
    ignored: int = 0

    def add(self, j: Judged) -> None:
        self.faces += len(j.faces)
        self.hits += j.hits
        self.false += j.false
        self.ignored += j.ignored

    @property
    def recall(self) -> float:
        return self.hits / self.faces if self.faces else 1.0

    @property
    def precision(self) -> float:
        return self.hits / (self.hits + self.false) if self.hits + self.false else 1.0
