"""The default face detector (BlazeFace on onnxruntime) on real scenes: FER2013 faces pasted into seeded
640x480 photos (``xruntime_emotion.check.scenes``), scored against the squares they were pasted into."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from PIL import Image

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.check import scenes as S
from xruntime_emotion.check.detection_score import FALSE, HIT, IGNORED, MIN_FACE, Tally, judge
from xruntime_emotion.check.scenes import HEIGHT, WIDTH, Scene, make_scenes, match, score
from xruntime_emotion.errors import IntegrityError
from xruntime_emotion.runtime.detect import (
    BLAZEFACE,
    DEFAULT_DETECTOR,
    DETECTORS,
    BlazeFaceDetector,
    Box,
    Detection,
    HaarDetector,
    analyze,
    default_detector,
    detector,
)

SAMPLE = Path(__file__).resolve().parents[2] / "xruntime_emotion" / "samples" / "fer2013_training_sample.npz"
SEED = 0  # the bench's seed


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    """40 scenes from the shipped Training sample, so the test runs without the full data set."""
    with np.load(SAMPLE) as z:
        faces = np.concatenate([z["calibration"], z["holdout"]])
    return make_scenes(faces, 40, SEED)


class Shifted:
    """A detector whose boxes are moved by half their side: what a broken box decode looks like."""

    def __init__(self, inner: BlazeFaceDetector) -> None:
        self.inner = inner

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [
            Detection(Box(d.box.x + d.box.w // 2, d.box.y + d.box.h // 2, d.box.w, d.box.h), d.score)
            for d in self.inner.detect(image)
        ]


def test_default_detector_recall_and_precision(scenes: list[Scene]) -> None:
    assert isinstance(default_detector(), BlazeFaceDetector) and DEFAULT_DETECTOR == "blazeface"
    recall, precision, rate = score(default_detector(), scenes)
    assert recall >= 0.88 and precision >= 0.90, (recall, precision)  # 0.914 / 0.974 (was 0.691 / 0.933)
    assert rate > 0


def test_the_scorer_catches_misplaced_boxes(scenes: list[Scene]) -> None:
    recall, precision, _ = score(Shifted(default_detector()), scenes)
    assert recall < 0.5 and precision < 0.5, (recall, precision)


def test_match_is_greedy_and_one_to_one() -> None:
    truth = [Box(0, 0, 100, 100), Box(300, 0, 100, 100)]
    found = [Box(5, 5, 100, 100), Box(0, 0, 100, 100), Box(310, 10, 100, 100), Box(600, 0, 50, 50)]
    assert sorted(match(found, truth)) == [(1, 0), (2, 1)]  # the exact box wins; the duplicate is unmatched


def test_scenes_are_deterministic(scenes: list[Scene]) -> None:
    with np.load(SAMPLE) as z:
        faces = np.concatenate([z["calibration"], z["holdout"]])
    again = make_scenes(faces, 5, SEED)
    for a, b in zip(scenes[:5], again):
        assert a.boxes == b.boxes and a.rows == b.rows and a.angles == b.angles
        assert np.array_equal(a.image, b.image)
    other = make_scenes(faces, 5, SEED + 1)
    assert [s.boxes for s in other] != [s.boxes for s in again]


def test_scenes_follow_the_recipe(scenes: list[Scene]) -> None:
    cut = 0
    for s in scenes:
        assert s.image.shape == (HEIGHT, WIDTH, 3) and s.image.dtype == np.uint8
        assert 1 <= len(s.boxes) <= 3 and len(s.small) <= S.MAX_CLUTTER
        for i, b in enumerate(s.truth):
            assert all(b.iou(o) == 0.0 for o in s.truth[i + 1 :])
        for b in s.boxes:
            assert b.w == b.h and MIN_FACE <= b.w <= 480
            outside = max(-b.x, -b.y, b.x + b.w - WIDTH, b.y + b.h - HEIGHT, 0)
            assert outside <= round(0.4 * b.w)
            cut += outside > 0
        for b in s.small:
            assert b.w == b.h and 16 <= b.w < MIN_FACE
            assert 0 <= b.x and b.x + b.w <= WIDTH and 0 <= b.y and b.y + b.h <= HEIGHT
        assert all(abs(a) <= 30.0 for a in s.angles)
    sides = [b.w for s in scenes for b in s.boxes]
    assert min(sides) < 64 and max(sides) > 256 and 0 < cut < len(sides) / 2  # the whole range; some cut


def test_the_scoring_rules() -> None:
    """Hit at IoU >= 0.5, one box per face; a box fitting a face below the minimum is ignored; blown up, false."""
    face, small = Box(100, 100, 100, 100), Box(400, 300, 20, 20)
    j = judge([Box(105, 105, 100, 100), Box(100, 100, 100, 100), Box(395, 295, 30, 30), Box(380, 280, 60, 60)],
              [face, small])  # fmt: skip
    assert j.boxes == (FALSE, HIT, IGNORED, FALSE) and j.faces == (True,)  # 60 px > 2x 20 px: false
    assert judge([Box(390, 290, 40, 40)], [small]).boxes == (IGNORED,)  # exactly 2x: still ignored
    assert judge([], [face, small]).faces == (False,)  # a small face is never a miss
    assert judge([Box(120, 120, 100, 100)], [face]).boxes == (FALSE,)  # IoU 0.47: no hit
    t = Tally()
    t.add(j)
    assert (t.faces, t.hits, t.false, t.ignored) == (1, 1, 2, 1) and t.precision == pytest.approx(1 / 3)


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / BLAZEFACE.name
    shutil.copyfile(BLAZEFACE, bad)
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        BlazeFaceDetector(bad)
    with pytest.raises(IntegrityError, match="sha256"):
        BlazeFaceDetector(sha256="0" * 64)


def test_detectors_by_name(scenes: list[Scene]) -> None:
    assert set(DETECTORS) == {"blazeface", "haar"}
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        detector("yolo")
    assert detector("blazeface", min_face=24).min_face == 24  # the opt-in setting, through the catalog
    need(importlib.util.find_spec("cv2") is not None, "opencv-python-headless is required: pip install -e '.[detect]'")
    assert isinstance(detector("haar"), HaarDetector)
    clf = EmotionClassifier.default()
    s = scenes[0]
    by_name = analyze(clf, s.image, detector="haar")
    assert [f.box for f in by_name] == [f.box for f in analyze(clf, s.image, detector=HaarDetector())]


def test_analyze_a_photo_with_the_default_detector(happy_jpg: Path) -> None:
    """NXP's test face (happy), pasted at 150 px into a grey noisy photo, is found there and stays happy."""
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(120, 20, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    face = Image.open(happy_jpg).convert("RGB").resize((150, 150), Image.Resampling.BICUBIC)
    photo[200:350, 300:450] = np.asarray(face)
    faces = EmotionClassifier.default().analyze(photo)
    assert len(faces) == 1 and faces[0].box.iou(Box(300, 200, 150, 150)) >= 0.5, faces
    assert faces[0].label == "happy"


def test_blank_and_grey_photos() -> None:
    d = default_detector()
    assert d.detect(np.full((300, 400, 3), 128, np.uint8)) == []
    assert d.detect(np.zeros((10, 10), np.uint8)) == []


def test_the_dnn_path_needs_neither_tensorflow_nor_opencv() -> None:
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "import numpy as np\n"
        "from xruntime_emotion.runtime.detect import BlazeFaceDetector\n"
        "BlazeFaceDetector().detect(np.zeros((480, 640, 3), np.uint8))\n"
        "assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules), 'TensorFlow imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
