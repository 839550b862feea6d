"""Face detectors on the scene set: recall and precision (overall and by face size), and whole-photo latency.

    python scripts/detection_bench.py [--scenes 500] [--seed 0] [--photos 60] [--detector NAME[:k=v,...]]

Scenes come from ``xruntime_emotion.check.scenes`` with FER2013's Training and PublicTest faces from
$XEMOTION_DATA (or, without it, the Training faces of the shipped sample), scored by
``xruntime_emotion.check.detection_score``. For each detector (every one in ``DETECTORS`` at its defaults
unless named): recall and precision, then by face size, true faces per second of detection, and the
median latency of ``analyze`` (detect + classify with ``EmotionClassifier.default()``) over ``--photos``
640x480 scenes of another seed, each timed once after one warm-up, detectors taking turns photo by photo
(so a busy spell on the machine hits all alike). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.check.scenes import evaluate, make_scenes
from xruntime_emotion.errors import DataError
from xruntime_emotion.model.data import Split, load_fer2013
from xruntime_emotion.runtime.detect import DETECTORS, Detector, analyze, build_detector

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


def parse_detector(text: str) -> tuple[str, dict[str, Any]]:
    """'blazeface' or 'blazeface:min_face=24,threads=1' -> (name, settings); numbers become numbers."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = int(value)
        except ValueError:
            options[key] = float(value)
    return name, options


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", type=int, default=60, help="whole-photo latency: median over this many photos")
    ap.add_argument("--detector", action="append", help="NAME[:k=v,...] (repeatable; default: every detector)")
    args = ap.parse_args()
    pool, source = faces()
    print(f"building {args.scenes} scenes (seed {args.seed}) from {len(pool)} faces of {source}", file=sys.stderr)
    scenes = make_scenes(pool, args.scenes, args.seed)
    photos = [s.image for s in make_scenes(pool, args.photos, args.seed + 1000)]
    clf = EmotionClassifier.default()
    chosen = [parse_detector(t) for t in args.detector] if args.detector else [(n, {}) for n in DETECTORS]
    dets: list[tuple[str, Detector]] = [
        (name + "".join(f" {k}={v}" for k, v in opts.items()), build_detector(name, **opts)) for name, opts in chosen
    ]
    n = sum(len(s.boxes) for s in scenes)
    small = sum(len(s.small) for s in scenes)
    print(f"scenes: {len(scenes)} (seed {args.seed}), faces: {n} (+{small} below the minimum), 640x480")
    for label, det in dets:
        print(f"{label}: detecting", file=sys.stderr)
        r = evaluate(det, scenes)
        t = r.total
        print(f"{label}: recall {t.recall:.3f} precision {t.precision:.3f} (hits {t.hits}, false {t.false}, "
              f"ignored {t.ignored}), {r.faces_per_s:.1f} faces/s")  # fmt: skip
        for (lo, hi), v in r.by_size.items():
            print(f"  {lo}-{hi - 1} px: recall {v.recall:.3f} ({v.hits}/{v.faces}), false boxes {v.false}")
    if not args.photos:
        return 0
    print(f"latency: {args.photos} photos (seed {args.seed + 1000})", file=sys.stderr)
    times: dict[str, list[float]] = {label: [] for label, _ in dets}
    for _, det in dets:
        analyze(clf, photos[0], detector=det)  # warm-up
    for photo in photos:
        for label, det in dets:
            t0 = time.perf_counter()
            analyze(clf, photo, detector=det)
            times[label].append(time.perf_counter() - t0)
    first = 1000 * float(np.median(times[dets[-1][0]]))
    for label, _ in dets:
        ms = 1000 * float(np.median(times[label]))
        print(f"{label}: whole photo (detect + classify) median {ms:.1f} ms over {args.photos} photos", end="")
        print(f", {ms / first:.2f}x {dets[-1][0]}" if len(dets) > 1 else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
