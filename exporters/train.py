"""Train the DeepFace emotion CNN on FER2013 (the architecture unchanged).

Recipe: Adam, softmax cross-entropy, batch 256, pixels/255, linear warm-up then cosine decay,
light augmentation in NumPy (horizontal flip, integer shifts, JPEG re-encoding), seeded per epoch.
Training split only for gradients; PublicTest picks the best epoch; PrivateTest is evaluated once,
at the end. Resumable: the last epoch's model and optimizer state live in the checkpoint folder.
"""

from __future__ import annotations

import io
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import __version__
from xruntime_emotion.atomic import write_text_atomic
from xruntime_emotion.model.data import FerData, Split, to_input
from xruntime_emotion.model.ir import ModelIR, Provenance

from ._deps import keras, tf

LICENSE_NOTE = (
    "Trained on FER2013, which is shared for non-commercial research; these weights are for research "
    "and evaluation use, as are DeepFace's own."
)


@dataclass(frozen=True)
class Recipe:
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_epochs: int = 2
    schedule: str = "linear warm-up, then cosine decay to 0"
    flip: float = 0.5
    max_shift_px: int = 4  # about 8% of 48
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (70, 95)
    optimizer: str = "adam"
    loss: str = "sparse categorical cross-entropy on softmax outputs"
    selection: str = "best PublicTest accuracy"


def augment(images: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> np.ndarray:
    """Flip, shift (edge-padded) and JPEG re-encode a uint8 batch (N,48,48)."""
    from PIL import Image

    n, h, w = images.shape
    out = images.copy()
    flip = rng.random(n) < recipe.flip
    out[flip] = out[flip, :, ::-1]
    s = recipe.max_shift_px
    if s:
        padded = np.pad(out, ((0, 0), (s, s), (s, s)), mode="edge")
        dy = rng.integers(0, 2 * s + 1, n)
        dx = rng.integers(0, 2 * s + 1, n)
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    jpeg = np.flatnonzero(rng.random(n) < recipe.jpeg_prob)
    qualities = rng.integers(recipe.jpeg_quality[0], recipe.jpeg_quality[1] + 1, len(jpeg))
    for i, q in zip(jpeg, qualities):
        buf = io.BytesIO()
        Image.fromarray(out[i]).save(buf, format="JPEG", quality=int(q))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf))
    return out


def _versions() -> dict[str, str]:
    import h5py

    k, t = keras(), tf()
    return {
        "xemotion": __version__,
        "python": platform.python_version(),
        "tensorflow": t.__version__,
        "keras": k.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "platform": platform.platform(),
    }


def predict_keras(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Keras probabilities in fixed batches: how train and evaluate both score weights."""
    return np.concatenate(
        [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )


class _State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = (
            json.loads(path.read_text())
            if path.is_file()
            else {
                "epochs_done": 0,
                "best_epoch": 0,
                "best_public_accuracy": -1.0,
                "history": [],
                "train_seconds": 0.0,
            }
        )

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=1))


def train(
    data: FerData,
    output: Path,
    *,
    recipe: Recipe = Recipe(),
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    limit: int | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, write weights (npz + DeepFace h5) and manifest.json into ``output``; return the manifest.

    ``limit`` keeps the first rows of each split (a fast smoke run, not a real result).
    """
    k = keras()
    from .keras_builder import build_model

    output = Path(output)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else output / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = data.split(Split.TRAINING)
    x_pu, y_pu = data.split(Split.PUBLIC_TEST)
    if limit:
        x_tr, y_tr, x_pu, y_pu = x_tr[:limit], y_tr[:limit], x_pu[:limit], y_pu[:limit]
    steps = int(np.ceil(len(x_tr) / recipe.batch_size))
    state = _State(ckpt / "state.json")
    last = ckpt / "last.keras"
    k.utils.set_random_seed(seed)
    if state.data["epochs_done"] and last.is_file():
        model = k.models.load_model(last)
    else:
        state = _State(ckpt / "state.json.new")
        model = build_model()
        total = max(1, steps * recipe.epochs)
        warm = min(steps * recipe.warmup_epochs, total - 1)
        lr = k.optimizers.schedules.CosineDecay(
            0.0 if warm else recipe.learning_rate,
            total - warm,
            alpha=0.0,
            warmup_target=recipe.learning_rate if warm else None,
            warmup_steps=warm,
        )
        model.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        state.path = ckpt / "state.json"
    x_pu_f = to_input(x_pu)
    start_epoch = int(state.data["epochs_done"])
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x_tr))
        xa = to_input(augment(x_tr[order], rng, recipe))
        hist = model.fit(
            xa, y_tr[order], batch_size=recipe.batch_size, epochs=1, shuffle=False, verbose=1 if progress else 0
        )
        pub = float((predict_keras(model, x_pu_f).argmax(1) == y_pu).mean())
        dt = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "loss": float(hist.history["loss"][0]),
            "train_accuracy": float(hist.history["accuracy"][0]),
            "public_accuracy": pub,
            "lr": float(np.asarray(model.optimizer.learning_rate)),
            "seconds": round(dt, 1),
        }
        state.data["history"].append(row)
        state.data["train_seconds"] += dt
        if pub > state.data["best_public_accuracy"]:
            state.data.update(best_epoch=epoch + 1, best_public_accuracy=pub)
            ModelIR.from_keras(model).save_npz(ckpt / "best.npz")
        state.data["epochs_done"] = epoch + 1
        model.save(ckpt / "last.keras.part.keras")
        (ckpt / "last.keras.part.keras").replace(last)
        state.save()
        if on_epoch:
            on_epoch(row)
        if progress:
            print(
                f"epoch {epoch + 1}/{recipe.epochs}  loss {row['loss']:.4f}  train {row['train_accuracy']:.4f}  "
                f"PublicTest {pub:.4f}  best {state.data['best_public_accuracy']:.4f}@{state.data['best_epoch']}  "
                f"{dt:.0f}s",
                flush=True,
            )
    return finish(data, output, ckpt, recipe=recipe, seed=seed, limit=limit)


