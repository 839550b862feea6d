"""xruntime_emotion.check.fidelity: the int8 rule, on the golden outputs and on all of PrivateTest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xruntime_emotion.check import golden as G
from xruntime_emotion.model.data import Split, to_input
from xruntime_emotion.runtime.backends import open_backend, predict_batched


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


INT8 = {"emotion_uint8_float32.tflite": "emotion_float32.tflite", "emotion_int8.onnx": "emotion_float32.onnx"}


@pytest.mark.parametrize("name", INT8)
def test_int8_meets_the_rule_on_all_of_private_test(artifacts: Path, fer, name: str) -> None:
    """The int8 rule (check.fidelity) holds on all 3,589 PrivateTest faces, not only the golden ones."""
    from xruntime_emotion.check.fidelity import ACCURACY_RULE, Int8Rule, judge_int8

    x, y = fer.split(Split.PRIVATE_TEST)
    assert len(x) == 3589
    fp32 = predict_batched(open_backend(artifacts / INT8[name]), to_input(x)).astype(np.float64)
    q = predict_batched(open_backend(artifacts / name), to_input(x)).astype(np.float64)
    ratio = (q.argmax(1) == y).mean() / (fp32.argmax(1) == y).mean()
    assert ratio >= ACCURACY_RULE["min_ratio_of_fp32_top1"], ratio
    checks, failures = judge_int8(fp32, q, Int8Rule())
    assert failures == [] and checks["decisive_faces"] > 2000, checks
