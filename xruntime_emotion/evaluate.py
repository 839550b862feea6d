"""Score artifacts on a FER2013 split: accuracy, per-class precision/recall/F1, confusion matrix,
deltas and argmax agreement against the first artifact, and the calibration-leakage guard."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import FerData, Split, image_sha256, to_input
from .errors import LeakageError
from .ir import LABELS
from .runtimes import open_backend, predict_batched


@dataclass
class Result:
    name: str
    runtime: str
    split: str
    labels: np.ndarray
    predictions: np.ndarray
    leakage: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> int:
        return int((self.labels == self.predictions).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.labels)

    def confusion(self) -> np.ndarray:
        """Counts: rows are true labels, columns predictions."""
        m = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
        np.add.at(m, (self.labels, self.predictions), 1)
        return m

    def per_class(self) -> dict[str, dict[str, float]]:
        m = self.confusion()
        tp = np.diag(m).astype(float)
        prec = np.divide(tp, m.sum(0), out=np.zeros_like(tp), where=m.sum(0) > 0)
        rec = np.divide(tp, m.sum(1), out=np.zeros_like(tp), where=m.sum(1) > 0)
        f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
        return {
            lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(m[i].sum())}
            for i, lab in enumerate(LABELS)
        }

    def to_json(self) -> dict[str, Any]:
        m = self.confusion()
        norm = m / np.maximum(m.sum(1, keepdims=True), 1)
        return {
            "artifact": self.name,
            "runtime": self.runtime,
            "split": self.split,
            "rows": len(self.labels),
            "correct": self.correct,
            "accuracy": self.accuracy,
            "per_class": self.per_class(),
            "confusion_matrix": {
                "labels": list(LABELS),
                "counts": m.tolist(),
                "normalized_by_true": norm.round(4).tolist(),
            },
            "leakage": self.leakage,
        }


def calibration_hashes(artifact: Path) -> set[str]:
    """Calibration image hashes recorded for ``artifact`` in the export manifest beside it."""
    manifest = artifact.parent / "export_manifest.json"
    if not manifest.is_file():
        return set()
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return set()
    for entry in data.get("artifacts", {}).values():
        if entry.get("file") == artifact.name:
            return set(entry.get("calibration", {}).get("image_sha256", []))
    return set()


def check_leakage(artifact: Path, split_hashes: set[str], split: str, allow_overlap: bool) -> dict[str, Any]:
    calib = calibration_hashes(artifact)
    overlap = len(calib & split_hashes)
    info = {"calibration_images": len(calib), "overlap_with_split": overlap, "split": split}
    if overlap and not allow_overlap:
        raise LeakageError(
            f"{artifact.name}: {overlap} of its {len(calib)} calibration images are in {split}; its score there would "
            "be biased (re-export calibrated on Training, or pass --allow-overlap to report it flagged)"
        )
    return info


def evaluate(
    artifacts: list[Path],
    data: FerData,
    split: Split | str = Split.PRIVATE_TEST,
    *,
    runtime: str | None = None,
    allow_overlap: bool = False,
) -> list[Result]:
    split = Split(split)
    images, labels = data.split(split)
    x = to_input(images)
    hashes = {image_sha256(im) for im in images}
    results = []
    for path in artifacts:
        leak = check_leakage(Path(path), hashes, split.value, allow_overlap)
        backend = open_backend(path, runtime)
        pred = predict_batched(backend, x).argmax(1)
        results.append(Result(Path(path).name, backend.runtime, split.value, labels, pred, leak))
    return results


def comparison(results: list[Result]) -> dict[str, Any]:
    """Deltas and argmax agreement of each artifact against the first."""
    base = results[0]
    return {
        r.name: {
            "accuracy": r.accuracy,
            "delta_pp": 100 * (r.accuracy - base.accuracy),
            "argmax_agreement": float((r.predictions == base.predictions).mean()),
        }
        for r in results
    }


def plot_confusion(results: list[Result], path: Path) -> Path:
    """Labelled confusion matrices (normalised by true label, with counts) side by side, as PNG."""
    from .errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 5.6), squeeze=False)
    for ax, r in zip(axes[0], results):
        m = r.confusion()
        norm = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(LABELS)):
            for j in range(len(LABELS)):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}\n{m[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{r.name} ({r.runtime})\n{r.split}: {100 * r.accuracy:.2f}% ({r.correct}/{len(r.labels)})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
