"""The int8 calibration sample: shipped with the package, disjoint by content from the test splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion.model.calibration import (
    NEAR_DUPLICATE_RULE,
    SAMPLE_FILE,
    calibration_sample,
    evaluation_rows,
    near_duplicates,
    nearest,
    shipped_sample,
)
from xruntime_emotion.model.data import FerData, Split, image_sha256

LIMIT = NEAR_DUPLICATE_RULE["max_rms_grey_levels"]


def test_near_duplicate_rule_on_made_faces() -> None:
    """JPEG-like noise and a small brightness shift are near-duplicates; a shifted or another face is not."""
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (6, 6)).repeat(8, 0).repeat(8, 1).astype(np.int16)
    noisy = np.clip(face + rng.integers(-3, 4, face.shape), 0, 255)
    brighter = np.clip(face + 2, 0, 255)
    moved = np.roll(face, 8, axis=1)
    other = rng.integers(0, 256, (6, 6)).repeat(8, 0).repeat(8, 1)
    images = np.stack([noisy, brighter, moved, other]).astype(np.uint8)
    dist, index = nearest(images, face[None].astype(np.uint8))
    assert dist[0] < 1 and 1.5 < dist[1] < LIMIT and dist[2] > 10 * LIMIT and dist[3] > 10 * LIMIT
    assert index.tolist() == [0, 0, 0, 0]
    assert near_duplicates(images, face[None].astype(np.uint8)).tolist() == [True, True, False, False]
    assert near_duplicates(images, np.zeros((0, 48, 48), np.uint8)).tolist() == [False] * 4


def test_shipped_sample_is_bounded_and_self_consistent() -> None:
    s = shipped_sample()
    assert s.shipped and len(s.images) == 100 and len(s.holdout) == 500 and s.seed == 0
    assert not set(s.rows) & set(s.holdout_rows) and not set(s.rows) & set(s.excluded)
    assert s.images.min() == 0 and s.images.max() == 255  # the uint8 input scale needs both ends
    golden = Path(__file__).resolve().parents[2] / "golden" / "faces.npz"
    assert SAMPLE_FILE.stat().st_size + golden.stat().st_size <= 3 * 2**20  # the data rule: at most 3 MB
    d = s.describe()
    assert d["sample"] == "shipped" and d["near_duplicates"]["checked_against_test_rows"] == 7178
    assert d["image_sha256"] == [image_sha256(im) for im in s.images]


def test_shipped_sample_is_what_the_full_data_gives(fer: FerData) -> None:
    s, full = shipped_sample(), calibration_sample(fer)
    assert s.rows == full.rows and s.holdout_rows == full.holdout_rows and s.excluded == full.excluded
    np.testing.assert_array_equal(s.images, fer.images[list(s.rows)])
    np.testing.assert_array_equal(s.holdout, fer.images[list(s.holdout_rows)])
    assert set(s.rows) | set(s.holdout_rows) <= set(fer.indices(Split.TRAINING).tolist())


def test_shipped_sample_has_no_near_duplicate_of_a_test_face(fer: FerData) -> None:
    s = shipped_sample()
    tests = fer.images[evaluation_rows(fer)]
    dist, _ = nearest(np.concatenate([s.images, s.holdout]), tests)
    assert dist.min() >= LIMIT, dist.min()
    # and the rule does flag the repeats that seed 0 drew before it existed
    assert {347, 18873} <= set(s.excluded)
    dist, index = nearest(fer.images[[347, 18873]], tests)
    assert (dist < 1).all() and evaluation_rows(fer)[index].tolist() == [33522, 30933]


def test_export_without_data_uses_the_shipped_sample(tmp_path: Path) -> None:
    r = run_cli("export", "--format", "tflite-int8", "-o", str(tmp_path / "a"), env={"XEMOTION_DATA": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    cal = json.loads((tmp_path / "a" / "export_manifest.json").read_text())["artifacts"]["tflite-int8"]["calibration"]
    assert cal["sample"] == "shipped" and cal["rows"] == list(shipped_sample().rows)
    r = run_cli("export", "--format", "onnx-int8", "--calib-size", "300", "-o", str(tmp_path / "b"))
    assert r.returncode != 0 and "pass --calib-data" in r.stderr and not (tmp_path / "b").exists()


@pytest.mark.parametrize("size", [0, 28_709])
def test_calibration_size_is_checked(fer: FerData, size: int) -> None:
    from xruntime_emotion.errors import DataError

    with pytest.raises(DataError, match="calibration size must be"):
        calibration_sample(fer, size)
