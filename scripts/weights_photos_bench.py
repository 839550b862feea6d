"""Two weights files, paired on the same real face photos that do not come from FER2013: is B worse than A?

    python scripts/weights_photos_bench.py PATH --weights A --weights B [--crop whole|analyze] [--sample N]
        [--seed 0]

Data: PATH is a checkout of github.com/muxspace/facial_expressions (Apache-2.0): PATH/data/legend.csv names
each photo of PATH/images/ with an emotion (labelled by students; mostly 350x350 grey face crops, many from
LFW). It is a public set, fixed before any training and never trained on; the sha256 of legend.csv is
printed so that a result names the set it was measured on. Nothing of it is committed here.

Labels (``face_photos_bench.photos``): mapped to FER2013's (anger -> angry, happiness -> happy, sadness ->
sad, the others as they are; case ignored); "contempt" and unknown labels are left out; each photo counts
once (its first row). By default every such photo is used (13,673 where legend.csv has sha256 a4be0fc5...);
``--sample N`` takes a seeded sample of N instead.

Crop: ``whole`` (the default) classifies the whole photo, shrunk to 48x48 grey as the classifier's
preprocessing does it (the "whole photo" answer of face_photos_bench.py). ``analyze`` finds the faces with
the default detector and classifies the largest one, framed as ``analyze`` frames it (default margin, turned
upright along the eye line); a photo where no face is found counts as wrong for both weights. Both weights
see the very same crops.

Weights: xemotion's .npz or DeepFace's .h5, each loaded with ``ModelIR.load`` and run on onnxruntime as the
ONNX that ``xemotion export --formats onnx-ir`` makes from it (built in memory; no TensorFlow).

Reported for each weights file: top-1 accuracy, balanced accuracy (the mean recall over the classes present),
and each class's recall and photo count, with the points of balanced accuracy one of its photos is worth (the
set has 21 fear photos: 0.68 points each; a sample of 1,000 holds one or two). Paired, B - A: the difference
in balanced accuracy and in accuracy, each with a 95% interval from a paired bootstrap (10,000 resamples of
the photos, seeded; balanced accuracy recomputed on each resample over the classes present in it), and the
photos where exactly one is right, with the exact McNemar (two-sided sign) test on them. Nothing is written;
progress on stderr, results on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from face_photos_bench import binomial_p, photos  # this folder: the same set, labels and sample

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.model.ir import LABELS, ModelIR
from xruntime_emotion.model.onnx_ir import model_proto
from xruntime_emotion.runtime.backends.ort import OrtBackend
from xruntime_emotion.runtime.detect import default_detector, find_faces
from xruntime_emotion.runtime.preprocess import load_image, prepare

RESAMPLES = 10_000
NO_FACE = -1  # the prediction of a photo where analyze found no face: never right


def classifier(weights: Path) -> EmotionClassifier:
    """onnxruntime on the ONNX that `xemotion export --formats onnx-ir` writes from ``weights``."""
    proto = model_proto(ModelIR.load(weights))
    return EmotionClassifier(OrtBackend(weights, model_content=proto.SerializeToString()))


def crops(chosen: list[tuple[Path, str]], crop: str, say: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray]:
    """The network's input for each photo that has one, (M,48,48,1), and which photos have one (N,) bool."""
    det = default_detector() if crop == "analyze" else None
    out, found = [], np.zeros(len(chosen), bool)
    for i, (path, _) in enumerate(chosen):
        if i % 1000 == 0:
            say(f"{i}/{len(chosen)} photos")
        image = load_image(path)
        if det is None:
            face: np.ndarray | None = image
        else:
            faces = find_faces(image, detector=det)[1]
            face = max(faces, key=lambda f: f[0].box.w * f[0].box.h)[1] if faces else None
        if face is not None:
            out.append(prepare(face))
            found[i] = True
    return (np.concatenate(out) if out else np.zeros((0, 48, 48, 1), np.float32)), found


def predict(clf: EmotionClassifier, x: np.ndarray, found: np.ndarray, batch: int = 256) -> np.ndarray:
    """Each photo's predicted class index (NO_FACE where there is no crop)."""
    labels = np.full(len(found), NO_FACE)
    rows = np.flatnonzero(found)
    for i in range(0, len(x), batch):
        labels[rows[i : i + batch]] = clf.predict(x[i : i + batch]).argmax(1)
    return labels


