"""The teacher for distillation: an ensemble of weights files, with horizontal-flip test-time augmentation.

Its outputs on the Training split are computed once and written to a soft-target file (an npz), so that
student runs need no teacher. The file holds ``probabilities`` (float32, one row per Training row in
FER2013 row order: the mean over members of each member's mean over the image and its mirror),
``indices`` (those rows' positions in FER2013) and ``record`` (JSON: member digests, the augmentation,
the data's hash, the PublicTest accuracy of the teacher and of each member). PrivateTest is never read.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import DataError, XEmotionError
from xruntime_emotion.model.data import FerData, Split, to_input
from xruntime_emotion.model.ir import LABELS, ModelIR

KIND = "xemotion-soft-targets"
TTA = "mean of the probabilities of the image and its horizontal mirror"
COMBINE = "mean of the members' probabilities"


@dataclass(frozen=True)
class SoftTargets:
    """A teacher's probabilities for the first ``len(indices)`` Training rows, and how they were made."""

    probabilities: np.ndarray  # float32 (N,7)
    indices: np.ndarray  # int64 (N,): FER2013 row of each
    record: dict[str, Any]

    @property
    def sha256(self) -> str:
        """sha256 of the probabilities' and indices' bytes: the teacher's identity in a recipe."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.probabilities, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.indices, dtype="<i8").tobytes())
        return h.hexdigest()

    def check(self, data: FerData, rows: int) -> None:
        """Refuse targets made from other data, or fewer rows than the student trains on."""
        made_from = self.record.get("data", {}).get("arrays_sha256")
        if made_from != data.sha256:
            raise DataError(
                f"soft targets were made from data with arrays sha256 {made_from}, this data has {data.sha256}"
            )
        if len(self.indices) < rows:
            raise DataError(f"soft targets cover {len(self.indices)} Training rows, the run trains on {rows}")
        if not np.array_equal(self.indices[:rows], data.indices(Split.TRAINING)[:rows]):
            raise DataError("soft targets are not in the data's Training row order")

    def tempered(self, temperature: float, rows: int) -> np.ndarray:
        """softmax(log p / T) of the first ``rows`` rows, float32."""
        z = np.log(np.clip(self.probabilities[:rows].astype(np.float64), 1e-12, 1.0)) / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _plain(model: Any, images: np.ndarray) -> np.ndarray:
    from .train import predict_keras

    return predict_keras(model, to_input(images))


def _tta(model: Any, images: np.ndarray) -> np.ndarray:
    return (_plain(model, images) + _plain(model, images[:, :, ::-1])) / 2


def soft_targets(
    members: Sequence[str | Path | ModelIR],
    data: FerData,
    *,
    limit: int | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> SoftTargets:
    """Run each member (a weights file, or one already loaded) with flip TTA over Training and PublicTest;
    average the members. ``limit`` keeps the first rows of each split (a smoke run).
    """
    from .keras_builder import build_model

    if not members:
        raise XEmotionError("the teacher needs at least one member weights file")
    t0 = time.perf_counter()
    x_tr, _ = data.split(Split.TRAINING)
    x_pu, y_pu = data.split(Split.PUBLIC_TEST)
    idx = data.indices(Split.TRAINING)
    if limit:
        x_tr, idx, x_pu, y_pu = x_tr[:limit], idx[:limit], x_pu[:limit], y_pu[:limit]
    irs = [m if isinstance(m, ModelIR) else ModelIR.load(m) for m in members]  # every file read before any work
    train_sum = np.zeros((len(x_tr), len(LABELS)), np.float64)
    public_sum = np.zeros((len(x_pu), len(LABELS)), np.float64)
    records = []
    total = 2 * len(irs)
    for i, ir in enumerate(irs):
        name = Path(ir.provenance.source).name
        model = build_model(ir)
        if on_step:
            on_step(f"{name}: PublicTest", 2 * i, total)
        plain = _plain(model, x_pu)
        public = (plain + _plain(model, x_pu[:, :, ::-1])) / 2
        public_sum += public
        if on_step:
            on_step(f"{name}: Training", 2 * i + 1, total)
        train_sum += _tta(model, x_tr)
        records.append(
            {
                "file": name,
                "format": ir.provenance.format,
                "file_sha256": ir.provenance.sha256,
                "weights_sha256": ir.weights_sha256,
                "public_accuracy": float((public.argmax(1) == y_pu).mean()),
                "public_accuracy_without_tta": float((plain.argmax(1) == y_pu).mean()),
            }
        )
    if on_step:
        on_step("done", total, total)
    probs = (train_sum / len(irs)).astype(np.float32)
    record = {
        "schema": 1,
        "kind": KIND,
        "members": records,
        "tta": TTA,
        "combine": COMBINE,
        "outputs": "probabilities",
        "data": {
            "source": Path(data.source).name,
            "arrays_sha256": data.sha256,
            "split": Split.TRAINING.value,
            "rows": len(x_tr),
            "limit": limit,
        },
        "public_accuracy": float(((public_sum / len(irs)).argmax(1) == y_pu).mean()),
        "public_rows": len(y_pu),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return SoftTargets(probs, idx.astype(np.int64), record)


def save_soft_targets(targets: SoftTargets, path: str | Path) -> Path:
    """Write the soft-target npz atomically (nothing half-written on failure)."""
    from xruntime_emotion.atomic import write_npz

    record = {**targets.record, "sha256": targets.sha256}
    return write_npz(
        path,
        {
            "probabilities": targets.probabilities.astype(np.float32),
            "indices": targets.indices.astype(np.int64),
            "record": np.array(json.dumps(record, sort_keys=True)),
        },
    )


def load_soft_targets(path: str | Path) -> SoftTargets:
    """Read and validate a soft-target file written by ``save_soft_targets``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such soft-target file")
    with open(path, "rb") as f:
        if not f.read(4).startswith(b"PK"):
            raise DataError(f"{path}: not a soft-target file (not an npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            probs, idx, record = z["probabilities"], z["indices"], json.loads(str(z["record"]))
    except Exception as exc:  # a damaged zip, a missing array, bad JSON
        raise DataError(f"{path}: not a soft-target file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise DataError(f"{path}: not a soft-target file (its record is not of kind {KIND})")
    if probs.dtype != np.float32 or probs.ndim != 2 or probs.shape[1] != len(LABELS) or idx.shape != probs.shape[:1]:
        raise DataError(f"{path}: probabilities must be float32 (N,{len(LABELS)}) with N indices")
    if not np.isfinite(probs).all() or (probs < 0).any() or not np.allclose(probs.sum(1), 1.0, atol=1e-4):
        raise DataError(f"{path}: rows are not probability distributions")
    targets = SoftTargets(probs, idx.astype(np.int64), record)
    if record.get("sha256") not in (None, targets.sha256):
        raise DataError(f"{path}: contents do not match the digest in its record")
    return targets
