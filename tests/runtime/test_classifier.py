"""xruntime_emotion.runtime.classifier: batches, and one EmotionClassifier shared by many threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import _script

from xruntime_emotion import EmotionClassifier, ModelIR
from xruntime_emotion.model.data import Split


def test_dynamic_batch(tmp_path: Path, default_ir: ModelIR) -> None:
    clf = EmotionClassifier.default()
    x = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    batch = clf.predict(x)
    one_by_one = np.concatenate([clf.predict(im) for im in x])
    assert batch.shape == (5, 7)
    assert np.abs(batch - one_by_one).max() <= 1e-6
    assert np.abs(batch - default_ir.forward(x[..., None] / np.float32(255))).max() <= 1e-5


def test_classifier_from_tflite_threads_and_batches(artifacts: Path, fer) -> None:
    import concurrent.futures as cf

    clf = EmotionClassifier.from_tflite(artifacts / "emotion_uint8_float32.tflite", threads=1)
    faces = fer.split(Split.PRIVATE_TEST)[0][:64]
    seq = clf.predict(faces)
    with cf.ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda i: clf.predict(faces[i : i + 1]), range(64)))
    np.testing.assert_array_equal(np.concatenate(par), seq)


def test_one_classifier_many_threads_onnx(onnx_clf: EmotionClassifier) -> None:
    r = _script("concurrency").run(onnx_clf, threads=8, predictions=150)
    assert (r.mismatches, r.errors) == (0, 0), r.error_types


@pytest.mark.parametrize("name", ["emotion_float32.tflite", "emotion_uint8_float32.tflite"])
def test_one_classifier_many_threads_tflite(name: str, twin_exports: tuple[Path, Path]) -> None:
    clf = EmotionClassifier.from_tflite(twin_exports[0] / name)
    r = _script("concurrency").run(clf, threads=8, predictions=150)
    assert (r.mismatches, r.errors) == (0, 0), r.error_types
