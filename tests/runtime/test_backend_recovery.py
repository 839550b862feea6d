"""One failed TFLite call must not break the next ones.

``LiteRTBackend`` keeps one interpreter per thread, resized to the last batch size it ran. A call that
failed part-way (``np.matrix`` input, a batch too big to allocate, an allocation or invocation that
raised) used to leave that interpreter resized while the backend still recorded the old size, so every
later call of the old size on that thread failed ("Dimension mismatch. Got 1 but expected 30000").
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.errors import ModelFileError

TFLITE = ["emotion_float32.tflite", "emotion_uint8_float32.tflite"]
HUGE = 2**24  # faces: XNNPack refuses to plan such a batch at once; a zero-stride view of it costs no memory
KINDS = ["matrix", "huge", "allocate", "invoke"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    MATRIX = np.matrix(np.full((48, 48), 128, np.uint8))  # the first poison: 2-D input that fails in LiteRT


def faces(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.fixture(scope="module", params=TFLITE)
def model(request: pytest.FixtureRequest, artifacts: Path) -> Path:
    return artifacts / request.param


class Sabotage:
    """Makes the interpreter's ``allocate_tensors`` or ``invoke`` raise once, in the thread that armed it.

    Stands in for an allocation that runs out of memory after a resize to more than one face succeeded, or
    a kernel that fails.
    """

    def __init__(self, clf: EmotionClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = threading.local()
        cls = clf.backend._mod.Interpreter  # type: ignore[attr-defined]
        for name in ("allocate_tensors", "invoke"):
            monkeypatch.setattr(cls, name, self._wrap(name, getattr(cls, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(interp: Any, *args: Any, **kwargs: Any) -> Any:
            resized = name != "allocate_tensors" or interp.get_input_details()[0]["shape"][0] > 1
            if getattr(self.armed, "name", None) == name and resized:  # a new interpreter's own allocation passes
                self.armed.name = None
                raise RuntimeError(f"simulated failure in {name}")
            return method(interp, *args, **kwargs)

        return wrapper

    def arm(self, name: str) -> None:
        self.armed.name = name


def poison(clf: EmotionClassifier, kind: str, sabotage: Sabotage, pool: np.ndarray) -> None:
    """One call that fails part-way; raises AssertionError if it does not fail as expected."""
    if kind == "matrix":
        with pytest.raises(ModelFileError, match="inference failed") as exc:
            clf.predict(MATRIX)
        assert "\n" not in str(exc.value)
    elif kind == "huge":
        one = clf.backend.native_input(pool[:1, :, :, None].astype(np.float32) / 255)
        with pytest.raises((RuntimeError, ValueError)):
            clf.backend.raw(np.broadcast_to(one, (HUGE, *one.shape[1:])))
    else:
        sabotage.arm("allocate_tensors" if kind == "allocate" else "invoke")
        with pytest.raises(ModelFileError, match="inference failed .*simulated failure"):
            clf.predict(pool[:5])  # a new batch size: resize, allocate, then invoke


def calls(pool: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The normal calls checked after a poisoning: every face alone, batches of 3, then single faces again."""
    for k in range(len(pool)):
        yield f"face {k}", pool[k]
    for k in range(len(pool) - 2):
        yield f"faces {k}..{k + 2}", pool[k : k + 3]
    yield "face 0 again", pool[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_call_does_not_poison_the_next(model: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = faces()
    fresh = EmotionClassifier.from_file(model)
    expected = {name: fresh.predict(x) for name, x in calls(pool)}
    clf = EmotionClassifier.from_file(model)
    sabotage = Sabotage(clf, monkeypatch)
    clf.predict(pool[0])  # the interpreter has run batch 1 before the failure
    poison(clf, kind, sabotage, pool)
    poison(clf, kind, sabotage, pool)  # twice in a row
    for name, x in calls(pool):
        assert np.array_equal(clf.predict(x), expected[name]), f"{kind}: {name} differs after the failed call"


@pytest.mark.parametrize("kind", ["matrix", "huge", "invoke"])
def test_a_failed_first_call_in_a_thread(model: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread's interpreter is created by the failing call itself."""
    pool = faces()
    clf = EmotionClassifier.from_file(model)
    expected = clf.predict(pool[0])
    sabotage = Sabotage(clf, monkeypatch)
    out: list[Any] = []

    def work() -> None:
        try:
            poison(clf, kind, sabotage, pool)
            out.append(clf.predict(pool[0]))
        except BaseException as exc:  # reported by the main thread
            out.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert isinstance(out[0], np.ndarray), out[0]
    assert np.array_equal(out[0], expected)


def test_threads_recover_from_one_failed_call_each(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 threads x 200 calls on one classifier, one poisoning call per thread: no wrong answer after it."""
    threads, per_thread = 16, 200
    pool = faces(16)
    clf = EmotionClassifier.from_file(model)
    single = [clf.predict(pool[k]) for k in range(len(pool))]
    triple = [clf.predict(pool[k : k + 3]) for k in range(len(pool) - 2)]
    sabotage = Sabotage(clf, monkeypatch)
    lock = threading.Lock()
    wrong = {"before": 0, "after": 0}
    problems: list[str] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        at, kind = 20 + 11 * t, KINDS[t % len(KINDS)]
        bad = {"before": 0, "after": 0}
        start.wait()
        for i in range(per_thread):
            phase = "before" if i < at else "after"
            if i == at:
                try:
                    poison(clf, kind, sabotage, pool)
                except BaseException as exc:  # reported by the main thread
                    with lock:
                        problems.append(f"thread {t}: {kind} poisoning did not fail as expected: {exc!r}")
            k = (t * 7 + i * 5) % len(pool)
            try:
                if i % 10 == 9:  # a batch of 3 now and then: resizes back and forth
                    k %= len(triple)
                    ok = np.array_equal(clf.predict(pool[k : k + 3]), triple[k])
                else:
                    ok = np.array_equal(clf.predict(pool[k]), single[k])
            except Exception as exc:  # counted as a wrong answer
                ok = False
                with lock:
                    problems.append(f"thread {t} call {i} ({phase} {kind}): {str(exc)[:200]}")
            bad[phase] += not ok
        with lock:
            for phase, n in bad.items():
                wrong[phase] += n

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert wrong == {"before": 0, "after": 0} and not problems, f"{wrong}; first problems: {problems[:5]}"
