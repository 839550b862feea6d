"""Distillation and pruning in `xemotion train`; the teacher's soft-target file (`xemotion teacher`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import confident_random_ir
from helpers import from_scratch_recipe, run_cli

from exporters.teacher import SoftTargets, load_soft_targets, save_soft_targets
from exporters.train import Recipe, load_recipe, magnitude_mask, parse_prune
from xruntime_emotion import ModelIR
from xruntime_emotion.errors import DataError, XEmotionError
from xruntime_emotion.model.data import FerData, Split
from xruntime_emotion.weights import default_weights_path

SHIPPED_MANIFEST = default_weights_path().parent / "manifest.json"


def test_default_recipe_is_the_shipped_weights_recipe() -> None:
    manifest = json.loads(SHIPPED_MANIFEST.read_text())
    scratch = from_scratch_recipe(manifest)
    assert json.loads(json.dumps(Recipe().to_json())) == scratch  # no distillation, pruning or init keys
    assert Recipe.from_json(scratch) == Recipe()
    shipped = load_recipe(SHIPPED_MANIFEST)  # the shipped weights' recipe reads back as it was recorded
    assert (
        json.loads(json.dumps(shipped.to_json())) == manifest["recipe"] == Recipe.from_json(shipped.to_json()).to_json()
    )
    if "init" in manifest:
        assert (
            shipped.init_weights_sha256
            == manifest["init"]["weights_sha256"]
            == manifest["init"]["base"]["weights"]["weights_sha256"]
        )
    with pytest.raises(XEmotionError, match="unknown recipe field"):
        Recipe.from_json({**scratch, "temprature": 2})


def test_prune_spec_schedule_and_masks() -> None:
    assert parse_prune("dense_1=0.75, conv2d_3=0.5,dense=0.75") == (
        ("conv2d_3", 0.5),
        ("dense", 0.75),
        ("dense_1", 0.75),
    )  # in the network's order
    for bad in ("dense", "dense=x", "flatten=0.5", "dense=1.0", "dense=0.5,dense=0.6"):
        with pytest.raises(XEmotionError):
            Recipe(prune=parse_prune(bad))
    with pytest.raises(XEmotionError, match="start < end < epochs"):
        Recipe(epochs=10, prune=(("dense", 0.5),), prune_start=2, prune_end=10)  # no epoch at final sparsity
    r = Recipe(epochs=20, prune=(("dense", 0.8),), prune_start=2, prune_end=10)
    # s_t = s_f (1 - (1 - (t - t0) / (t1 - t0))^3)
    assert [round(r.sparsity(t)["dense"], 6) for t in (0, 2, 4, 6, 10, 19)] == [0, 0, 0.4625, 0.7, 0.8, 0.8]
    w = np.random.default_rng(0).normal(size=(40, 25)).astype(np.float32)
    m = magnitude_mask(w, 0.3)
    assert m.shape == w.shape and int((m == 0).sum()) == 300
    assert np.abs(w[m == 0]).max() < np.abs(w[m == 1]).min()  # the smallest magnitudes go
    pruned = w * m
    assert np.array_equal(magnitude_mask(pruned, 0.5)[m == 0], np.zeros(300))  # zeros stay pruned as s grows


def test_distillation_loss_is_the_stated_formula() -> None:
    from exporters.train import _keras_objects

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (16, 7))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 7, 16)
    teacher = SoftTargets(rng.dirichlet(np.ones(7), 16).astype(np.float32), np.arange(16), {})
    T, alpha = 3.0, 0.25
    t_T = teacher.tempered(T, 16).astype(np.float64)
    s_T = np.exp(logits / T) / np.exp(logits / T).sum(1, keepdims=True)  # from the logits the network never shows
    want = alpha * -np.log(p[np.arange(16), labels]) + (1 - alpha) * T**2 * (t_T * np.log(t_T / s_T)).sum(1)
    loss = _keras_objects()["DistillationLoss"](T, alpha)
    y_true = np.concatenate([labels[:, None], t_T], 1).astype(np.float32)
    got = float(loss(y_true, p.astype(np.float32)))
    assert got == pytest.approx(want.mean(), rel=1e-4)


def _tiny_data(usage: list[str], seed: int = 0) -> FerData:
    rng = np.random.default_rng(seed)
    n = len(usage)
    return FerData(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.zeros(n, np.uint8), np.array(usage), "t", "a")


def test_soft_targets_refused_for_other_data_or_rows(tmp_path: Path) -> None:
    data = _tiny_data(["Training", "PublicTest", "Training", "Training"])
    probs = np.full((3, 7), 1 / 7, np.float32)
    targets = SoftTargets(probs, data.indices(Split.TRAINING), {"kind": "xemotion-soft-targets", "data": {}})
    save_soft_targets(targets, tmp_path / "st.npz")
    back = load_soft_targets(tmp_path / "st.npz")
    assert back.sha256 == targets.sha256 and np.array_equal(back.probabilities, probs)
    with pytest.raises(DataError, match="arrays sha256"):
        back.check(data, 3)  # the record names no data hash, so not this data's
    ok = SoftTargets(probs, back.indices, {"data": {"arrays_sha256": "a"}})
    ok.check(data, 3)
    with pytest.raises(DataError, match="cover 3 Training rows"):
        ok.check(data, 4)
    with pytest.raises(DataError, match="row order"):
        SoftTargets(probs, np.array([0, 1, 2]), ok.record).check(data, 3)


def _train(fer: FerData, tmp: Path, name: str, targets: Path, **kw: object) -> dict:
    from exporters.train import train

    recipe = Recipe(epochs=2, prune=(("dense", 0.5), ("conv2d_4", 0.25)), prune_start=0, prune_end=1)
    return train(
        fer, tmp / name, recipe=recipe, seed=5, checkpoint_dir=tmp / f"{name}-ck", limit=256,
        soft_targets=targets, progress=False, **kw,
    )  # fmt: skip


def test_teacher_file_then_distilled_pruned_smoke_run(tmp_path: Path, data_dir: Path) -> None:
    fer_npz = str(data_dir / "fer2013" / "fer2013.npz")
    random_member = tmp_path / "random.npz"
    confident_random_ir(7).save_npz(random_member)
    shipped = default_weights_path()
    st = tmp_path / "soft_targets.npz"
    r = run_cli(
        "teacher", "-m", str(shipped), "-m", str(random_member), "--data", fer_npz, "--limit", "256", "-o", str(st)
    )
    assert r.returncode == 0, r.stderr[-2000:]
    targets = load_soft_targets(st)
    assert targets.probabilities.shape == (256, 7) and targets.probabilities.dtype == np.float32
    np.testing.assert_allclose(targets.probabilities.sum(1), 1, atol=1e-5)
    rec = targets.record
    assert [m["weights_sha256"] for m in rec["members"]] == [
        ModelIR.load(shipped).weights_sha256,
        ModelIR.load(random_member).weights_sha256,
    ]
    assert rec["data"]["rows"] == 256 and rec["data"]["split"] == "Training" and rec["public_rows"] == 256
    assert rec["tta"].startswith("mean of the probabilities of the image and its horizontal mirror")
    assert rec["members"][0]["public_accuracy"] > 0.5 > rec["members"][1]["public_accuracy"]
    assert 0 < rec["public_accuracy"] < 1 and rec["sha256"] == targets.sha256
    # the student: distilled from that file, dense pruned to exactly half
    out = tmp_path / "out"
    args = ["train", "--data", fer_npz, "--limit", "256", "--epochs", "2", "--soft-targets", str(st), "--alpha", "0.3"]
    r = run_cli(*args, "--prune", "dense=0.5", "--prune-start", "0", "--prune-end", "1", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    npz, h5 = ModelIR.load(out / "emotion_weights.npz"), ModelIR.load(out / "facial_expression_model_weights.h5")
    for ir in (npz, h5):
        kernel = ir.weights["dense"][0]
        assert int((kernel == 0).sum()) == kernel.size // 2  # exactly 50% zeros, as dense arrays
        assert int((ir.weights["dense_1"][0] == 0).sum()) == 0
    assert m["sparsity"]["dense"] == 0.5 and m["sparsity"]["dense_1"] == 0.0
    assert m["recipe"]["prune"] == {"dense": 0.5} and m["recipe"]["alpha"] == 0.3
    assert m["recipe"]["soft_targets_sha256"] == targets.sha256 == m["teacher"]["soft_targets_sha256"]
    assert m["teacher"]["public_accuracy"] == rec["public_accuracy"] and len(m["teacher"]["members"]) == 2
    assert m["best_epoch"] == 2  # the only epoch at the final sparsity
    assert m["cpu_epochs_counted"] == 2 and m["cpu_seconds"] > 0
    # a recipe naming that teacher does not run without it
    r = run_cli("train", "--data", fer_npz, "--recipe", str(out / "manifest.json"), "-o", str(tmp_path / "x"))
    assert r.returncode == 1 and f"soft targets {targets.sha256}: give that file" in r.stderr


def test_distilled_pruned_run_resumes_to_the_same_record(tmp_path: Path, fer: FerData) -> None:
    from exporters.teacher import soft_targets

    targets = soft_targets([default_weights_path()], fer, limit=256)
    save_soft_targets(targets, tmp_path / "st.npz")
    st = tmp_path / "st.npz"
    one_go = _train(fer, tmp_path, "one", st)

    class Stop(Exception):
        pass

    def stop(row: dict) -> None:
        raise Stop  # ended after its first epoch, as a working period ends

    with pytest.raises(Stop):
        _train(fer, tmp_path, "two", st, on_epoch=stop)
    state = json.loads((tmp_path / "two-ck" / "state.json").read_text())
    assert state["epochs_done"] == 1 and not (tmp_path / "two" / "manifest.json").exists()
    resumed = _train(fer, tmp_path, "two", st)
    for key in ("recipe", "teacher", "sparsity", "seed", "data", "best_epoch", "epochs", "cpu_epochs_counted"):
        assert resumed[key] == one_go[key], key
    assert [h["sparsity"] for h in resumed["history"]] == [
        {"dense": 0.0, "conv2d_4": 0.0},
        {"dense": 0.5, "conv2d_4": 0.25},
    ]
    assert [h["sparsity"] for h in one_go["history"]] == [h["sparsity"] for h in resumed["history"]]
    assert resumed["history"][0] == state["history"][0]  # the first epoch's record kept, not redone
    assert resumed["sparsity"]["dense"] == 0.5 and resumed["sparsity"]["conv2d_4"] == 0.25
    with pytest.raises(XEmotionError, match="another recipe"):  # the checkpoint resumes only its own recipe
        from exporters.train import train

        train(fer, tmp_path / "x", recipe=Recipe(epochs=2, alpha=0.9), checkpoint_dir=tmp_path / "two-ck",
              limit=256, soft_targets=st, progress=False)  # fmt: skip


def test_distillation_and_pruning_options_need_their_inputs(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "never-read.npz"), "-o", str(tmp_path / "out")]
    for args, said in (
        (["--alpha", "0.3"], "--temperature and --alpha apply to distillation: give --soft-targets too"),
        (["--prune-end", "5"], "--prune-start and --prune-end apply to pruning: give --prune too"),
    ):
        r = run_cli("train", *data, *args)
        assert r.returncode == 1 and r.stderr.strip() == f"error: {said}", r.stderr
    assert not (tmp_path / "out").exists()


def test_affine_and_erasing_augmentation() -> None:
    from exporters.train import _affine, augment

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(_affine(faces, rng, 0.0, (1.0, 1.0)), faces)  # identity is exact
    bar = np.zeros((1, 48, 48), np.uint8)
    bar[0, 23:25, 16:32] = 255  # a horizontal bar, 16 px long, centred
    zoomed = _affine(bar, rng, 0.0, (2.0, 2.0))  # zoom 2x about the centre: the bar doubles in length
    cols = np.flatnonzero(zoomed[0].max(0) > 128)
    assert 30 <= cols.size <= 34 and abs(cols.mean() - 23.5) < 0.6
    # turned by the angle drawn from the seed: the bright pixels' main axis follows it
    angle = np.random.default_rng(5).uniform(-40, 40, 1)[0]
    turned = _affine(bar, np.random.default_rng(5), 40.0, (1.0, 1.0))[0]
    ys, xs = np.nonzero(turned > 128)
    cov = np.cov(np.stack([xs, ys]).astype(float))
    axis = np.rad2deg(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1]))
    assert abs(angle) > 10 and abs(abs(axis) - abs(angle)) < 3
    plain = Recipe(flip=0.0, max_shift_px=0, jpeg_prob=0.0)
    np.testing.assert_array_equal(augment(faces, np.random.default_rng(2), plain), faces)
    erased = augment(faces, np.random.default_rng(2), Recipe(flip=0.0, max_shift_px=0, jpeg_prob=0.0, erase_prob=1.0))
    changed = (erased != faces).reshape(64, -1).mean(1)
    assert changed.min() > 0.005 and changed.max() < 0.2  # one box per face, 2-20% of the area
    rot = augment(faces, np.random.default_rng(2), Recipe(flip=0.0, max_shift_px=0, jpeg_prob=0.0, max_rotate_deg=15))
    assert (rot != faces).reshape(64, -1).any(1).all()
    # recorded only when used; round-trips; bad values refused
    strong = Recipe(max_rotate_deg=10, scale_range=(0.85, 1.15), erase_prob=0.5)
    d = json.loads(json.dumps(strong.to_json()))
    assert d["scale_range"] == [0.85, 1.15] and Recipe.from_json(d) == strong
    assert "max_rotate_deg" not in Recipe().to_json()
    for bad in ({"max_rotate_deg": 90}, {"scale_range": (1.2, 0.9)}, {"erase_prob": 2}, {"erase_area": (0.0, 0.1)}):
        with pytest.raises(XEmotionError):
            Recipe(**bad)  # type: ignore[arg-type]


def test_hold_out_private_leaves_private_test_unscored(tmp_path: Path, data_dir: Path) -> None:
    fer_npz = str(data_dir / "fer2013" / "fer2013.npz")
    out = tmp_path / "out"
    r = run_cli("train", "--data", fer_npz, "--limit", "256", "--epochs", "1", "--hold-out-private", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "PrivateTest not scored" in r.stdout
    acc = json.loads((out / "manifest.json").read_text())["accuracy"]
    assert acc["PrivateTest"] == {"rows": 3589, "scored": False}
    assert 0 < acc["PublicTest"]["accuracy"] < 1 and acc["PublicTest"]["rows"] == 256


def test_init_fine_tunes_from_given_weights_and_is_recorded(tmp_path: Path, data_dir: Path) -> None:
    fer_npz = str(data_dir / "fer2013" / "fer2013.npz")
    shipped = default_weights_path()
    start = ModelIR.load(shipped)
    recipe = tmp_path / "ft.json"
    recipe.write_text(json.dumps({"epochs": 1, "learning_rate": 1e-5, "warmup_epochs": 0}))
    out = tmp_path / "out"
    args = ["train", "--data", fer_npz, "--limit", "512", "--recipe", str(recipe), "--hold-out-private"]
    r = run_cli(*args, "--init", str(shipped), "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["recipe"]["init_weights_sha256"] == start.weights_sha256 == m["init"]["weights_sha256"]
    assert m["init"]["file"] == shipped.name
    tuned = ModelIR.load(out / "emotion_weights.npz")
    # one epoch at a tiny rate: close to the start (a random init is not), yet trained
    drift = max(float(np.abs(tuned.weights[n][0] - start.weights[n][0]).max()) for n in start.weights)
    assert 0 < drift < 0.01
    shipped_public = json.loads(SHIPPED_MANIFEST.read_text())["accuracy"]["PublicTest"]["accuracy"]
    assert m["accuracy"]["PublicTest"]["accuracy"] > shipped_public - 0.05  # 512 rows: the shipped model's level
    # the recorded recipe needs its start weights, and only those
    r = run_cli("train", "--data", fer_npz, "--recipe", str(out / "manifest.json"), "-o", str(tmp_path / "x"))
    assert r.returncode == 1 and f"starts from weights {start.weights_sha256}: give that file" in r.stderr
    other = tmp_path / "other.npz"
    confident_random_ir(3).save_npz(other)
    r = run_cli("train", "--data", fer_npz, "--recipe", str(out / "manifest.json"), "--init", str(other),
                "-o", str(tmp_path / "y"))  # fmt: skip
    assert r.returncode == 1 and "the file given is" in r.stderr
    assert "init_weights_sha256" not in Recipe().to_json()  # the default recipe reads as before
