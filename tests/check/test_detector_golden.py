"""The face detectors in the golden set: fixed photos, recorded boxes, and `verify` holding each detector to them."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import _copy_golden

from xruntime_emotion.check import detector_golden as D
from xruntime_emotion.check import golden as G
from xruntime_emotion.check.verify import _judge_detector, verify
from xruntime_emotion.errors import ConformanceError
from xruntime_emotion.model.calibration import shipped_sample
from xruntime_emotion.model.data import image_sha256


def _edit(d: Path, change: Callable[[dict[str, Any]], None]) -> G.GoldenSet:
    """Change the manifest and seal it again, as `golden regenerate` would have written it."""
    gs = G.load(d)
    manifest = copy.deepcopy({k: v for k, v in gs.manifest.items() if k != "seal"})
    change(manifest)
    G.save(d, manifest, gs.expected, gs.faces)
    return G.load(d)


def test_the_photos_are_made_by_code_from_the_shipped_sample() -> None:
    section = G.load().manifest["detectors"]
    faces = shipped_sample().images
    for spec, entry in zip(D.PHOTOS, section["photos"], strict=True):
        pixels, truth = D.make_photo(faces, spec)
        assert image_sha256(pixels) == entry["sha256"]
        assert [[b.x, b.y, b.w, b.h] for b in truth] == entry["truth"]
    assert sum(len(e["truth"]) for e in section["photos"]) == 7
    assert sum((G.golden_dir() / e["file"]).stat().st_size for e in section["photos"]) < 250_000  # small files


def test_verify_runs_every_detector_of_the_catalog(artifacts: Path) -> None:
    report = verify(artifacts)
    rows = {r["pair"]: r for r in report["results"] if r["format"].startswith("detector:")}
    blaze = rows["detector blazeface × onnxruntime"]
    assert blaze["status"] == "passed" and blaze["checks"]["max_box_px"] <= 2, blaze
    recorded = G.load().manifest["detectors"]["recorded"]["blazeface"]["boxes"]
    assert blaze["checks"]["boxes"] == sum(len(b) for b in recorded) >= 6  # it finds (nearly) every face
    haar = rows["detector haar × opencv"]
    assert haar["status"] == ("passed" if importlib.util.find_spec("cv2") else "skipped"), haar


@pytest.mark.parametrize(
    ("shift", "status", "reason"),
    [(2, "passed", "within 2 px"), (3, "failed", "photo 1: a box is 3 px from the recorded one (> 2)")],
)
def test_a_moved_box_fails_past_the_tolerance(tmp_path: Path, shift: int, status: str, reason: str) -> None:
    d = _copy_golden(tmp_path)

    def move(m: dict[str, Any]) -> None:
        m["detectors"]["recorded"]["blazeface"]["boxes"][1][0][0] += shift

    row = _judge_detector("blazeface", _edit(d, move), d)
    assert row.status == status and reason in row.reason, row


def test_a_missing_face_and_another_model_fail(tmp_path: Path) -> None:
    d = _copy_golden(tmp_path)
    gs = _edit(d, lambda m: m["detectors"]["recorded"]["blazeface"]["boxes"][0].pop())
    row = _judge_detector("blazeface", gs, d)
    assert row.status == "failed" and "photo 0: other faces found than recorded" in row.reason
    gs = _edit(d, lambda m: m["detectors"]["recorded"]["blazeface"].update(model_sha256="0" * 64))
    row = _judge_detector("blazeface", gs, d)
    assert row.status == "failed" and "sha256 differs" in row.reason


def test_an_edited_photo_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    d = _copy_golden(tmp_path)
    path = d / G.load(d).manifest["detectors"]["photos"][2]["file"]
    im = Image.open(path).convert("RGB")
    im.putpixel((5, 5), (0, 0, 0))
    im.save(path)
    with pytest.raises(ConformanceError, match="pixels do not match their sha256"):
        _judge_detector("blazeface", G.load(d), d)


def test_a_golden_set_without_detector_boxes_skips_them(tmp_path: Path) -> None:
    d = _copy_golden(tmp_path)
    gs = _edit(d, lambda m: m.pop("detectors"))
    row = _judge_detector("blazeface", gs, d)
    assert row.status == "skipped" and "golden regenerate" in row.reason


def test_malformed_detector_records_are_one_clear_error(tmp_path: Path) -> None:
    d = _copy_golden(tmp_path)
    with pytest.raises(ConformanceError, match="malformed golden manifest"):
        _edit(d, lambda m: m["detectors"]["recorded"]["blazeface"]["boxes"][0].append(["x", 1, 2, 3, 4]))
    with pytest.raises(ConformanceError, match="malformed golden manifest"):
        _edit(d, lambda m: m["detectors"]["photos"][0].update(file="../../etc/passwd"))
    with pytest.raises(ConformanceError, match="malformed golden manifest"):
        _edit(d, lambda m: m["detectors"]["photos"][0].update(file="/etc/passwd"))