def per_class(truth: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Photos and right answers per class."""
    k = len(LABELS)
    return np.bincount(truth, minlength=k), np.bincount(truth, weights=right, minlength=k)


def balanced(truth: np.ndarray, right: np.ndarray) -> float:
    """Mean recall over the classes present."""
    count, hits = per_class(truth, right)
    present = count > 0
    return float(np.mean(hits[present] / count[present]))


def paired_bootstrap(
    truth: np.ndarray, right_a: np.ndarray, right_b: np.ndarray, seed: int, chunk: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """B - A in balanced accuracy and in accuracy on each of RESAMPLES resamples of the photos.

    Per resample, per class: photos and (B right - A right) summed by one bincount over (resample, class)."""
    n, k = len(truth), len(LABELS)
    delta = right_b.astype(np.int8) - right_a.astype(np.int8)  # +1 only B right, -1 only A right
    rng = np.random.default_rng(seed)
    bal, acc = [], []
    for start in range(0, RESAMPLES, chunk):
        r = min(chunk, RESAMPLES - start)
        idx = rng.integers(0, n, (r, n))
        key = (np.arange(r)[:, None] * k + truth[idx]).ravel()
        count = np.bincount(key, minlength=r * k).reshape(r, k)
        diff = np.bincount(key, weights=delta[idx].ravel(), minlength=r * k).reshape(r, k)
        recall = np.divide(diff, count, out=np.zeros_like(diff), where=count > 0)
        bal.append(recall.sum(1) / (count > 0).sum(1))
        acc.append(diff.sum(1) / n)
    return np.concatenate(bal), np.concatenate(acc)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="a checkout of muxspace/facial_expressions")
    ap.add_argument("--weights", type=Path, action="append", required=True, help="A, then B (.npz or .h5)")
    ap.add_argument("--crop", choices=("whole", "analyze"), default="whole")
    ap.add_argument("--sample", type=int, default=None, help="a seeded sample of this many photos (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="the sample's and the bootstrap's seed")
    args = ap.parse_args()
    if len(args.weights) != 2:
        ap.error("give --weights twice: A (today's) and B (the candidate)")
    t0 = time.perf_counter()

    def say(what: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {what}", file=sys.stderr)

    chosen = photos(args.path, args.sample, args.seed)
    truth = np.array([LABELS.index(label) for _, label in chosen])
    clfs = [classifier(w) for w in args.weights]
    x, found = crops(chosen, args.crop, say)
    say(f"{len(x)} crops; classifying")
    preds = [predict(c, x, found) for c in clfs]
    say("bootstrap")
    right_a, right_b = (p == truth for p in preds)
    bal_boot, acc_boot = paired_bootstrap(truth, right_a, right_b, args.seed)
    say("done")

    count = np.bincount(truth, minlength=len(LABELS))
    which = "every labelled photo" if args.sample is None else f"a seeded sample, seed {args.seed}"
    print(f"{len(chosen):,} photos ({which}) of muxspace/facial_expressions, legend.csv sha256 "
          f"{sha256(args.path / 'data' / 'legend.csv')[:16]}; crop: {args.crop}")  # fmt: skip
    if args.crop == "analyze":
        print(f"a face found in {int(found.sum())} ({found.mean():.1%}); the others count as wrong")
    for name, w, right in (("A", args.weights[0], right_a), ("B", args.weights[1], right_b)):
        print(f"{name}: {w} (sha256 {sha256(w)[:16]}): accuracy {right.mean():.2%}, balanced accuracy "
              f"{balanced(truth, right):.2%}")  # fmt: skip
    # one photo's weight in balanced accuracy: a class of few photos moves it by much per photo
    print(f"  {'class':<9}{'photos':>7}{'A recall':>10}{'B recall':>10}{'points/photo':>14}")
    hits = [per_class(truth, r)[1] for r in (right_a, right_b)]
    for i, label in enumerate(LABELS):
        if count[i]:
            print(f"  {label:<9}{count[i]:>7}{hits[0][i] / count[i]:>10.1%}{hits[1][i] / count[i]:>10.1%}"
                  f"{100 / ((count > 0).sum() * count[i]):>14.2f}")  # fmt: skip
    for what, point, boot in (
        ("balanced accuracy", balanced(truth, right_b) - balanced(truth, right_a), bal_boot),
        ("accuracy", right_b.mean() - right_a.mean(), acc_boot),
    ):
        lo, hi = np.percentile(boot, [2.5, 97.5])
        print(f"B - A, {what}: {100 * point:+.2f} points, 95% interval [{100 * lo:+.2f}, {100 * hi:+.2f}] "
              f"(paired bootstrap, {RESAMPLES:,} resamples, seed {args.seed})")  # fmt: skip
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    print(f"only A right {only_a}, only B right {only_b}, both right {int((right_a & right_b).sum())}, "
          f"neither {int((~right_a & ~right_b).sum())}; exact McNemar (sign) test p = "
          f"{binomial_p(only_b, only_a + only_b):.3g}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
