"""One classifier, many threads: every answer must equal the sequential one, bit for bit.

    python scripts/concurrency.py [MODEL] [--threads 8] [--predictions 10000] [--runtime NAME]
                                  [--poison [matrix|huge|mixed]]

MODEL is any artifact ``EmotionClassifier.from_file`` opens (default: the shipped ONNX). A pool of
64 seeded faces is classified one at a time, sequentially, for reference; then each thread classifies
``--predictions`` faces from the pool, one per call, and compares each answer with the reference.
Prints the number of mismatches and errors; exits non-zero if either is not 0.

``--poison`` injects one failing call per thread, part-way through its run: ``matrix`` (an
``np.matrix`` face, which LiteRT cannot reshape), ``huge`` (a zero-stride batch of 2**24 faces
handed to the backend, too big to allocate; TFLite models only) or ``mixed`` (the two in turn, the
default). A failed call once left a TFLite thread's interpreter resized, so every later call failed;
the extra result line counts the wrong answers (mismatches and errors) after poisoning: must be 0.
The issue's numbers: ``scripts/concurrency.py emotion_uint8_float32.tflite --threads 16
--predictions 2000 --poison``. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.runtime.backends.litert import LiteRTBackend


@dataclass
class Result:
    predictions: int
    mismatches: int
    errors: int
    error_types: dict[str, int]
    seconds: float
    poisoned: int = 0  # poisoning calls that failed, as they should
    after_poison: int = 0  # mismatches and errors after a thread's poisoning call


HUGE = 2**24  # faces: more than LiteRT will allocate; a zero-stride view of them costs no memory
POISONS = ("matrix", "huge")


def poison_call(clf: EmotionClassifier, kind: str, face: np.ndarray) -> bool:
    """One call that must fail part-way (see the module doc); True if it did."""
    try:
        if kind == "matrix":
            with warnings.catch_warnings():  # np.matrix is deprecated; that is the point
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                matrix = np.matrix(face)
            clf.predict(matrix)
        else:
            one = clf.backend.native_input(face[None, :, :, None].astype(np.float32) / 255)
            clf.backend.raw(np.broadcast_to(one, (HUGE, *one.shape[1:])))
    except Exception:
        return True
    return False


def faces(n: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` uint8 48x48 faces: seeded noise blended with gradients, so the answers differ."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 48)[None, :] * rng.uniform(0, 255, (n, 48, 1))
    return np.clip(rng.normal(0, 40, (n, 48, 48)) + ramp, 0, 255).astype(np.uint8)


def run(
    clf: EmotionClassifier,
    threads: int = 8,
    predictions: int = 10_000,
    pool: np.ndarray | None = None,
    poison: str | None = None,
    progress: bool = False,
) -> Result:
    """``threads`` threads x ``predictions`` single-face calls, each checked against the sequential answer.

    With ``poison`` (``matrix``, ``huge`` or ``mixed``) each thread also makes one failing call, part-way.
    With ``progress``, each thread says on stderr when it is done.
    """
    if poison not in (None, "mixed", *POISONS):
        raise ValueError(f"poison must be one of mixed, {', '.join(POISONS)}, got {poison!r}")
    if poison in ("huge", "mixed") and not isinstance(clf.backend, LiteRTBackend):
        raise ValueError(f"poison {poison!r} needs a TFLite model (a huge batch would really be allocated)")
    pool = faces() if pool is None else pool
    reference = [clf.predict(pool[k]) for k in range(len(pool))]
    lock = threading.Lock()
    counts = {"mismatches": 0, "errors": 0, "poisoned": 0, "after_poison": 0, "done": 0}
    error_types: dict[str, int] = {}
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        mismatches = errors = poisoned = after_poison = 0
        at = predictions * (t + 1) // (threads + 1) if poison else -1  # spread over the run
        kind = POISONS[t % len(POISONS)] if poison == "mixed" else poison
        start.wait()
        for i in range(predictions):
            k = (t * 7919 + i * 31) % len(pool)  # each thread walks the pool in its own order
            if i == at and kind:
                poisoned += poison_call(clf, kind, pool[k])
            try:
                ok = np.array_equal(clf.predict(pool[k]), reference[k])
                mismatches += not ok
            except Exception as exc:
                ok = False
                errors += 1
                with lock:
                    error_types[type(exc).__name__] = error_types.get(type(exc).__name__, 0) + 1
            after_poison += 0 <= at <= i and not ok
        with lock:
            counts["mismatches"] += mismatches
            counts["errors"] += errors
            counts["poisoned"] += poisoned
            counts["after_poison"] += after_poison
            counts["done"] += 1
            if progress:
                print(f"  thread {t}: {mismatches + errors} wrong, {counts['done']}/{threads} done", file=sys.stderr)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - t0
    c = counts
    return Result(
        threads * predictions, c["mismatches"], c["errors"], error_types, seconds, c["poisoned"], c["after_poison"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, nargs="?")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--predictions", type=int, default=10_000, help="per thread")
    ap.add_argument("--runtime", default=None)
    ap.add_argument(
        "--poison", nargs="?", const="mixed", choices=("mixed", *POISONS), help="one failing call per thread"
    )
    args = ap.parse_args()
    clf = EmotionClassifier.from_file(args.model, runtime=args.runtime) if args.model else EmotionClassifier.default()
    if args.poison in ("huge", "mixed") and not isinstance(clf.backend, LiteRTBackend):
        ap.error(f"--poison {args.poison} needs a TFLite model (a huge batch would really be allocated)")
    print(f"{clf.backend.path.name}: {args.threads} threads x {args.predictions} predictions...", file=sys.stderr)
    r = run(clf, args.threads, args.predictions, poison=args.poison, progress=True)
    print(
        f"{clf.backend.path.name} on {clf.backend.runtime}: {args.threads} threads x {args.predictions} predictions "
        f"= {r.predictions} in {r.seconds:.1f} s"
    )
    print(f"mismatches: {r.mismatches}  errors: {r.errors} {r.error_types or ''}")
    if args.poison:
        print(
            f"poisoning ({args.poison}): {r.poisoned} of {args.threads} calls failed as meant; "
            f"wrong answers after poisoning: {r.after_poison}"
        )
    missed = args.poison and r.poisoned != args.threads
    sys.exit(1 if r.mismatches or r.errors or missed else 0)


if __name__ == "__main__":
    main()
