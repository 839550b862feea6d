"""Score artifacts on a FER2013 split: accuracy, per-class precision/recall/F1, confusion matrix, the
calibration-leakage guard, and each int8 artifact against the fp32 artifact of the same weights
(Δ, argmax agreement, and the rule int8 top-1 ≥ 99% of fp32 top-1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.check.fidelity import ACCURACY_RULE, accuracy_ratio
from xruntime_emotion.errors import LeakageError
from xruntime_emotion.model.calibration import near_duplicates, shipped_sample
from xruntime_emotion.model.catalog import FORMATS, Precision
from xruntime_emotion.model.data import FerData, Split, image_sha256, to_input
from xruntime_emotion.model.ir import CONTRACT, LABELS
from xruntime_emotion.runtime.backends import file_kind, open_backend, predict_batched
from xruntime_emotion.runtime.integrity import EXPORT_MANIFEST, TRAIN_MANIFEST, read_manifest, verify_sha256


@dataclass
class Result:
    name: str
    runtime: str
    split: str
    labels: np.ndarray
    predictions: np.ndarray
    leakage: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)  # format, precision, weights_sha256 (when known)

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
            **self.identity,
        }


def _export_entry(artifact: Path) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(format, entry, manifest) of ``artifact`` in the export manifest beside it, if it is listed there."""
    path = artifact.parent / EXPORT_MANIFEST
    if not path.is_file():
        return None
    m = read_manifest(path)  # a manifest that cannot be read is an error, never "no calibration"
    for name, entry in (m.get("artifacts") or {}).items():
        if isinstance(entry, dict) and entry.get("file") == artifact.name:
            return name, entry, m
    return None


def identity(artifact: Path) -> dict[str, Any]:
    """What the artifact is: its format, precision and weights, from its manifest or, for weights, itself."""
    listed = _export_entry(artifact)
    if listed:
        name, entry, m = listed
        verify_sha256(artifact, str(entry.get("sha256", "")), str(artifact.parent / EXPORT_MANIFEST))
        return {"format": name, "precision": entry.get("precision"), "weights_sha256": m.get("weights_sha256")}
    train = artifact.parent / TRAIN_MANIFEST
    if train.is_file():  # xemotion train's folder, or the shipped weights
        m = read_manifest(train)
        w, shipped = m.get("weights") or {}, m.get("shipped") or {}
        if artifact.name in (w.get("npz"), w.get("deepface_h5"), shipped.get("onnx")):
            fmt = "onnx" if artifact.name == shipped.get("onnx") else "keras"
            return {"format": fmt, "precision": Precision.FP32.value, "weights_sha256": w.get("weights_sha256")}
    if file_kind(artifact) in (".npz", ".h5"):
        from xruntime_emotion.model.ir import ModelIR

        return {
            "format": "keras",
            "precision": Precision.FP32.value,
            "weights_sha256": ModelIR.load(artifact).weights_sha256,
        }
    return {}


def calibration_images(artifact: Path, data: FerData) -> tuple[set[str], np.ndarray]:
    """The calibration image hashes recorded for ``artifact``, and the images among them found in
    ``data`` or in the shipped sample (for the near-duplicate check)."""
    listed = _export_entry(artifact)
    hashes = set(listed[1].get("calibration", {}).get("image_sha256", [])) if listed else set()
    if not hashes:
        return hashes, np.zeros((0, CONTRACT.height, CONTRACT.width), np.uint8)
    pool = {image_sha256(im): im for im in shipped_sample().images}
    found = [pool[h] for h in hashes if h in pool]
    if len(found) < len(hashes):
        by_hash = {image_sha256(im): im for im in data.images}
        found += [by_hash[h] for h in hashes if h not in pool and h in by_hash]
    return hashes, np.array(found, dtype=np.uint8).reshape(-1, CONTRACT.height, CONTRACT.width)


