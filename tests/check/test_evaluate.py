"""xruntime_emotion.check.evaluate: `xemotion evaluate`, its int8 rule, the leakage guard, the README table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import run_cli

from xruntime_emotion.model.data import FerData, Split, image_sha256
from xruntime_emotion.weights import default_manifest_path, default_weights_path

README = Path(__file__).resolve().parents[2] / "README.md"


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


@pytest.mark.fer2013  # evaluate reads PrivateTest from $XEMOTION_DATA
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


@pytest.mark.fer2013  # evaluate reads PrivateTest from $XEMOTION_DATA
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


@pytest.mark.fer2013  # evaluate reads PrivateTest from $XEMOTION_DATA
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
