"""xruntime_emotion.check.verify: the matrix `xemotion verify` runs; it refuses empty or incomplete folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import _copy_golden, run_cli

from xruntime_emotion import ModelIR
from xruntime_emotion.check import golden as G
from xruntime_emotion.check.verify import MATRIX, Pair, verify
from xruntime_emotion.runtime.backends import RUNTIMES

REQUIRED = {  # the pairs that must pass on a development machine and in CI
    ("weights", "keras"), ("onnx", "onnxruntime"), ("onnx-ir", "onnxruntime"), ("onnx-int8", "onnxruntime"),
    ("tflite-fp32", "litert"), ("tflite-int8", "litert"),
}  # fmt: skip


@pytest.fixture(scope="session")
def report(full_artifacts: Path) -> dict[str, Any]:
    return verify(full_artifacts)


def _row(report: dict[str, Any], pair: Pair) -> dict[str, Any]:
    return next(r for r in report["results"] if r["pair"] == pair.id)


@pytest.mark.parametrize("pair", MATRIX, ids=lambda p: p.id)
def test_pair(pair: Pair, report: dict[str, Any]) -> None:
    row = _row(report, pair)
    if not RUNTIMES[pair.runtime].available():
        assert (pair.format, pair.runtime) not in REQUIRED
        assert row["status"] == "skipped" and "install" in row["reason"]
        return
    assert row["status"] == "passed", row["reason"]
    if (pair.format, pair.runtime) in REQUIRED:
        assert row["checks"]["cases"] >= 570


@pytest.mark.parametrize("pair", [p for p in MATRIX if p.precision.value == "int8"], ids=lambda p: p.id)
def test_int8_pair_matches_its_recorded_outputs(pair: Pair, report: dict[str, Any]) -> None:
    """The drift check (b) and the happy face hold even where the fp32 tolerance (a) does not."""
    row = _row(report, pair)
    if not RUNTIMES[pair.runtime].available():
        assert row["status"] == "skipped"
        return
    c = row["checks"]
    assert c["recording"] == {"tflite_runtime": "litert-builtin"}.get(pair.runtime, pair.runtime)
    assert c["max_steps_vs_recorded"] <= 2 and c["happy_label"] == "happy"
    assert c["real_faces"] >= 500 and c["real_psnr_db"] >= 30 and c["real_decisive_flips"] == 0
    assert "steps" not in row["reason"]


def test_verify_reports_what_it_checked(report: dict[str, Any]) -> None:
    s = report["summary"]
    ran = [r for r in report["results"] if r["status"] != "skipped"]
    assert s["passed"] == len(ran) >= 7 and s["failed"] == 0 and report["passed"]
    assert s["checked"] == sum(r["checks"]["cases"] for r in ran) and s["cases"] >= 570
    vela = next(r for r in report["results"] if r["format"] == "vela")
    assert vela["status"] == "skipped" and "NPU" in vela["reason"]


def test_a_narrowed_verify_lists_only_what_it_was_asked_for(artifacts: Path) -> None:
    """`--format onnx` and `--target imx8mp` did not ask for the Vela file: it is not listed as skipped."""
    for kwargs in ({"formats": ["onnx"]}, {"target": "imx8mp"}):
        rep = verify(artifacts, **kwargs)
        assert rep["passed"] and not [r for r in rep["results"] if r["format"] == "vela"], (kwargs, rep["results"])
    rep = verify(artifacts, formats=["vela"])
    assert [r["status"] for r in rep["results"] if r["format"] == "vela"] == ["skipped"]


def test_cross_producer_agreement(report: dict[str, Any]) -> None:
    row = next(r for r in report["results"] if r["pair"].startswith("onnx (tf2onnx) vs"))
    assert row["status"] == "passed" and row["checks"]["max_abs_diff"] <= 1e-6


def test_happy_in_every_format(report: dict[str, Any], full_artifacts: Path, happy_jpg: Path) -> None:
    from xruntime_emotion import EmotionClassifier

    for name in ("emotion_float32.onnx", "emotion_int8.onnx", "emotion_float32.tflite", "emotion_uint8_float32.tflite"):
        p = EmotionClassifier.from_file(full_artifacts / name).classify(happy_jpg)
        assert p.label == "happy" and p.probability >= 0.9, (name, p)
    for r in report["results"]:
        if "happy_label" in r["checks"]:
            assert r["checks"]["happy_label"] == "happy"


def _perturb(d: Path, key: str, case: str, delta: float) -> None:
    """Move one expected output, and re-seal the set (a deliberate change, unlike corruption)."""
    gs = G.load(d)
    i = [c.name for c in gs.cases].index(case)
    exp = dict(gs.expected)
    arr = exp[key].copy()
    j = int(arr[i].argmax())
    arr[i, j] += delta
    exp[key] = arr
    G.save(d, gs.manifest, exp, gs.faces)


@pytest.mark.parametrize(
    ("key", "case", "delta"),
    [("fp32", "gradient_h", 1e-3), ("int8:tflite-int8@litert", "fer2013_32298", None)],
    ids=["fp32+1e-3", "int8+3steps"],
)
def test_perturbed_golden_fails_naming_the_case(
    tmp_path: Path, full_artifacts: Path, key: str, case: str, delta: float | None
) -> None:
    d = _copy_golden(tmp_path)
    if delta is None:
        delta = -3 * G.load(d).manifest["int8"]["tflite-int8"]["step"]
    _perturb(d, key, case, delta)
    r = run_cli("verify", "--artifacts", str(full_artifacts), "--golden", str(d), "--json", str(tmp_path / "v.json"))
    assert r.returncode != 0
    rep = json.loads((tmp_path / "v.json").read_text())
    failed = {x["pair"]: x for x in rep["results"] if x["status"] == "failed"}
    perturbed = ["tflite-int8 × litert"] if key.startswith("int8") else [
        p for p in failed if not p.startswith(("onnx-int8", "tflite-int8"))
    ]  # fmt: skip
    assert perturbed and all(case in failed[p]["reason"] for p in perturbed), failed
    if not key.startswith("int8"):
        assert {"weights × keras", "onnx × onnxruntime", "tflite-fp32 × litert"} <= set(perturbed)
    assert case in r.stdout


# ------------------------------------------------------------------------------- verify cannot pass on nothing


def _one_line_error(r: Any) -> str:
    assert r.returncode != 0, r.stdout[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_verify_refuses_a_folder_without_artifacts(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "holds no artifact xemotion knows" in _one_line_error(
        run_cli("verify", "--artifacts", str(tmp_path / "empty"))
    )
    assert "no such folder" in _one_line_error(run_cli("verify", "--artifacts", str(tmp_path / "typo")))


def test_verify_refuses_a_missing_format(tmp_path: Path, artifacts: Path) -> None:
    d = tmp_path / "a"
    d.mkdir()
    shutil.copy(artifacts / "emotion_float32.onnx", d)
    line = _one_line_error(run_cli("verify", "--artifacts", str(d), "--format", "tflite-int8"))
    assert "lacks emotion_uint8_float32.tflite" in line and "--format tflite-int8" in line
    line = _one_line_error(run_cli("verify", "--artifacts", str(d), "--target", "imx93"))
    assert "emotion_uint8_float32_vela.tflite" in line
    r = run_cli("verify", "--artifacts", str(d), "--format", "onnx")
    assert r.returncode == 0, r.stderr
    assert "1 pairs passed, 0 failed, 0 skipped" in r.stderr and "575 case runs" in r.stderr


def test_verify_fails_an_int8_artifact_of_other_weights(tmp_path: Path, artifacts: Path, random_ir: ModelIR) -> None:
    """An int8 file from other weights, dropped into a folder of the golden weights, fails."""
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export
    from xruntime_emotion.model.calibration import shipped_sample

    other = tmp_path / "other"
    export(ExportContext(random_ir, ExportOptions(), shipped_sample()), ["onnx-int8"], other)
    d = tmp_path / "mixed"
    shutil.copytree(artifacts, d)
    shutil.copy(other / "emotion_int8.onnx", d)
    line = _one_line_error(run_cli("verify", "--artifacts", str(d), "--format", "onnx-int8"))
    assert "onnx-int8 × onnxruntime" in line
    (d / "export_manifest.json").unlink()  # without the manifest's sha256, the int8 checks catch it
    r = run_cli("verify", "--artifacts", str(d), "--format", "onnx-int8", "--json", str(tmp_path / "v.json"))
    assert "onnx-int8 × onnxruntime" in _one_line_error(r)
    row = next(x for x in json.loads((tmp_path / "v.json").read_text())["results"] if x["format"] == "onnx-int8")
    assert "output steps from the closest recorded" in row["reason"] and "label flip" in row["reason"]
