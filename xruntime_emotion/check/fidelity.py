"""How an int8 artifact is judged against fp32: the rules as data, with their sources.

1. Accuracy (`evaluate`, FER2013 PrivateTest): int8 top-1 ≥ 99% of the fp32 top-1 of the same weights.
2. Fidelity (`verify` on the golden real faces, and `export` on held-out Training faces): PSNR of the
   int8 probabilities against fp32 ≥ 30 dB pooled over faces × outputs; no argmax flip where fp32 is
   decisive (top-2 margin ≥ 0.30); ≥ 99% argmax agreement where fp32's margin is ≥ 0.05; max |Δp| ≤ 0.25.
Overall argmax agreement is reported, never gated: two correct int8 kernel sets disagree with each
other on ~2% of real faces, almost all near-ties. Every comparison fails on NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

ACCURACY_RULE: dict[str, Any] = {
    "min_ratio_of_fp32_top1": 0.99,
    "split": "PrivateTest",
    "source": "MLPerf Inference: quantized submissions must reach 99% of the fp32 reference accuracy",
}


@dataclass(frozen=True)
class Int8Rule:
    min_psnr_db: float = 30.0
    decisive_margin: float = 0.30
    confident_margin: float = 0.05
    min_confident_agreement: float = 0.99
    max_abs_dp: float = 0.25

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "psnr": "20*log10(max |p_fp32| / RMSE(p_int8 - p_fp32)), pooled over all faces x 7 outputs",
            "margin": "fp32 top-1 minus top-2 probability of a face",
            "sources": {
                "min_psnr_db": "Qualcomm AI Hub: PSNR >= 30 dB against the float model is its 'good' level",
                "decisive_margin": "a face fp32 is sure of must not change its label",
                "min_confident_agreement": "near-ties (margin < 0.05) may flip: two correct int8 kernel sets "
                "(XNNPACK, TFLite builtin) disagree with each other on ~2% of real faces, nearly all near-ties",
                "max_abs_dp": "no probability moves by more than a quarter",
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Int8Rule:
        return cls(**{f.name: float(data[f.name]) for f in fields(cls)})


def margins(p: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row."""
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def psnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    rmse = float(np.sqrt(np.mean((got.astype(np.float64) - ref) ** 2)))
    peak = float(np.abs(ref).max())
    return float("inf") if rmse == 0 else 20 * np.log10(peak / rmse)


def judge_int8(
    ref: np.ndarray, got: np.ndarray, rule: Int8Rule, names: list[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Checks and failures of int8 outputs ``got`` against fp32 ``ref`` (both (N,7)) under ``rule``."""
    names = names or [str(i) for i in range(len(ref))]
    checks: dict[str, Any] = {"faces": len(ref)}
    if len(ref) == 0:
        return checks, ["no faces to judge int8 fidelity on"]
    if not (np.isfinite(got).all() and np.isfinite(ref).all()):
        return checks, ["non-finite probabilities (NaN or inf)"]
    failures: list[str] = []
    flip = ref.argmax(1) != got.argmax(1)
    m = margins(ref)
    decisive, confident = m >= rule.decisive_margin, m >= rule.confident_margin
    dp = np.abs(got - ref).max(1)
    worst = int(dp.argmax())
    checks.update(
        psnr_db=round(float(psnr_db(ref, got)), 3),
        argmax_agreement=float(1 - flip.mean()),
        decisive_faces=int(decisive.sum()),
        decisive_flips=int((flip & decisive).sum()),
        confident_faces=int(confident.sum()),
        confident_agreement=float(1 - flip[confident].mean()) if confident.any() else 1.0,
        max_abs_dp=float(dp.max()),
        worst_case=names[worst],
    )
    if not checks["psnr_db"] >= rule.min_psnr_db:
        failures.append(f"PSNR {checks['psnr_db']:.1f} dB < {rule.min_psnr_db:g} dB")
    if checks["decisive_flips"]:
        first = names[int(np.flatnonzero(flip & decisive)[0])]
        failures.append(
            f"{checks['decisive_flips']} label flip(s) where fp32's margin is >= {rule.decisive_margin:g} "
            f"(first: case {first})"
        )
    if not checks["confident_agreement"] >= rule.min_confident_agreement:
        failures.append(
            f"argmax agreement {checks['confident_agreement']:.4f} < {rule.min_confident_agreement:g} on the "
            f"{checks['confident_faces']} faces with margin >= {rule.confident_margin:g}"
        )
    if not checks["max_abs_dp"] <= rule.max_abs_dp:
        failures.append(f"max |dp| {checks['max_abs_dp']:.3f} > {rule.max_abs_dp:g} on case {names[worst]}")
    return checks, failures


def accuracy_ratio(int8_top1: float, fp32_top1: float) -> float:
    return int8_top1 / fp32_top1 if fp32_top1 > 0 else 0.0
