"""Issue: own weights. Training smoke run, shipped weights and manifest, evaluate, leakage guard, data layouts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion.errors import DataError
from xruntime_emotion.model.data import FerData, Split, image_sha256, load_fer2013
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.weights import default_manifest_path, default_weights_path

README = Path(__file__).resolve().parents[1] / "README.md"


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


def test_shipped_manifest() -> None:
    m = json.loads(default_manifest_path().read_text())
    ir = ModelIR.default()
    assert m["weights"]["weights_sha256"] == ir.weights_sha256
    assert m["shipped"]["weights_file_sha256"] == ir.provenance.sha256
    assert m["data"]["split_sizes"]["Training"] == 28709 and "research" in m["license"]
    assert m["accuracy"]["PrivateTest"]["accuracy"] >= 0.58
    assert 1 <= m["best_epoch"] <= m["epochs"] == len(m["history"])


def test_evaluate_reproduces_manifest_exactly(tmp_path: Path, data_dir: Path) -> None:
    from xruntime_emotion.weights import default_onnx_path

    m = json.loads(default_manifest_path().read_text())
    out = tmp_path / "e.json"
    r = run_cli("evaluate", "--model", str(default_weights_path()), "--model", str(default_onnx_path()),
                "--runtime", "keras", "--json", str(out))  # fmt: skip
    assert r.returncode != 0  # keras cannot run an .onnx: the runtime must fit every artifact
    r = run_cli(
        "evaluate", "--model", str(default_weights_path()), "--json", str(out), "--plot", str(tmp_path / "c.png")
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())["artifacts"]["emotion_weights.npz"]
    assert res["runtime"] == "keras"
    assert res["correct"] == m["accuracy"]["PrivateTest"]["correct"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    r = run_cli("evaluate", "--model", str(default_onnx_path()), "--json", str(out))
    res = json.loads(out.read_text())["artifacts"]["emotion_float32.onnx"]
    assert res["correct"] == m["shipped"]["onnx_accuracy"]["PrivateTest"]["correct"]
    assert sum(res["confusion_matrix"]["counts"][3]) == 879  # happy rows in PrivateTest


def test_evaluate_judges_int8_by_its_own_fp32(artifacts: Path, tmp_path: Path) -> None:
    """Each int8 artifact against the fp32 artifact of its weights and family (named), by the 99% rule."""
    names = ["emotion_float32.onnx", "emotion_int8.onnx", "emotion_float32.tflite", "emotion_uint8_float32.tflite"]
    out = tmp_path / "e.json"
    r = run_cli("evaluate", *sum((["--model", str(artifacts / n)] for n in names), []), "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    acc, cmp = rep["accuracy"], rep["comparison"]
    assert acc["emotion_float32.onnx"] >= 0.58
    for n in names[1:]:
        assert abs(acc[n] - acc["emotion_float32.onnx"]) <= 0.005, (n, acc)
    for q, base in (("emotion_int8.onnx", "emotion_float32.onnx"), ("emotion_uint8_float32.tflite", names[2])):
        rule = cmp[q]["int8_rule"]
        assert rule["status"] == "passed" and rule["baseline"] == base == cmp[q]["baseline"], rule
        assert rule["ratio_of_fp32_top1"] == pytest.approx(acc[q] / acc[base]) and rule["ratio_of_fp32_top1"] >= 0.99
    assert "int8_rule" not in cmp["emotion_float32.tflite"]
    assert r.stdout.count("✓ passed") == 2
    assert rep["artifacts"]["emotion_int8.onnx"]["leakage"]["overlap_with_split"] == 0
    assert rep["artifacts"]["emotion_int8.onnx"]["leakage"]["checked_for_near_duplicates"] == 100
    # int8 alone has no baseline: reported as not judged, never passed
    r = run_cli("evaluate", "--model", str(artifacts / "emotion_int8.onnx"), "--json", str(out))
    assert (
        r.returncode == 0
        and json.loads(out.read_text())["comparison"]["emotion_int8.onnx"]["int8_rule"]["status"] == "not judged"
    )


def test_evaluate_fails_an_int8_below_the_rule(artifacts: Path, tmp_path: Path, random_ir) -> None:
    """An int8 file of other weights put in place of the golden weights' one: refused by its manifest's sha256;
    with the manifest edited to match, judged by the 99% rule and failed."""
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export
    from xruntime_emotion.model.calibration import shipped_sample
    from xruntime_emotion.util import sha256_file

    d = tmp_path / "a"
    shutil.copytree(artifacts, d)
    export(ExportContext(random_ir, ExportOptions(), shipped_sample()), ["onnx-int8"], tmp_path / "other")
    shutil.copy(tmp_path / "other" / "emotion_int8.onnx", d)
    args = ("evaluate", "-m", str(d / "emotion_float32.onnx"), "-m", str(d / "emotion_int8.onnx"))
    r = run_cli(*args)
    assert r.returncode != 0 and "emotion_int8.onnx: sha256 is" in r.stderr and len(r.stderr.splitlines()) == 1
    m = json.loads((d / "export_manifest.json").read_text())
    m["artifacts"]["onnx-int8"]["sha256"] = sha256_file(d / "emotion_int8.onnx")
    (d / "export_manifest.json").write_text(json.dumps(m))
    r = run_cli(*args)
    assert r.returncode != 0 and "✗ failed" in r.stdout
    assert r.stderr.strip() == "error: int8 below 99% of its fp32 top-1: emotion_int8.onnx"


def test_leakage_guard(tmp_path: Path, artifacts: Path, fer: FerData) -> None:
    d = tmp_path / "leaky"
    d.mkdir()
    shutil.copy(artifacts / "emotion_uint8_float32.tflite", d)
    m = json.loads((artifacts / "export_manifest.json").read_text())
    private = fer.split(Split.PRIVATE_TEST)[0]
    m["artifacts"]["tflite-int8"]["calibration"]["image_sha256"] = [image_sha256(im) for im in private[:100]]
    (d / "export_manifest.json").write_text(json.dumps(m))
    model = str(d / "emotion_uint8_float32.tflite")
    r = run_cli("evaluate", "--model", model)
    assert r.returncode != 0 and "PrivateTest" in r.stderr and "calibration" in r.stderr
    r = run_cli("evaluate", "--model", model, "--allow-overlap", "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0 and "LEAK" in r.stdout
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["artifacts"]["emotion_uint8_float32.tflite"]["leakage"]["overlap_with_split"] == 100
    # on Training: these PrivateTest faces share no pixels with it, but some repeat Training faces
    from xruntime_emotion.model.calibration import near_duplicates

    repeats = int(near_duplicates(private[:100], fer.split(Split.TRAINING)[0]).sum())
    assert 0 < repeats < 100
    r = run_cli(
        "evaluate", "--model", model, "--split", "Training", "--allow-overlap", "--json", str(tmp_path / "t.json")
    )
    assert r.returncode == 0, r.stderr
    leak = json.loads((tmp_path / "t.json").read_text())["artifacts"]["emotion_uint8_float32.tflite"]["leakage"]
    assert leak["exact_overlap"] == 0 and leak["overlap_with_split"] == repeats


def test_leakage_guard_sees_near_duplicates(tmp_path: Path, artifacts: Path, fer: FerData) -> None:
    """Training rows 347 and 18873 repeat PrivateTest 33522 and PublicTest 30933 (JPEG vs lossless): their
    sha256 differ, the near-duplicate rule catches them."""
    d = tmp_path / "leaky"
    d.mkdir()
    shutil.copy(artifacts / "emotion_int8.onnx", d)
    m = json.loads((artifacts / "export_manifest.json").read_text())
    m["artifacts"]["onnx-int8"]["calibration"]["image_sha256"] = [image_sha256(fer.images[r]) for r in (347, 18873)]
    (d / "export_manifest.json").write_text(json.dumps(m))
    for split in ("PrivateTest", "PublicTest"):
        r = run_cli("evaluate", "--model", str(d / "emotion_int8.onnx"), "--split", split)
        assert r.returncode != 0 and f"1 of its 2 calibration images are in {split} or near-duplicates" in r.stderr


def test_readme_table_is_what_evaluate_prints(tmp_path: Path) -> None:
    """The README's ONNX PrivateTest figure is regenerated by the command it names."""
    text = README.read_text()
    m = re.search(r"\| `emotion_float32\.onnx` \| onnxruntime \| (\d+) / 3589 \| ([\d.]+)%", text)
    assert m, "README lacks the PrivateTest table row for emotion_float32.onnx"
    assert "xemotion evaluate" in text
    from xruntime_emotion.weights import default_onnx_path

    r = run_cli("evaluate", "--model", str(default_onnx_path()), "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())["artifacts"]["emotion_float32.onnx"]
    assert res["correct"] == int(m.group(1)) and f"{100 * res['accuracy']:.2f}" == m.group(2)


def _write_csv(path: Path, fer: FerData, rows: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for i in rows:
            f.write(f"{fer.labels[i]},{' '.join(map(str, fer.images[i].ravel()))},{fer.usage[i]}\n")


def _rows(fer: FerData) -> np.ndarray:
    return np.concatenate([fer.indices(s)[:5] for s in Split])


def test_csv_layout(tmp_path: Path, fer: FerData) -> None:
    rows = _rows(fer)
    _write_csv(tmp_path / "fer2013.csv", fer, rows)
    d = load_fer2013(tmp_path / "fer2013.csv")
    np.testing.assert_array_equal(d.images, fer.images[rows])
    np.testing.assert_array_equal(d.labels, fer.labels[rows])
    assert d.sizes() == {"Training": 5, "PublicTest": 5, "PrivateTest": 5}


def test_kaggle_folder_layout(tmp_path: Path, fer: FerData) -> None:
    from PIL import Image

    from xruntime_emotion.model.ir import LABELS

    rows = _rows(fer)
    for i in rows:
        sub = "train" if fer.usage[i] == "Training" else "test"
        prefix = "Training" if sub == "train" else fer.usage[i]
        p = tmp_path / sub / LABELS[fer.labels[i]] / f"{prefix}_{i:08d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fer.images[i]).save(p)
    d = load_fer2013(tmp_path)
    assert d.sizes() == {"Training": 5, "PublicTest": 5, "PrivateTest": 5}
    assert {image_sha256(im) for im in d.images} == {image_sha256(fer.images[i]) for i in rows}


@pytest.mark.parametrize("bad", ["short_row", "bad_label", "no_columns", "empty_split", "bad_folder_label"])
def test_bad_data_is_a_clear_error(tmp_path: Path, fer: FerData, bad: str) -> None:
    p = tmp_path / "fer2013.csv"
    if bad == "short_row":
        p.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    elif bad == "bad_label":
        p.write_text("emotion,pixels,Usage\n9," + " ".join(["0"] * 2304) + ",Training\n")
    elif bad == "no_columns":
        p.write_text("a,b\n1,2\n")
    elif bad == "empty_split":
        p.write_text("emotion,pixels,Usage\n0," + " ".join(["0"] * 2304) + ",Training\n")
        with pytest.raises(DataError, match="PrivateTest is empty"):
            load_fer2013(p).split(Split.PRIVATE_TEST)
        return
    else:
        (tmp_path / "train" / "joy").mkdir(parents=True)
        (tmp_path / "test").mkdir()
        p = tmp_path
    with pytest.raises(DataError):
        load_fer2013(p)
    r = run_cli("evaluate", "--model", str(default_weights_path()), "--data", str(p))
    assert r.returncode != 0 and "error:" in r.stderr and "Traceback" not in r.stderr
