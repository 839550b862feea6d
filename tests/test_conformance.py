"""Conformance: parametrized over the same matrix `xemotion verify` runs; the golden set and the int8 rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion.check import golden as G
from xruntime_emotion.check.verify import MATRIX, Pair, verify
from xruntime_emotion.errors import ConformanceError
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.runtime.backends import RUNTIMES

REQUIRED = {  # the pairs that must pass on a development machine and in CI
    ("weights", "keras"), ("onnx", "onnxruntime"), ("onnx-ir", "onnxruntime"), ("onnx-int8", "onnxruntime"),
    ("tflite-fp32", "litert"), ("tflite-int8", "litert"),
}  # fmt: skip


@pytest.fixture(scope="session")
def report(full_artifacts: Path) -> dict[str, Any]:
    return verify(full_artifacts)


def test_golden_set_is_for_the_shipped_weights(default_ir: ModelIR) -> None:
    gs = G.load()
    assert gs.manifest["weights_sha256"] == default_ir.weights_sha256
    assert gs.manifest["ir_hash"] == default_ir.ir_hash
    kinds = [c.kind for c in gs.cases]
    assert kinds.count("fer2013") >= 500 and kinds.count("nxp") == 1 and kinds.count("synthetic") >= 50
    for reason in (t["reason"] for t in gs.manifest["tolerances"].values()):
        assert reason
    assert gs.manifest["tolerances"]["int8_vs_fp32"]["sources"]["min_psnr_db"]


def test_golden_set_carries_its_real_faces() -> None:
    """Every case's pixels come with the golden set itself (checked by sha256): verify needs no data set."""
    gs = G.load()
    cases, imgs = gs.images()
    assert len(cases) == len(gs.cases) == len(imgs)
    assert len(gs.faces) == int(G.real_faces(cases).sum()) >= 500
    broken = dict(gs.faces)
    name = next(iter(broken))
    broken[name] = broken[name].copy()
    broken[name][0, 0] ^= 1
    with pytest.raises(ConformanceError, match=f"golden case {name}: pixels do not match"):
        G.GoldenSet(gs.manifest, gs.expected, broken).images()
    with pytest.raises(ConformanceError, match="missing from the golden set"):
        G.GoldenSet(gs.manifest, gs.expected, {}).images()


def test_golden_faces_are_the_fer2013_rows(fer) -> None:
    gs = G.load()
    for c in gs.cases:
        if c.kind != "synthetic":
            np.testing.assert_array_equal(gs.faces[c.name], fer.images[c.row])


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


def _copy_golden(tmp_path: Path) -> Path:
    d = tmp_path / "golden"
    shutil.copytree(G.golden_dir(), d)
    return d


def _perturb(d: Path, key: str, case: str, delta: float) -> None:
    from xruntime_emotion.atomic import write_npz

    gs = G.load(d)
    i = [c.name for c in gs.cases].index(case)
    exp = dict(gs.expected)
    arr = exp[key].copy()
    j = int(arr[i].argmax())
    arr[i, j] += delta
    exp[key] = arr
    write_npz(d / "expected.npz", exp)


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