def check_leakage(
    artifact: Path, data: FerData, images: np.ndarray, split: str, allow_overlap: bool, split_hashes: set[str]
) -> dict[str, Any]:
    """Refuse to score an artifact calibrated on faces of ``split`` (``images``, whose pixel hashes are
    ``split_hashes``): the same images, or near-duplicates."""
    hashes, calib = calibration_images(artifact, data)
    exact = len(hashes & split_hashes)
    near = int(near_duplicates(calib, images).sum()) if len(calib) else 0
    overlap = max(exact, near)
    info = {
        "calibration_images": len(hashes),
        "checked_for_near_duplicates": len(calib),
        "overlap_with_split": overlap,
        "exact_overlap": exact,
        "split": split,
    }
    if overlap and not allow_overlap:
        raise LeakageError(
            f"{artifact.name}: {overlap} of its {len(hashes)} calibration images are in {split} or near-duplicates of "
            "its faces; its score there would be biased (re-export calibrated on Training, or pass --allow-overlap "
            "to report it flagged)"
        )
    return info


def evaluate(
    artifacts: list[Path],
    data: FerData,
    split: Split | str = Split.PRIVATE_TEST,
    *,
    runtime: str | None = None,
    allow_overlap: bool = False,
    on_step: Callable[[str, int, int], None] | None = None,
) -> list[Result]:
    """Score each artifact on ``split``; ``on_step(name, done, total)`` hears of each as it starts."""
    split = Split(split)
    images, labels = data.split(split)
    x = to_input(images)
    split_hashes = {image_sha256(im) for im in images}  # once, not per artifact
    paths = [Path(p) for p in artifacts]
    names = [p.name for p in paths]
    results = []
    for done, (path, name) in enumerate(zip(paths, names)):
        if on_step:
            on_step(f"{name} ({len(x)} rows)", done, len(paths))
        who = identity(path)  # its sha256 against its manifest: before the work, not after
        leak = check_leakage(path, data, images, split.value, allow_overlap, split_hashes)
        backend = open_backend(path, runtime)
        pred = predict_batched(backend, x).argmax(1)
        name = name if names.count(name) == 1 else str(path)  # results are keyed by name: keep them apart
        results.append(Result(name, backend.runtime, split.value, labels, pred, leak, who))
    return results


def baseline(r: Result, results: list[Result]) -> Result | None:
    """The fp32 result of the same weights ``r`` is compared with: for int8, its own fp32 format first
    (onnx-int8 → onnx, tflite-int8 → tflite-fp32); for fp32, the first fp32 result of those weights."""
    weights = r.identity.get("weights_sha256")
    same = [b for b in results if weights and b.identity.get("weights_sha256") == weights]
    fp32 = [b for b in same if b.identity.get("precision") == Precision.FP32.value]
    if r.identity.get("precision") == Precision.FP32.value:
        return fp32[0] if fp32 else None
    fmt = FORMATS.get(r.identity.get("format", ""))
    twin = [b for b in fp32 if fmt and b.identity.get("format") == fmt.baseline]
    return (twin or fp32 or [None])[0]


def comparison(results: list[Result]) -> dict[str, Any]:
    """Each artifact against its fp32 baseline (named); int8 artifacts judged by the 99%-of-fp32 rule."""
    out: dict[str, Any] = {}
    for r in results:
        b = baseline(r, results)
        row: dict[str, Any] = {"accuracy": r.accuracy, "baseline": b.name if b else None}
        if b is not None:
            row.update(
                delta_pp=100 * (r.accuracy - b.accuracy),
                argmax_agreement=float((r.predictions == b.predictions).mean()),
            )
        if r.identity.get("precision") == Precision.INT8.value:
            rule = ACCURACY_RULE["min_ratio_of_fp32_top1"]
            if b is None:
                row["int8_rule"] = {"status": "not judged", "reason": "no fp32 artifact of the same weights evaluated"}
            else:
                ratio = accuracy_ratio(r.accuracy, b.accuracy)
                row["int8_rule"] = {
                    "status": "passed" if ratio >= rule else "failed",
                    "ratio_of_fp32_top1": ratio,
                    "min_ratio": rule,
                    "baseline": b.name,
                    "source": ACCURACY_RULE["source"],
                }
        out[r.name] = row
    return out


def plot_confusion(results: list[Result], path: Path) -> Path:
    """Labelled confusion matrices (normalised by true label, with counts) side by side, as PNG."""
    from xruntime_emotion.errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xruntime_emotion.atomic import atomic_path

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
