"""Seeded synthetic face-sized inputs: gradients, noise, checkerboards, blank, saturated, inverted.

Used to validate exports right after they are written and as the generated part of the golden set.
Same seed, same bytes, on every platform (integer NumPy generators only).
"""

from __future__ import annotations

import numpy as np

from xruntime_emotion.model.ir import CONTRACT

SIZE = CONTRACT.height  # square crops; the contract lives in the IR


def _box5(v: np.ndarray) -> np.ndarray:
    return np.convolve(v, np.ones(5) / 5, mode="same")


def synthetic_cases(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Named uint8 (48,48) images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (np.arange(SIZE) * 255 // (SIZE - 1)).astype(np.uint8)
    cases: list[tuple[str, np.ndarray]] = [
        ("blank", np.zeros((SIZE, SIZE), np.uint8)),
        ("saturated", np.full((SIZE, SIZE), 255, np.uint8)),
        ("mid_grey", np.full((SIZE, SIZE), 128, np.uint8)),
        ("gradient_h", np.tile(ramp, (SIZE, 1))),
        ("gradient_v", np.tile(ramp[:, None], (1, SIZE))),
        ("gradient_diag", ((xx + yy) * 255 // (2 * SIZE - 2)).astype(np.uint8)),
        ("radial", np.clip(255 - np.hypot(xx - 23.5, yy - 23.5) * 7.5, 0, 255).astype(np.uint8)),
    ]
    for cell in (1, 2, 4, 8, 16):
        cases.append((f"checker_{cell}", ((((xx // cell) + (yy // cell)) % 2) * 255).astype(np.uint8)))
    for i in range(8):
        cases.append((f"noise_{i}", rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)))
    for i in range(8):
        coarse = rng.integers(0, 256, (6, 6)).astype(np.float64)
        smooth = np.kron(coarse, np.ones((8, 8)))
        smooth = np.apply_along_axis(_box5, 1, smooth)
        smooth = np.apply_along_axis(_box5, 0, smooth)
        cases.append((f"smooth_noise_{i}", np.clip(np.rint(smooth), 0, 255).astype(np.uint8)))
    for i in range(4):
        lo, hi = sorted(rng.integers(0, 256, 2))
        cases.append((f"low_contrast_{i}", rng.integers(lo, hi + 1, (SIZE, SIZE), dtype=np.uint8)))
    base = list(cases)
    for name, img in base[3:]:
        cases.append((f"inverted_{name}", (255 - img).astype(np.uint8)))
    return cases


def synthetic_inputs(seed: int = 0) -> np.ndarray:
    """uint8 (N,48,48) of all synthetic cases."""
    return np.stack([img for _, img in synthetic_cases(seed)])
