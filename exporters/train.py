"""Train the DeepFace emotion CNN on FER2013 (the architecture unchanged).

Recipe: Adam, softmax cross-entropy, batch 256, pixels/255, linear warm-up then cosine decay,
augmentation in NumPy (horizontal flip, integer shifts, JPEG re-encoding; optionally rotation/zoom and
random erasing), seeded per epoch.
Training split only for gradients; PublicTest picks the best epoch; PrivateTest is evaluated once,
at the end. Resumable: the last epoch's model and optimizer state live in the checkpoint folder.

Optional, both off by default: distillation from a soft-target file (``exporters.teacher``) and
gradual magnitude pruning of chosen kernels (Zhu & Gupta 2017), as masks applied after every
optimizer step, so the saved network is the plain one with zeros in it.
"""

from __future__ import annotations

import functools
import io
import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import __version__
from xruntime_emotion.atomic import write_text_atomic
from xruntime_emotion.errors import XEmotionError
from xruntime_emotion.model.data import FerData, Split, to_input
from xruntime_emotion.model.ir import DEEPFACE_LAYERS, ModelIR, Provenance

from ._deps import keras, tf
from .teacher import SoftTargets, load_soft_targets

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
    # Affine jitter (bilinear, edge-clamped) and random erasing; off in the default recipe.
    max_rotate_deg: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    erase_prob: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)  # fraction of the 48x48 face covered by one grey-noise box
    optimizer: str = "adam"
    loss: str = "sparse categorical cross-entropy on softmax outputs"
    selection: str = "best PublicTest accuracy"
    # Distillation: on when a soft-target file is given; its digest is recorded here.
    soft_targets_sha256: str | None = None
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the hard-label loss; 1 - alpha goes to T²·KL(teacher_T ‖ student_T)
    # Gradual magnitude pruning of kernels: ((layer, final sparsity), ...), ramped between two epoch counts.
    prune: tuple[tuple[str, float], ...] = ()
    prune_start: int = 2  # epochs done when the ramp starts (sparsity 0 up to here)
    prune_end: int = 40  # epochs done when the final sparsity is reached
    # Fine-tuning: start from these weights (their weights_sha256) instead of a seeded random init.
    init_weights_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise XEmotionError("epochs and batch size must be at least 1")
        if not self.temperature > 0:
            raise XEmotionError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise XEmotionError(f"alpha (the hard-label weight) must be in [0, 1], got {self.alpha}")
        names = [name for name, _ in self.prune]
        for name, sparsity in self.prune:
            if name not in PRUNABLE:
                raise XEmotionError(f"cannot prune {name!r}: the layers with kernels are {', '.join(PRUNABLE)}")
            if not 0 <= sparsity < 1:
                raise XEmotionError(f"sparsity of {name} must be in [0, 1), got {sparsity}")
        if not 0 <= self.max_rotate_deg <= 45 or not 0.5 <= self.scale_range[0] <= self.scale_range[1] <= 2:
            raise XEmotionError("rotation must be in [0, 45] degrees and the scale range within [0.5, 2]")
        if not 0 <= self.erase_prob <= 1 or not 0 < self.erase_area[0] <= self.erase_area[1] < 1:
            raise XEmotionError("erase probability must be in [0, 1] and its area range within (0, 1)")
        if len(set(names)) != len(names):
            raise XEmotionError(f"a layer is named twice in the pruning spec: {', '.join(names)}")
        if self.prune and not 0 <= self.prune_start < self.prune_end < self.epochs:
            raise XEmotionError(
                f"pruning needs 0 <= start < end < epochs (epochs at final sparsity to choose from), got "
                f"start {self.prune_start}, end {self.prune_end}, epochs {self.epochs}"
            )

    @property
    def distill(self) -> bool:
        return self.soft_targets_sha256 is not None

    def sparsity(self, epochs_done: int) -> dict[str, float]:
        """Target sparsity of each pruned kernel for the epoch after ``epochs_done``: the cubic ramp
        s_f·(1-(1-(t-t0)/(t1-t0))^3), 0 before t0, s_f from t1 on."""
        f = min(1.0, max(0.0, (epochs_done - self.prune_start) / (self.prune_end - self.prune_start)))
        return {name: s * (1 - (1 - f) ** 3) for name, s in self.prune}

    def to_json(self) -> dict[str, Any]:
        """The recipe as recorded in the manifest; the distillation and pruning fields only when used,
        so the default recipe reads exactly as before they existed."""
        d = asdict(self)
        d["jpeg_quality"] = list(self.jpeg_quality)
        if self.max_rotate_deg or self.scale_range != (1.0, 1.0) or self.erase_prob:
            d["scale_range"] = list(self.scale_range)
            d["erase_area"] = list(self.erase_area)
        else:
            for key in ("max_rotate_deg", "scale_range", "erase_prob", "erase_area"):
                del d[key]
        if not self.distill:
            for key in ("soft_targets_sha256", "temperature", "alpha"):
                del d[key]
        if self.init_weights_sha256 is None:
            del d["init_weights_sha256"]
        if self.prune:
            d["prune"] = dict(self.prune)
        else:
            for key in ("prune", "prune_start", "prune_end"):
                del d[key]
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Recipe:
        """A recipe from its JSON form (``to_json``, or a manifest's ``recipe``); unknown keys are refused."""
        known = {f.name for f in fields(Recipe)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise XEmotionError(f"unknown recipe field(s): {', '.join(unknown)}")
        kw = dict(d)
        for key in ("jpeg_quality", "scale_range", "erase_area"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if "prune" in kw:
            prune = kw["prune"]
            kw["prune"] = tuple((str(k), float(v)) for k, v in (prune.items() if isinstance(prune, dict) else prune))
        try:
            return Recipe(**kw)
        except TypeError as exc:
            raise XEmotionError(f"bad recipe: {exc}") from None


PRUNABLE = tuple(layer.name for layer in DEEPFACE_LAYERS if layer.has_weights)


def parse_prune(spec: str) -> tuple[tuple[str, float], ...]:
    """``dense=0.75,conv2d_3=0.5`` -> (("dense", 0.75), ("conv2d_3", 0.5)), in the network's layer order."""
    pairs = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError(item)
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise XEmotionError(f"bad pruning spec {item!r}: expected LAYER=SPARSITY, e.g. dense=0.75") from None
    order = {name: i for i, name in enumerate(PRUNABLE)}
    return tuple(sorted(pairs, key=lambda p: order.get(p[0], len(order))))


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from a JSON file of Recipe fields, or from a weights manifest (its ``recipe``)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise XEmotionError(f"{path}: not a readable recipe JSON ({exc})") from exc
    if isinstance(d, dict) and isinstance(d.get("recipe"), dict) and "schema" in d:
        d = d["recipe"]
    if not isinstance(d, dict):
        raise XEmotionError(f"{path}: a recipe is a JSON object of Recipe fields")
    return Recipe.from_json(d)


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """1 everywhere but on the round(sparsity·size) smallest magnitudes (zeros first), float32."""
    k = int(round(sparsity * kernel.size))
    mask = np.ones(kernel.size, np.float32)
    if k:
        mask[np.argsort(np.abs(kernel).ravel(), kind="stable")[:k]] = 0.0
    return mask.reshape(kernel.shape)


def kernel_sparsity(ir: ModelIR) -> dict[str, float]:
    """Fraction of exact zeros in each kernel."""
    return {s.name: float((ir.weights[s.name][0] == 0).mean()) for s in ir.weighted_layers}


@functools.cache
def _keras_objects() -> dict[str, Any]:
    """The distillation loss, its accuracy metric and the mask callback (Keras classes, made on first use)."""
    k = keras()
    ops = k.ops

    class DistillationLoss(k.losses.Loss):  # type: ignore[misc,name-defined]
        """alpha·CE(label, p) + (1-alpha)·T²·KL(teacher_T ‖ softmax(log p / T)); y_true is [label, teacher_T]."""

        def __init__(self, temperature: float = 4.0, alpha: float = 0.5, name: str = "distillation", **kw: Any):
            super().__init__(name=name, **kw)
            self.temperature, self.alpha = float(temperature), float(alpha)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            labels = ops.cast(y_true[:, 0], "int32")
            teacher = y_true[:, 1:]
            hard = k.losses.sparse_categorical_crossentropy(labels, y_pred)
            # log p and the logits differ by a constant per row, so softmax(log p / T) = softmax(logits / T)
            log_student = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-12, 1.0)) / self.temperature, axis=-1)
            kl = ops.sum(teacher * (ops.log(ops.clip(teacher, 1e-12, 1.0)) - log_student), axis=-1)
            return self.alpha * hard + (1.0 - self.alpha) * self.temperature**2 * kl

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}

    def label_accuracy(y_true: Any, y_pred: Any) -> Any:
        return ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), ops.cast(y_true[:, 0], "int64")), "float32")

    class ApplyMasks(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        """Multiplies kernels by their masks now and after every optimizer step."""

        def __init__(self, model: Any, masks: Mapping[str, np.ndarray]) -> None:
            super().__init__()
            self.pairs = [(model.get_layer(n).kernel, ops.convert_to_tensor(m)) for n, m in masks.items()]
            self.apply()

        def apply(self) -> None:
            for kernel, mask in self.pairs:
                kernel.assign(kernel * mask)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.apply()

    return {"DistillationLoss": DistillationLoss, "label_accuracy": label_accuracy, "ApplyMasks": ApplyMasks}


def _affine(images: np.ndarray, rng: np.random.Generator, max_deg: float, scale: tuple[float, float]) -> np.ndarray:
    """Rotate by U(-max_deg, max_deg) and zoom by U(scale) about the centre; bilinear, edges clamped."""
    n, h, w = images.shape
    a = np.deg2rad(rng.uniform(-max_deg, max_deg, n)).astype(np.float32)
    z = rng.uniform(scale[0], scale[1], n).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy - (h - 1) / 2, xx - (w - 1) / 2
    out = np.empty_like(images)
    for lo in range(0, n, 1024):  # chunks keep the gathers in cache
        hi = min(n, lo + 1024)
        cos, sin = (np.cos(a[lo:hi]) / z[lo:hi])[:, None, None], (np.sin(a[lo:hi]) / z[lo:hi])[:, None, None]
        sy = np.clip(cos * yy - sin * xx + (h - 1) / 2, 0, h - 1)  # source of each output pixel
        sx = np.clip(sin * yy + cos * xx + (w - 1) / 2, 0, w - 1)
        y0 = np.minimum(sy.astype(np.int32), h - 2)
        x0 = np.minimum(sx.astype(np.int32), w - 2)
        fy, fx = sy - y0, sx - x0
        flat = images[lo:hi].reshape(-1).astype(np.float32)
        idx = (np.arange(hi - lo, dtype=np.int32) * (h * w))[:, None, None] + y0 * w + x0
        top = flat[idx] * (1 - fx) + flat[idx + 1] * fx
        bottom = flat[idx + w] * (1 - fx) + flat[idx + w + 1] * fx
        out[lo:hi] = np.clip(np.rint(top * (1 - fy) + bottom * fy), 0, 255)
    return out


def _erase(images: np.ndarray, rng: np.random.Generator, prob: float, area: tuple[float, float]) -> None:
    """Random erasing in place: one box of uniform noise, aspect ratio in [1/2, 2], on a ``prob`` share."""
    n, h, w = images.shape
    for i in np.flatnonzero(rng.random(n) < prob):
        s = rng.uniform(*area) * h * w
        r = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        bh, bw = min(h, max(1, round(np.sqrt(s * r)))), min(w, max(1, round(np.sqrt(s / r))))
        y, x = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        images[i, y : y + bh, x : x + bw] = rng.integers(0, 256, (bh, bw), dtype=np.uint8)


def augment(images: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> np.ndarray:
    """Flip, rotate/zoom (when the recipe asks), shift (edge-padded), JPEG re-encode and erase (when
    asked) a uint8 batch (N,48,48)."""
    from PIL import Image

    n, h, w = images.shape
    out = images.copy()
    flip = rng.random(n) < recipe.flip
    out[flip] = out[flip, :, ::-1]
    if recipe.max_rotate_deg or recipe.scale_range != (1.0, 1.0):
        out = _affine(out, rng, recipe.max_rotate_deg, recipe.scale_range)
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
    if recipe.erase_prob:
        _erase(out, rng, recipe.erase_prob, recipe.erase_area)
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
    soft_targets: SoftTargets | str | Path | None = None,
    init: ModelIR | str | Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    score_private: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, write weights (npz + DeepFace h5) and manifest.json into ``output``; return the manifest.

    ``limit`` keeps the first rows of each split (a fast smoke run, not a real result). With
    ``soft_targets`` (a file from ``exporters.teacher``) the loss distils from them; a recipe that names
    soft targets by digest needs that file. ``init`` (weights, or a file ``ModelIR.load`` reads) starts
    from those weights instead of a random init; a recipe that names its start weights needs them.
    """
    output = Path(output)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else output / "checkpoints"
    x_tr, y_tr = data.split(Split.TRAINING)
    x_pu, y_pu = data.split(Split.PUBLIC_TEST)
    if limit:
        x_tr, y_tr, x_pu, y_pu = x_tr[:limit], y_tr[:limit], x_pu[:limit], y_pu[:limit]
    teacher = load_soft_targets(soft_targets) if isinstance(soft_targets, (str, Path)) else soft_targets
    _pinned(recipe.soft_targets_sha256, teacher.sha256 if teacher else None, "distils from soft targets", "")
    if teacher is not None:
        teacher.check(data, len(x_tr))
        recipe = replace(recipe, soft_targets_sha256=teacher.sha256)
        y_fit = np.concatenate([y_tr[:, None].astype(np.float32), teacher.tempered(recipe.temperature, len(x_tr))], 1)
    else:
        y_fit = y_tr
    start = ModelIR.load(init) if isinstance(init, (str, Path)) else init
    _pinned(recipe.init_weights_sha256, start.weights_sha256 if start else None, "starts from weights", " (--init)")
    if start is not None:
        recipe = replace(recipe, init_weights_sha256=start.weights_sha256)
    k = keras()
    from .keras_builder import build_model

    ckpt.mkdir(parents=True, exist_ok=True)
    steps = int(np.ceil(len(x_tr) / recipe.batch_size))
    state = _State(ckpt / "state.json")
    last = ckpt / "last.keras"
    objects = _keras_objects()
    k.utils.set_random_seed(seed)
    if state.data["epochs_done"] and last.is_file():
        _check_resume(state.data.get("recipe"), recipe, ckpt)
        model = k.models.load_model(last, custom_objects=objects)
    else:
        state = _State(ckpt / "state.json.new")
        model = build_model(start)
        total = max(1, steps * recipe.epochs)
        warm = min(steps * recipe.warmup_epochs, total - 1)
        lr = k.optimizers.schedules.CosineDecay(
            0.0 if warm else recipe.learning_rate,
            total - warm,
            alpha=0.0,
            warmup_target=recipe.learning_rate if warm else None,
            warmup_steps=warm,
        )
        if recipe.distill:
            loss = objects["DistillationLoss"](recipe.temperature, recipe.alpha)
            metrics = [k.metrics.MeanMetricWrapper(objects["label_accuracy"], name="accuracy")]
        else:  # exactly the recipe of the shipped weights
            loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        model.compile(optimizer=k.optimizers.Adam(lr), loss=loss, metrics=metrics)
        state.path = ckpt / "state.json"
        state.data["recipe"] = recipe.to_json()
    x_pu_f = to_input(x_pu)
    start_epoch = int(state.data["epochs_done"])
    for epoch in range(start_epoch, recipe.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x_tr))
        xa = to_input(augment(x_tr[order], rng, recipe))
        callbacks = []
        sparsity = recipe.sparsity(epoch)
        if sparsity:  # masks from the weights as they are now: a resumed run computes the same ones
            masks = {n: magnitude_mask(model.get_layer(n).get_weights()[0], s) for n, s in sparsity.items()}
            callbacks.append(objects["ApplyMasks"](model, masks))
        hist = model.fit(
            xa,
            y_fit[order],
            batch_size=recipe.batch_size,
            epochs=1,
            shuffle=False,
            callbacks=callbacks,
            verbose=1 if progress else 0,
        )
        pub = float((predict_keras(model, x_pu_f).argmax(1) == y_pu).mean())
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {
            "epoch": epoch + 1,
            "loss": float(hist.history["loss"][0]),
            "train_accuracy": float(hist.history["accuracy"][0]),
            "public_accuracy": pub,
            "lr": float(np.asarray(model.optimizer.learning_rate)),
            "seconds": round(dt, 1),
            "cpu_seconds": round(cpu, 1),
        }
        if sparsity:
            row["sparsity"] = {n: round(s, 4) for n, s in sparsity.items()}
        state.data["history"].append(row)
        state.data["train_seconds"] += dt
        # with pruning, only epochs trained at the final sparsity may be chosen
        eligible = not recipe.prune or epoch >= recipe.prune_end
        if eligible and pub > state.data["best_public_accuracy"]:
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
    return finish(
        data, output, ckpt, recipe=recipe, seed=seed, limit=limit, teacher=teacher,
        score_private=score_private, start=start,
    )  # fmt: skip


def _pinned(recorded: str | None, given: str | None, what: str, option: str) -> None:
    """A recipe that names an input by digest (``recorded``) runs only with that input (``given``)."""
    if given is None and recorded:
        raise XEmotionError(f"the recipe {what} {recorded}: give that file{option}")
    if given is not None and recorded not in (None, given):
        raise XEmotionError(f"the recipe {what} {recorded}, the file given is {given}")


def score(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Rows, correct answers and top-1 accuracy of predicted labels ``pred`` against ``y``."""
    correct = int((pred == y).sum())
    return {"rows": len(y), "correct": correct, "accuracy": correct / len(y)}


def _check_resume(saved: dict[str, Any] | None, recipe: Recipe, ckpt: Path) -> None:
    """A checkpoint resumes only the recipe it was made with (the epoch count may change)."""
    if saved is None:  # a checkpoint from before recipes were recorded in it
        return
    now = recipe.to_json()
    diff = sorted(key for key in set(saved) | set(now) if key != "epochs" and saved.get(key) != now.get(key))
    if diff:
        raise XEmotionError(
            f"{ckpt} holds a run with another recipe (differs in {', '.join(diff)}); use another --checkpoint-dir"
        )


def finish(
    data: FerData,
    output: Path,
    ckpt: Path,
    *,
    recipe: Recipe,
    seed: int,
    limit: int | None,
    teacher: SoftTargets | None = None,
    score_private: bool = True,
    start: ModelIR | None = None,
) -> dict[str, Any]:
    """Score the best epoch on every split (PrivateTest: here, once; or not at all, for a candidate
    whose PrivateTest stays unseen until it is chosen) and write the outputs."""
    from .keras_builder import build_model

    state = _State(ckpt / "state.json")
    best = ModelIR.from_npz(ckpt / "best.npz")
    best = best.with_provenance(Provenance("xemotion-fer2013", best.weights_sha256, "xemotion-npz"))
    model = build_model(best)
    splits: dict[str, Any] = {}
    for s in Split:
        if s is Split.PRIVATE_TEST and not score_private:
            splits[s.value] = {"rows": data.sizes()[s.value], "scored": False}
            continue
        x, y = data.split(s)
        if limit:
            x, y = x[:limit], y[:limit]
        splits[s.value] = score(predict_keras(model, to_input(x)).argmax(1), y)
    output.mkdir(parents=True, exist_ok=True)
    best.save_npz(output / "emotion_weights.npz")
    best.save_deepface_h5(output / "facial_expression_model_weights.h5")
    history = state.data["history"]
    cpu = sum(row.get("cpu_seconds", 0.0) for row in history)
    manifest: dict[str, Any] = {
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
        "recipe": recipe.to_json(),
        "accuracy": {"runtime": "keras", "batch_size": 256, **splits},
        # measured from the written npz: exact zeros per kernel
        "sparsity": kernel_sparsity(ModelIR.from_npz(output / "emotion_weights.npz")),
        "history": history,
        "train_seconds": round(state.data["train_seconds"], 1),
        # process CPU time (all threads) of the training epochs, summed across resumed runs
        "cpu_seconds": round(cpu, 1),
        "cpu_hours": round(cpu / 3600, 4),
        "cpu_epochs_counted": sum("cpu_seconds" in row for row in history),
        "versions": _versions(),
        "reproducibility": (
            "Seeded (weights init, dropout, shuffling, augmentation). Augmentation and order are NumPy-seeded per "
            "epoch and identical across runs; TensorFlow's CPU kernels (oneDNN, multi-threaded reductions) are not "
            "bit-exact across machines or thread counts, so weights differ in low bits and accuracy by a few "
            "tenths of a point. A resumed run restarts dropout's random stream."
        ),
        "license": LICENSE_NOTE,
    }
    if teacher is not None:
        manifest["teacher"] = {
            "soft_targets_sha256": teacher.sha256,
            **{key: v for key, v in teacher.record.items() if key not in ("schema", "kind", "sha256")},
        }
        manifest["distillation"] = (
            f"loss = {recipe.alpha}·CE(label, p) + {1 - recipe.alpha:g}·T²·KL(teacher_T ‖ softmax(log p / T)), "
            f"T = {recipe.temperature}, teacher_T = softmax(log p_teacher / T); augmented images keep their "
            "original's target"
        )
    if start is not None:
        manifest["init"] = {
            "weights_sha256": start.weights_sha256,
            "file": start.provenance.source,
            "file_sha256": start.provenance.sha256,
            "note": "fine-tuned: training started from these weights, not from a random init",
        }
    if recipe.prune:
        manifest["pruning"] = (
            "gradual magnitude pruning (Zhu & Gupta 2017) of the kernels in recipe.prune: at the start of each "
            "epoch t (epochs done), s_t = s_f·(1-(1-(t-t0)/(t1-t0))^3) with t0 = prune_start, t1 = prune_end; "
            "the mask zeroes the round(s_t·size) smallest magnitudes and is applied after every optimizer step; "
            "the best epoch is chosen among those trained at the final sparsity"
        )
    write_text_atomic(output / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def _sha(p: Path) -> str:
    from xruntime_emotion.util import sha256_file

    return sha256_file(p)
