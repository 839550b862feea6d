"""exporters.train: `xemotion train` writes both weight layouts and resumes from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from helpers import from_scratch_recipe, run_cli

from xruntime_emotion import ModelIR
from xruntime_emotion.weights import default_weights_path


def test_train_smoke_writes_both_layouts_and_resumes(tmp_path: Path, data_dir: Path) -> None:
    out, ck = tmp_path / "out", tmp_path / "ck"
    args = ["train", "--data", str(data_dir / "fer2013" / "fer2013.npz"), "--limit", "512", "--seed", "3"]
    r = run_cli(*args, "--epochs", "1", "--output", str(out), "--checkpoint-dir", str(ck))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    for key in ("data", "seed", "epochs", "recipe", "versions", "accuracy", "train_seconds", "history", "license"):
        assert key in m
    assert m["seed"] == 3 and m["data"]["split_sizes"] == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert len(m["history"]) == 1 and m["accuracy"]["PrivateTest"]["rows"] == 512
    # the default recipe is the one that trained the shipped lineage from scratch (no teacher, no pruning,
    # no init): only the epoch count differs here
    shipped = json.loads((default_weights_path().parent / "manifest.json").read_text())
    assert {**m["recipe"], "epochs": 60} == from_scratch_recipe(shipped)
    assert not {"teacher", "distillation", "pruning"} & set(m) and set(m["sparsity"].values()) == {0.0}
    assert m["cpu_epochs_counted"] == 1 and m["cpu_seconds"] >= m["history"][0]["cpu_seconds"] > 0
    npz, h5 = ModelIR.load(out / "emotion_weights.npz"), ModelIR.load(out / "facial_expression_model_weights.h5")
    assert npz.weights_sha256 == h5.weights_sha256 == m["weights"]["weights_sha256"]
    x = np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_array_equal(npz.forward(x), h5.forward(x))
    from exporters.keras_builder import build_model

    keras_h5 = build_model()
    keras_h5.load_weights(str(out / "facial_expression_model_weights.h5"))  # drops into DeepFace's loader
    np.testing.assert_array_equal(np.asarray(keras_h5(x)), np.asarray(build_model(npz)(x)))
    # resume: a second epoch continues from the checkpoint instead of starting again
    r = run_cli(*args, "--epochs", "2", "--output", str(out), "--checkpoint-dir", str(ck))
    assert r.returncode == 0, r.stderr[-2000:]
    m2 = json.loads((out / "manifest.json").read_text())
    assert [h["epoch"] for h in m2["history"]] == [1, 2]
    assert m2["history"][0] == m["history"][0]
