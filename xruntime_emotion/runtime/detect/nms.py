"""Merging a detector's raw boxes: MediaPipe's weighted suppression, then dropping boxes inside better ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CONTAINED = 0.3  # a merged box with more than this share of its area inside a better one is dropped


@dataclass(frozen=True)
class Candidate:
    """A blended raw detection: box centre, width and height, score and the six landmarks (photo pixels)."""

    centre: np.ndarray
    size: np.ndarray
    score: float
    landmarks: np.ndarray  # (6,2)
    tile: float  # the score-weighted side, in photo pixels, of the 128-pixel squares it was seen in (level or view)


def _weighted_nms(
    centre: np.ndarray, size: np.ndarray, score: np.ndarray, marks: np.ndarray, tile: np.ndarray
) -> list[Candidate]:
    """MediaPipe's blending suppression: each cluster (IoU > 0.3 with its best box) becomes its score-weighted mean."""
    lo, hi = centre - size / 2, centre + size / 2
    area = size[:, 0] * size[:, 1]
    free = np.ones(len(score), bool)
    out = []
    for i in np.argsort(-score, kind="stable"):
        if not free[i]:
            continue
        inter = np.prod(np.clip(np.minimum(hi[i], hi) - np.maximum(lo[i], lo), 0, None), axis=1)
        group = free & (inter / np.maximum(area[i] + area - inter, 1e-9) > 0.3)
        free &= ~group
        w = score[group] / score[group].sum()
        out.append(
            Candidate(
                (centre[group] * w[:, None]).sum(0),
                (size[group] * w[:, None]).sum(0),
                float(score[i]),
                (marks[group] * w[:, None, None]).sum(0),
                float((tile[group] * w).sum()),
            )
        )
    return out


def _drop_contained(found: list[Candidate]) -> list[Candidate]:
    """Drop each box (best first) with more than ``_CONTAINED`` of its area inside a better kept one: a face's part."""
    kept: list[Candidate] = []
    for c in found:
        lo, hi = c.centre - c.size / 2, c.centre + c.size / 2
        area = max(float(np.prod(c.size)), 1e-9)
        if all(
            np.prod(np.clip(np.minimum(hi, k.centre + k.size / 2) - np.maximum(lo, k.centre - k.size / 2), 0, None))
            <= _CONTAINED * area
            for k in kept
        ):
            kept.append(c)
    return kept