def test_onnx_mirror_matches_golden(tmp_path: Path) -> None:
    from onnx import TensorProto, numpy_helper

    from xruntime_emotion.model.data import to_input

    gs = G.load()
    synth = [c for c in gs.cases if c.kind == "synthetic"]
    d = G.golden_dir() / "onnx" / "test_data_set_0"
    x = numpy_helper.to_array(TensorProto.FromString((d / "input_0.pb").read_bytes()))
    y = numpy_helper.to_array(TensorProto.FromString((d / "output_0.pb").read_bytes()))
    imgs = dict(G.synthetic_cases(G.SYNTHETIC_SEED))
    np.testing.assert_array_equal(x, to_input(np.stack([imgs[c.name] for c in synth])))
    np.testing.assert_allclose(y, gs.rows("fp32", synth), atol=1e-7)
    # and the mirror `golden mirror` writes for a board runs on onnxruntime within tolerance
    r = run_cli("golden", "mirror", "--output", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    assert np.abs(got - y).max() <= 1e-5


def test_regenerate_is_deterministic_and_guards_weights(
    tmp_path: Path, full_artifacts: Path, default_ir: ModelIR, fer, random_ir: ModelIR
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    G.regenerate(default_ir, full_artifacts, fer, directory=a)
    G.regenerate(default_ir, full_artifacts, fer, directory=b)
    for f in ("manifest.json", "expected.npz", "onnx/test_data_set_0/input_0.pb", "onnx/test_data_set_0/output_0.pb"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    # the committed golden set is what this code generates from the shipped weights and artifacts
    committed = G.load()
    fresh = G.load(a)
    assert [c.sha256 for c in fresh.cases] == [c.sha256 for c in committed.cases]
    assert np.abs(fresh.expected["fp32"] - committed.expected["fp32"]).max() <= 1e-9
    with pytest.raises(Exception, match="--force"):
        G.regenerate(random_ir, full_artifacts, fer, directory=a)


def test_golden_record_adds_a_kernel_set_for_the_same_file_only(tmp_path: Path, full_artifacts: Path) -> None:
    """A board records its own kernel set (its NPU delegate) once; only for the artifact the set was made with."""
    from xruntime_emotion.model.data import to_input
    from xruntime_emotion.runtime.backends import open_backend, predict_batched

    d = _copy_golden(tmp_path)
    r = run_cli("golden", "record", "--runtime", "tensorflow", "--artifacts", str(full_artifacts), "--golden", str(d))
    assert r.returncode == 0, r.stderr
    gs = G.load(d)
    recorded = G.recordings(gs, "tflite-int8")
    assert set(recorded) == {"litert", "litert-builtin", "tensorflow"}
    cases, imgs = gs.images()
    own = predict_batched(open_backend(full_artifacts / "emotion_uint8_float32.tflite", "tensorflow"), to_input(imgs))
    np.testing.assert_array_equal(recorded["tensorflow"], own)
    entry = gs.manifest["int8"]["tflite-int8"]["recorded"]["tensorflow"]
    assert entry["argmax_agreement_with_fp32_on_real_faces"] > 0.9 and entry["delegate"] is None
    other = tmp_path / "other"
    shutil.copytree(full_artifacts, other)
    f = other / "emotion_uint8_float32.tflite"
    f.write_bytes(f.read_bytes() + b"\0")
    before = (d / "expected.npz").read_bytes(), (d / "manifest.json").read_bytes()
    r = run_cli("golden", "record", "--runtime", "litert", "--artifacts", str(other), "--golden", str(d))
    assert r.returncode != 0 and "is not the tflite-int8 file" in r.stderr and "Traceback" not in r.stderr
    assert ((d / "expected.npz").read_bytes(), (d / "manifest.json").read_bytes()) == before


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
    assert "1 pairs passed, 0 failed, 0 skipped" in r.stdout and "575 case runs" in r.stdout


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


# ----------------------------------------------------------------------------------------- the int8 rule
def _int8_outputs() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """fp32 and recorded tflite-int8 (XNNPACK) outputs of the golden real faces."""
    gs = G.load()
    real = G.real_faces(gs.cases)
    names = [c.name for c, r in zip(gs.cases, real) if r]
    return gs.expected["fp32"][real], gs.expected["int8:tflite-int8@litert"][real].astype(np.float64), names


def test_int8_rule_passes_the_recorded_outputs() -> None:
    from xruntime_emotion.check.fidelity import Int8Rule, judge_int8

    ref, got, names = _int8_outputs()
    checks, failures = judge_int8(ref, got, Int8Rule(), names)
    assert failures == [] and checks["faces"] >= 500
    assert 35 <= checks["psnr_db"] <= 45 and checks["decisive_flips"] == 0 and checks["confident_agreement"] >= 0.99
    assert checks["argmax_agreement"] < 0.99  # overall agreement is reported, not gated: near-ties flip


def _flip(p: np.ndarray, i: int) -> None:
    """Move just enough probability from row i's top-1 to its top-2 to swap them (|dp| = margin/2 + 0.005)."""
    order = np.argsort(p[i])
    shift = (p[i, order[-1]] - p[i, order[-2]]) / 2 + 0.005
    p[i, order[-1]] -= shift
    p[i, order[-2]] += shift


@pytest.mark.parametrize("check", ["psnr", "decisive", "confident", "max_dp", "nan"])
def test_each_int8_check_fails_on_perturbed_outputs(check: str) -> None:
    """Starting from outputs that pass, one perturbation per check makes exactly that check fail."""
    from xruntime_emotion.check.fidelity import Int8Rule, judge_int8, margins

    ref, got, names = _int8_outputs()
    rule = Int8Rule()
    m = margins(ref)
    bad = got.copy()
    if check == "psnr":  # faces fp32 is sure of lose 0.2 of their top-1: no label changes, |dp| <= 0.2
        sure, top = m >= 0.7, ref.argmax(1)
        bad = ref.copy()
        bad[sure] += 0.2 / 6
        bad[sure, top[sure]] -= 0.2 + 0.2 / 6
        expect = "PSNR"
    elif check == "decisive":  # one face fp32 is sure of changes its label, |dp| < 0.25
        _flip(bad, int(np.flatnonzero((m >= rule.decisive_margin) & (m < 0.4))[0]))
        expect = "label flip(s) where fp32's margin is >= 0.3"
    elif check == "confident":  # 2% of the faces with margin >= 0.05 flip, none of them decisive
        mid = np.flatnonzero((m >= rule.confident_margin) & (m < rule.decisive_margin))
        for i in mid[: int(0.02 * (m >= rule.confident_margin).sum()) + 1]:
            _flip(bad, int(i))
        expect = "argmax agreement"
    elif check == "max_dp":  # one probability moves by 0.3 without changing the label
        i = int(np.flatnonzero(m >= 0.7)[0])
        j = int(np.argsort(bad[i])[0])
        bad[i, j] += 0.3
        expect = "max |dp|"
    else:
        bad[3, 2] = np.nan
        expect = "non-finite"
    checks, failures = judge_int8(ref, bad, rule, names)
    assert len(failures) == 1 and expect in failures[0], (failures, checks)