def finish(data: FerData, output: Path, ckpt: Path, *, recipe: Recipe, seed: int, limit: int | None) -> dict[str, Any]:
    """Score the best epoch on every split (PrivateTest: here, once) and write the outputs."""
    from .keras_builder import build_model

    state = _State(ckpt / "state.json")
    best = ModelIR.from_npz(ckpt / "best.npz")
    best = best.with_provenance(Provenance("xemotion-fer2013", best.weights_sha256, "xemotion-npz"))
    model = build_model(best)
    splits: dict[str, Any] = {}
    for s in Split:
        x, y = data.split(s)
        if limit:
            x, y = x[:limit], y[:limit]
        pred = predict_keras(model, to_input(x)).argmax(1)
        correct = int((pred == y).sum())
        splits[s.value] = {"rows": len(y), "correct": correct, "accuracy": correct / len(y)}
    output.mkdir(parents=True, exist_ok=True)
    best.save_npz(output / "emotion_weights.npz")
    best.save_deepface_h5(output / "facial_expression_model_weights.h5")
    manifest = {
        "schema": 1,
        "model": "deepface-emotion",
        "weights": {
            "npz": "emotion_weights.npz",
            "deepface_h5": "facial_expression_model_weights.h5",
            "weights_sha256": best.weights_sha256,
            "npz_sha256": _sha(output / "emotion_weights.npz"),
            "h5_sha256": _sha(output / "facial_expression_model_weights.h5"),
            "ir_hash": best.ir_hash,
            "parameters": best.num_parameters,
        },
        "data": {
            "source": Path(data.source).name,
            "arrays_sha256": data.sha256,
            "split_sizes": data.sizes(),
            "limit": limit,
        },
        "seed": seed,
        "epochs": recipe.epochs,
        "best_epoch": state.data["best_epoch"],
        "recipe": asdict(recipe),
        "accuracy": {"runtime": "keras", "batch_size": 256, **splits},
        "history": state.data["history"],
        "train_seconds": round(state.data["train_seconds"], 1),
        "versions": _versions(),
        "reproducibility": (
            "Seeded (weights init, dropout, shuffling, augmentation). Augmentation and order are NumPy-seeded per "
            "epoch and identical across runs; TensorFlow's CPU kernels (oneDNN, multi-threaded reductions) are not "
            "bit-exact across machines or thread counts, so weights differ in low bits and accuracy by a few "
            "tenths of a point. A resumed run restarts dropout's random stream."
        ),
        "license": LICENSE_NOTE,
    }
    write_text_atomic(output / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def _sha(p: Path) -> str:
    from xruntime_emotion.util import sha256_file

    return sha256_file(p)
