"""FER2013 in its three common layouts: the npz, the Kaggle folder tree, and fer2013.csv.

Every loader returns a ``FerData``: uint8 images (N,48,48), labels 0..6 in DeepFace order,
and the official usage of each row (Training / PublicTest / PrivateTest).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from xruntime_emotion.errors import DataError
from xruntime_emotion.model.ir import CONTRACT, LABELS

DATA_ENV = "XEMOTION_DATA"
SIZE = CONTRACT.height  # square crops; the contract lives in the IR


class Split(str, Enum):
    TRAINING = "Training"
    PUBLIC_TEST = "PublicTest"
    PRIVATE_TEST = "PrivateTest"


@dataclass(frozen=True)
class FerData:
    images: np.ndarray  # uint8 (N,48,48)
    labels: np.ndarray  # uint8 (N,)
    usage: np.ndarray  # str (N,)
    source: str
    sha256: str  # of the images, labels and usage arrays' bytes

    def split(self, split: Split | str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split, in file order; an empty split is an error."""
        name = Split(split).value
        mask = self.usage == name
        if not mask.any():
            raise DataError(f"{self.source}: split {name} is empty")
        return self.images[mask], self.labels[mask]

    def indices(self, split: Split | str) -> np.ndarray:
        return np.flatnonzero(self.usage == Split(split).value)

    def sizes(self) -> dict[str, int]:
        return {s.value: int((self.usage == s.value).sum()) for s in Split}


def data_root() -> Path:
    """The data directory from $XEMOTION_DATA (``fer2013/`` and ``nxp-deepface-emotion/`` beneath)."""
    root = os.environ.get(DATA_ENV)
    if not root:
        raise DataError(f"set {DATA_ENV} to the data directory (holding fer2013/fer2013.npz)")
    return Path(root)


def image_sha256(img: np.ndarray) -> str:
    """sha256 of a face crop's uint8 pixels: how golden cases and calibration samples are named."""
    return hashlib.sha256(np.ascontiguousarray(img, dtype=np.uint8).tobytes()).hexdigest()


def _finish(images: np.ndarray, labels: np.ndarray, usage: np.ndarray, source: str) -> FerData:
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise DataError(f"{source}: images must be (N,{SIZE},{SIZE}), got {images.shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8, got {images.dtype}")
    if not (len(images) == len(labels) == len(usage)):
        raise DataError(f"{source}: {len(images)} images, {len(labels)} labels, {len(usage)} usages")
    if len(images) == 0:
        raise DataError(f"{source}: no images")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(LABELS):
        raise DataError(f"{source}: labels must be integers 0..{len(LABELS) - 1}")
    usage = np.asarray(usage).astype(str)
    unknown = set(np.unique(usage)) - {s.value for s in Split}
    if unknown:
        raise DataError(f"{source}: unknown usage values {sorted(unknown)}")
    h = hashlib.sha256()
    for a in (images, labels.astype(np.uint8), usage.astype("<U11")):
        h.update(np.ascontiguousarray(a).tobytes())
    return FerData(images, labels.astype(np.uint8), usage, source, h.hexdigest())


def load_npz(path: Path) -> FerData:
    try:
        with np.load(path, allow_pickle=False) as z:
            return _finish(z["images"], z["labels"], z["usage"], str(path))
    except KeyError as exc:
        raise DataError(f"{path}: npz lacks array {exc} (needs images, labels, usage)") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable npz ({exc})") from exc


def load_csv(path: Path) -> FerData:
    images, labels, usage = [], [], []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"{path}: CSV lacks columns {sorted(missing)}")
            for i, row in enumerate(reader, start=2):
                px = np.array(row["pixels"].split(), dtype=np.int64)
                if px.size != SIZE * SIZE or px.min() < 0 or px.max() > 255:
                    raise DataError(f"{path}:{i}: expected {SIZE * SIZE} pixels in 0..255, got {px.size}")
                images.append(px.astype(np.uint8).reshape(SIZE, SIZE))
                labels.append(int(row["emotion"]))
                usage.append(row["Usage"])
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    if not images:
        raise DataError(f"{path}: no rows")
    return _finish(np.stack(images), np.array(labels), np.array(usage), str(path))


def load_folder(path: Path) -> FerData:
    """Kaggle layout: train/<label>/*.jpg (Training), test/<label>/{PublicTest,PrivateTest}_*.jpg."""
    from PIL import Image

    rows: list[tuple[str, str, int]] = []  # usage, file, label
    for sub in ("train", "test"):
        base = path / sub
        if not base.is_dir():
            raise DataError(f"{path}: Kaggle layout needs {sub}/<label>/ folders")
        for label_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if label_dir.name not in LABELS:
                raise DataError(f"{label_dir}: unknown label {label_dir.name!r} (expected one of {', '.join(LABELS)})")
            for f in sorted(label_dir.iterdir()):
                if sub == "train":
                    use = Split.TRAINING.value
                else:
                    use = f.name.split("_", 1)[0]
                    if use not in (Split.PUBLIC_TEST.value, Split.PRIVATE_TEST.value):
                        raise DataError(f"{f}: test files must start with PublicTest_ or PrivateTest_")
                rows.append((use, str(f), LABELS.index(label_dir.name)))
    order = {s.value: i for i, s in enumerate(Split)}
    rows.sort(key=lambda r: (order[r[0]], Path(r[1]).name, r[1]))
    images = []
    for _, f, _ in rows:
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert("L"))
        except OSError as exc:
            raise DataError(f"{f}: not an image ({exc})") from exc
        if a.shape != (SIZE, SIZE):
            raise DataError(f"{f}: image is {a.shape[1]}x{a.shape[0]}, expected {SIZE}x{SIZE}")
        images.append(a)
    if not images:
        raise DataError(f"{path}: no images")
    return _finish(np.stack(images), np.array([r[2] for r in rows]), np.array([r[0] for r in rows]), str(path))


_LOADERS: dict[str, Callable[[Path], FerData]] = {".npz": load_npz, ".csv": load_csv}


def load_fer2013(path: str | Path | None = None) -> FerData:
    """Load FER2013 from a file or folder; with no path, from $XEMOTION_DATA/fer2013/fer2013.npz."""
    p = Path(path) if path is not None else data_root() / "fer2013" / "fer2013.npz"
    if p.is_dir():
        if (p / "train").is_dir():
            return load_folder(p)
        for name in ("fer2013.npz", "fer2013.csv", "fer2013/fer2013.npz"):
            if (p / name).is_file():
                return load_fer2013(p / name)
        raise DataError(f"{p}: no fer2013.npz, fer2013.csv or train/ test/ folders in it")
    if not p.is_file():
        raise DataError(f"{p}: no such file or folder")
    loader = _LOADERS.get(p.suffix.lower())
    if loader is None:
        raise DataError(f"{p}: unknown data layout (expected .npz, .csv or the Kaggle folder tree)")
    return loader(p)


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N,48,48[,1]) -> float32 (N,48,48,1) in [0,1], exactly as in training."""
    x = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return x.reshape(x.shape[0], SIZE, SIZE, 1)
