"""One classifier, many threads: every answer must equal the sequential one, bit for bit.

    python scripts/concurrency.py [MODEL] [--threads 8] [--predictions 10000] [--runtime NAME]

MODEL is any artifact ``EmotionClassifier.from_file`` opens (default: the shipped ONNX). A pool of
64 seeded faces is classified one at a time, sequentially, for reference; then each thread classifies
``--predictions`` faces from the pool, one per call, and compares each answer with the reference.
Prints the number of mismatches and errors; exits non-zero if either is not 0.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xruntime_emotion import EmotionClassifier


@dataclass
class Result:
    predictions: int
    mismatches: int
    errors: int
    error_types: dict[str, int]
    seconds: float


def faces(n: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` uint8 48x48 faces: seeded noise blended with gradients, so the answers differ."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 48)[None, :] * rng.uniform(0, 255, (n, 48, 1))
    return np.clip(rng.normal(0, 40, (n, 48, 48)) + ramp, 0, 255).astype(np.uint8)


def run(clf: EmotionClassifier, threads: int = 8, predictions: int = 10_000, pool: np.ndarray | None = None) -> Result:
    """``threads`` threads x ``predictions`` single-face calls, each checked against the sequential answer."""
    pool = faces() if pool is None else pool
    reference = [clf.predict(pool[k]) for k in range(len(pool))]
    lock = threading.Lock()
    counts = {"mismatches": 0, "errors": 0}
    error_types: dict[str, int] = {}
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        mismatches = errors = 0
        start.wait()
        for i in range(predictions):
            k = (t * 7919 + i * 31) % len(pool)  # each thread walks the pool in its own order
            try:
                if not np.array_equal(clf.predict(pool[k]), reference[k]):
                    mismatches += 1
            except Exception as exc:
                errors += 1
                with lock:
                    error_types[type(exc).__name__] = error_types.get(type(exc).__name__, 0) + 1
        with lock:
            counts["mismatches"] += mismatches
            counts["errors"] += errors

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return Result(threads * predictions, counts["mismatches"], counts["errors"], error_types, time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, nargs="?")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--predictions", type=int, default=10_000, help="per thread")
    ap.add_argument("--runtime", default=None)
    args = ap.parse_args()
    clf = EmotionClassifier.from_file(args.model, runtime=args.runtime) if args.model else EmotionClassifier.default()
    r = run(clf, args.threads, args.predictions)
    print(
        f"{clf.backend.path.name} on {clf.backend.runtime}: {args.threads} threads x {args.predictions} predictions "
        f"= {r.predictions} in {r.seconds:.1f} s"
    )
    print(f"mismatches: {r.mismatches}  errors: {r.errors} {r.error_types or ''}")
    sys.exit(1 if r.mismatches or r.errors else 0)


if __name__ == "__main__":
    main()
