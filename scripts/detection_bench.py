"""Face detectors on the scene set: recall, precision and speed, and whole-photo latency, in one run.

    python scripts/detection_bench.py [--scenes 500] [--seed 0] [--runs 30]

Scenes come from ``xruntime_emotion.check.scenes`` with FER2013's Training and PublicTest faces from
$XEMOTION_DATA (or, without it, the Training faces of the shipped sample). For each detector in
``DETECTORS``: recall and precision at IoU >= 0.5, true faces per second of detection, and the median
latency of ``analyze`` (detect + classify with ``EmotionClassifier.default()``) on one 640x480 photo
with one face. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.check.scenes import make_scenes, score
from xruntime_emotion.errors import DataError
from xruntime_emotion.model.data import Split, load_fer2013
from xruntime_emotion.runtime.detect import DETECTORS, analyze

SAMPLE = Path(__file__).resolve().parent.parent / "xruntime_emotion" / "samples" / "fer2013_training_sample.npz"


def faces() -> tuple[np.ndarray, str]:
    """Training and PublicTest faces (never PrivateTest), and where they came from."""
    try:
        fer = load_fer2013()
    except DataError as exc:
        print(f"{exc}; using the shipped Training sample", file=sys.stderr)
        with np.load(SAMPLE) as z:
            return np.concatenate([z["calibration"], z["holdout"]]), str(SAMPLE)
    keep = np.isin(fer.usage, [Split.TRAINING.value, Split.PUBLIC_TEST.value])
    return fer.images[keep], fer.source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=30, help="whole-photo latency: median of this many runs")
    args = ap.parse_args()
    pool, source = faces()
    print(f"building {args.scenes} scenes (seed {args.seed}) from {len(pool)} faces of {source}", file=sys.stderr)
    scenes = make_scenes(pool, args.scenes, args.seed)
    one = next(s for s in make_scenes(pool, 200, args.seed + 1) if len(s.boxes) == 1)
    clf = EmotionClassifier.default()
    n = sum(len(s.boxes) for s in scenes)
    print(f"scenes: {len(scenes)} (seed {args.seed}), faces: {n}, 640x480, faces from {Path(source).name}")
    print(f"{'detector':<10} {'recall':>7} {'precision':>9} {'faces/s':>8} {'photo ms':>9}")
    for name, kind in DETECTORS.items():
        print(f"{name}: detecting", file=sys.stderr)
        det = kind.make()
        recall, precision, rate = score(det, scenes)
        analyze(clf, one.image, detector=det)  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            analyze(clf, one.image, detector=det)
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        print(f"{name:<10} {recall:>7.3f} {precision:>9.3f} {rate:>8.1f} {ms:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
