"""The int8 calibration sample: FER2013 Training rows, disjoint by content from PublicTest and PrivateTest.

FER2013 repeats faces across its splits, and the test rows come from JPEGs while Training rows are
lossless, so a pixel sha256 never matches a repeated face. Content is compared instead (the
*near-duplicate rule*): two faces are near-duplicates when their 12×12 thumbnails (means of 4×4
pixel blocks) differ by less than 3 grey levels RMS. Repeated faces measure 0.1–0.8; the rule
flags 762 of the 28,709 Training rows against the 7,178 test rows.

The package ships the default sample (``samples/fer2013_training_sample.npz``: 100 calibration
images and 500 held-out rows for checking int8 exports), so `export` needs no data set; it is
exactly what :func:`calibration_sample` picks from the full FER2013 with the default size and seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import DataError
from xruntime_emotion.model.data import FerData, Split, image_sha256

NEAR_DUPLICATE_RULE: dict[str, Any] = {
    "thumbnail": "12x12 means of 4x4 pixel blocks",
    "max_rms_grey_levels": 3.0,
    "reason": "repeated FER2013 faces differ by 0.1-0.8 grey levels RMS on thumbnails (JPEG vs lossless)",
}
_BLOCK = 4
DEFAULT_SIZE, DEFAULT_SEED, DEFAULT_HOLDOUT = 100, 0, 500
SAMPLE_FILE = Path(__file__).resolve().parents[1] / "samples" / "fer2013_training_sample.npz"


def thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 (N,48,48) -> float64 (N,144): the means of 4×4 pixel blocks."""
    n, h, w = images.shape
    blocks = images.reshape(n, h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).mean((2, 4), dtype=np.float64)
    return blocks.reshape(n, (h // _BLOCK) * (w // _BLOCK))


def nearest(images: np.ndarray, reference: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each image, the RMS thumbnail distance (grey levels) to its nearest reference image, and its index."""
    a, b = thumbnails(images), thumbnails(reference)
    if len(b) == 0:
        return np.full(len(a), np.inf), np.full(len(a), -1)
    bb = (b**2).sum(1)
    dist, index = np.empty(len(a)), np.empty(len(a), dtype=np.int64)
    for s in range(0, len(a), chunk):
        part = a[s : s + chunk]
        d2 = (part**2).sum(1)[:, None] + bb[None] - 2 * part @ b.T  # squared distances by one matrix product
        index[s : s + chunk] = d2.argmin(1)
        dist[s : s + chunk] = np.sqrt(np.maximum(d2.min(1), 0) / a.shape[1])
    return dist, index


def near_duplicates(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``images`` are near-duplicates of some ``reference`` image (the rule above)."""
    return nearest(images, reference)[0] < NEAR_DUPLICATE_RULE["max_rms_grey_levels"]


def evaluation_rows(data: FerData) -> np.ndarray:
    """Row indices of every PublicTest and PrivateTest face."""
    return np.flatnonzero(data.usage != Split.TRAINING.value)


@dataclass(frozen=True)
class Calibration:
    images: np.ndarray  # uint8 (N,48,48), Training rows only
    rows: tuple[int, ...]  # row indices in FER2013
    source: str
    seed: int
    holdout: np.ndarray  # other Training rows, for checking int8 exports (never calibrated on)
    holdout_rows: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()  # Training rows skipped as near-duplicates of test rows
    checked_against: int = 0  # test rows the sample was checked against
    shipped: bool = False

    @property
    def hashes(self) -> list[str]:
        return [image_sha256(im) for im in self.images]

    def describe(self) -> dict[str, Any]:
        return {
            "split": Split.TRAINING.value,
            "size": len(self.images),
            "holdout": len(self.holdout),
            "seed": self.seed,
            "sample": "shipped" if self.shipped else "from --calib-data",
            "source": Path(self.source).name,
            "rows": list(self.rows),
            "image_sha256": self.hashes,
            "near_duplicates": {
                **{k: v for k, v in NEAR_DUPLICATE_RULE.items() if k != "reason"},
                "checked_against_test_rows": self.checked_against,
                "excluded_training_rows": list(self.excluded),
            },
        }


def calibration_sample(
    data: FerData, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, holdout: int = DEFAULT_HOLDOUT
) -> Calibration:
    """``size`` seeded Training rows to calibrate on and ``holdout`` more to check with, none of them a
    near-duplicate of a PublicTest or PrivateTest face of ``data``."""
    rows = data.indices(Split.TRAINING)
    if size < 1 or size + holdout > len(rows):
        raise DataError(f"calibration size must be 1..{len(rows) - holdout} (with {holdout} held out), got {size}")
    order = np.random.default_rng(seed).permutation(rows)
    tests = data.images[evaluation_rows(data)]
    keep: list[int] = []
    excluded: list[int] = []
    start = 0
    while len(keep) < size + holdout and start < len(order):
        part = order[start : start + 2 * (size + holdout - len(keep))]  # checked in chunks, taken in order
        for row, dup in zip(part.tolist(), near_duplicates(data.images[part], tests).tolist()):
            if len(keep) < size + holdout:
                (excluded if dup else keep).append(row)
        start += len(part)
    if len(keep) < size + holdout:
        raise DataError(f"{data.source}: only {len(keep)} Training rows are not near-duplicates of test rows")
    pick, rest = sorted(keep[:size]), sorted(keep[size:])
    return Calibration(
        data.images[pick],
        tuple(pick),
        data.source,
        seed,
        data.images[rest],
        tuple(rest),
        tuple(sorted(excluded)),
        len(tests),
    )


def write_sample(cal: Calibration, path: Path, data: FerData) -> Path:
    """Write ``cal`` as the shipped sample (deterministic bytes)."""
    from xruntime_emotion.atomic import write_npz

    meta = {
        "dataset": "FER2013 (Kaggle, ICML 2013 challenge); research use only",
        "source_arrays_sha256": data.sha256,
        "calibration": cal.describe(),
    }
    labels = data.labels
    return write_npz(
        path,
        {
            "calibration": cal.images,
            "calibration_rows": np.array(cal.rows, dtype=np.int32),
            "calibration_labels": labels[list(cal.rows)],
            "holdout": cal.holdout,
            "holdout_rows": np.array(cal.holdout_rows, dtype=np.int32),
            "holdout_labels": labels[list(cal.holdout_rows)],
            "meta": np.array(json.dumps(meta, sort_keys=True)),
        },
    )


def shipped_sample() -> Calibration:
    """The sample the package ships (see the module docstring)."""
    try:
        with np.load(SAMPLE_FILE, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))["calibration"]
            images, holdout = z["calibration"], z["holdout"]
            rows, holdout_rows = z["calibration_rows"], z["holdout_rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"the shipped calibration sample is unreadable ({exc}); reinstall xemotion") from exc
    if [image_sha256(im) for im in images] != meta["image_sha256"]:
        raise DataError(f"{SAMPLE_FILE}: calibration images do not match their recorded sha256")
    return Calibration(
        images,
        tuple(int(r) for r in rows),
        SAMPLE_FILE.name,
        int(meta["seed"]),
        holdout,
        tuple(int(r) for r in holdout_rows),
        tuple(meta["near_duplicates"]["excluded_training_rows"]),
        int(meta["near_duplicates"]["checked_against_test_rows"]),
        shipped=True,
    )
