"""One batch of inputs -> result rows. Both engines run exactly this code, so their numbers agree.

The result table, one row per input (with ``detect``: per face found, plus one row for an image with
no face or an error):
    index, path, [face, faces, x, y, w, h], label, probability, <the seven labels>, model_sha256, error
``index`` is the input's position in the source; ``error`` is null when the input was read, otherwise
the reason (the other result columns are then null). Probabilities are float32, as the model gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xruntime_emotion.batch.sources import Item, resolve
from xruntime_emotion.errors import ImageError, XEmotionError, require
from xruntime_emotion.model.ir import LABELS
from xruntime_emotion.runtime.classifier import EmotionClassifier
from xruntime_emotion.runtime.detect import DEFAULT_DETECTOR, MARGIN, detector, find_faces
from xruntime_emotion.runtime.preprocess import load_image, prepare

BOX = ("x", "y", "w", "h")
Rows = dict[str, list[Any]]  # column -> values, None for null


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int64, int32, string, float32 (Arrow names)


def columns(detect: bool) -> tuple[Column, ...]:
    """The result table's columns, in order."""
    face = [Column("face", "int32"), Column("faces", "int32"), *(Column(b, "int32") for b in BOX)] if detect else []
    return (
        Column("index", "int64"),
        Column("path", "string"),
        *face,
        Column("label", "string"),
        Column("probability", "float32"),
        *(Column(label, "float32") for label in LABELS),
        Column("model_sha256", "string"),
        Column("error", "string"),
    )


def arrow_schema(detect: bool) -> Any:
    pa = require("pyarrow", "classify")
    return pa.schema([(c.name, getattr(pa, c.kind)()) for c in columns(detect)])


def to_arrow(rows: Rows, detect: bool) -> Any:
    """Rows as a pyarrow Table with the result schema."""
    pa = require("pyarrow", "classify")
    schema = arrow_schema(detect)
    return pa.table([pa.array(rows[f.name], type=f.type) for f in schema], schema=schema)


@dataclass(frozen=True)
class Faces:
    """The face detector's part of a run (``--detect``), picklable for worker processes."""

    margin: float = MARGIN
    detector: str = DEFAULT_DETECTOR  # a name in ``xruntime_emotion.runtime.detect.DETECTORS``
    options: tuple[tuple[str, Any], ...] = ()  # its settings, e.g. (("min_size", 40),) for haar

    def find(self, image: np.ndarray) -> tuple[list[Any], list[np.ndarray]]:
        """Boxes and their crops, left to right, as ``analyze`` makes them."""
        _, found = find_faces(image, margin=self.margin, detector=_detector(self.detector, self.options))
        return [d.box for d, _ in found], [crop for _, crop in found]

    def check(self) -> None:
        """Make the detector now, so that a bad name, setting or missing extra fails before any output."""
        _detector(self.detector, self.options)


def _detector(name: str, options: tuple[tuple[str, Any], ...]) -> Any:
    """The process's shared detector of that name and settings."""
    try:
        return detector(name, **dict(options))
    except ValueError as exc:  # an unknown name or setting
        raise XEmotionError(str(exc)) from None


@dataclass(frozen=True)
class Decoded:
    item: Item
    crops: np.ndarray | None  # (k,48,48,1) float32, the model's input; None with an error or no face
    boxes: list[Any] | None  # with --detect
    error: str | None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def decode(item: Item, faces: Faces | None = None) -> Decoded:
    """Read one input into the model's input (the same steps as ``EmotionClassifier.predict`` on the file,
    or ``analyze`` with --detect); a bad input becomes an error, never an exception. Any other error (a
    bad setting, a broken detector) is raised: it would be the same for every input."""
    try:
        if item.data is None:
            raise ImageError(f"{item.path or '(empty)'}: no image (an empty value)")
        image = load_image(resolve(item.data), name=item.path)
        if faces is None:
            return Decoded(item, prepare(image), None, None)
        boxes, crops = faces.find(image)
        return Decoded(item, prepare(crops) if crops else None, boxes, None)
    except (ImageError, OSError, MemoryError) as exc:
        return Decoded(item, None, None, _one_line(exc))


def decode_all(items: Sequence[Item], faces: Faces | None = None) -> list[Decoded]:
    return [decode(item, faces) for item in items]


def classify_decoded(clf: EmotionClassifier, decoded: Sequence[Decoded], sha256: str, detect: bool) -> Rows:
    """Run the model once over every crop of ``decoded`` and lay the results out as rows."""
    crops = [d.crops for d in decoded if d.crops is not None]
    probs = clf.predict(np.concatenate(crops)) if crops else np.empty((0, len(LABELS)), np.float32)
    rows: Rows = {c.name: [] for c in columns(detect)}
    k = 0
    listed = probs.tolist()  # float32 values as Python floats, exactly

    def add(d: Decoded, face: int | None, box: Any, p: list[float] | None) -> None:
        rows["index"].append(d.item.index)
        rows["path"].append(d.item.path)
        if detect:
            rows["face"].append(face)
            rows["faces"].append(None if d.error else len(d.boxes or ()))
            for name in BOX:
                rows[name].append(None if box is None else int(getattr(box, name)))
        top = None if p is None else p.index(max(p))
        rows["label"].append(None if top is None else clf.labels[top])
        rows["probability"].append(None if p is None else p[top])
        for j, label in enumerate(LABELS):
            rows[label].append(None if p is None else p[j])
        rows["model_sha256"].append(sha256)
        rows["error"].append(d.error)

    for d in decoded:
        n = 0 if d.crops is None else len(d.crops)
        if n == 0:
            add(d, None, None, None)  # an error, or (--detect) no face found
        for j in range(n):
            add(d, j if detect else None, d.boxes[j] if d.boxes is not None else None, listed[k + j])
        k += n
    return rows
