"""`xemotion classify` throughput against a bare loop, its memory on many inputs, and the Ray engine.

    python scripts/classify_bench.py [--faces 20000] [--int8 emotion_int8.onnx] [--threads 2]
                                     [--rounds 3] [--rss-inputs 200000] [--ray]

Writes ``--faces`` 48x48 PNG crops (FER2013 Training rows from $XEMOTION_DATA, else the shipped sample
repeated) into a temporary folder, then measures, alternating the contenders each round:
- bare: Pillow decode + raw onnxruntime at batch 64, one loop, nothing written;
- local: ``xruntime_emotion.batch.classify`` to a Parquet dataset, end to end (source walk, decode,
  inference, part files, the final read-back check);
for the shipped fp32 ONNX and, with ``--int8``, an int8 ONNX, all at ``--threads`` inference threads.
``--rss-inputs N`` runs the local engine in a child process on a list of N paths (the crops repeated)
and prints its peak RSS. ``--ray`` times the Ray engine on a local cluster: start-up to the first row,
and the steady-state rate after it. Figures go to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 64


def faces(n: int) -> np.ndarray:
    from xruntime_emotion.model.data import load_fer2013

    try:
        fer = load_fer2013(None)
        return fer.images[fer.usage == "Training"][:n]
    except Exception:  # no full data set: the shipped Training sample, repeated
        sample = Path(__file__).resolve().parents[1] / "xruntime_emotion" / "samples" / "fer2013_training_sample.npz"
        with np.load(sample) as z:
            imgs = np.concatenate([z[k] for k in z.files if z[k].ndim == 3])
        return np.resize(imgs, (n, 48, 48))


def write_crops(folder: Path, n: int) -> list[str]:
    from PIL import Image

    paths = []
    for i, face in enumerate(faces(n)):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        p = sub / f"{i:06d}.png"
        Image.fromarray(face).save(p)
        paths.append(str(p))
    return paths


def bare(paths: list[str], model: str, threads: int) -> float:
    """Faces/s of the simplest correct loop: decode a batch, run it, repeat."""
    import onnxruntime as ort
    from PIL import Image

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t0 = time.perf_counter()
    for i in range(0, len(paths), BATCH):
        x = np.stack([np.asarray(Image.open(p).convert("L"), np.float32) / 255.0 for p in paths[i : i + BATCH]])
        sess.run(None, {name: x[..., None]})
    return len(paths) / (time.perf_counter() - t0)


def local(folder: Path, model: str, threads: int, work: Path) -> float:
    from xruntime_emotion.batch import classify

    out = Path(tempfile.mkdtemp(dir=work)) / "out.parquet"
    t0 = time.perf_counter()
    report = classify(folder, out, model=model, threads=threads)
    seconds = time.perf_counter() - t0
    assert report.present == report.inputs and report.errors == 0, report
    return report.inputs / seconds


def peak_rss(listing: Path, threads: int, work: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of the local engine in a child process over the paths in ``listing``."""
    code = (
        "import sys; from xruntime_emotion.batch import classify; "
        "r = classify(sys.argv[1], sys.argv[2], threads=int(sys.argv[3])); "
        "assert r.present == r.inputs, r"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(listing), str(work / "rss.parquet"), str(threads)], check=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # the child did not set a new maximum: unknown, report the bound
        print("note: RSS of the child could not be separated from earlier children", file=sys.stderr)
    return peak / 1024, seconds


def ray(folder: Path, threads: int, work: Path) -> None:
    import ray as ray_module

    from xruntime_emotion.batch import classify

    seen: list[float] = []

    def mark(done: int, total: int, faces: int) -> None:
        seen.append(time.perf_counter())
        if len(seen) == 2:
            mark.first = (done, seen[-1])  # type: ignore[attr-defined]

    t0 = time.perf_counter()
    ray_module.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        report = classify(folder, work / "ray.parquet", engine="ray", workers=1, threads=threads, on_progress=mark)
    finally:
        ray_module.shutdown()
    end = time.perf_counter()
    done, first = mark.first  # type: ignore[attr-defined]
    print(f"ray: start-up to first rows {first - t0:.1f} s; whole run {end - t0:.1f} s for {report.inputs} faces")
    print(f"ray: steady state {(report.inputs - done) / max(seen[-1] - first, 1e-9):,.0f} faces/s after the first rows")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--int8", type=Path, help="an int8 ONNX model (from `xemotion export --format onnx-int8`)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rss-inputs", type=int, default=0)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()

    from xruntime_emotion.weights import default_onnx_path

    models = {"fp32": str(default_onnx_path())}
    if args.int8:
        models["int8"] = str(args.int8)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        crops = work / "crops"
        crops.mkdir()
        print(f"writing {args.faces} PNG crops...", file=sys.stderr)
        paths = write_crops(crops, args.faces)
        for p in paths:  # page cache warm for every contender
            Path(p).read_bytes()
        print(f"{args.faces} 48x48 PNG crops, {args.threads} inference threads, {os.cpu_count()} cores")
        for name, model in models.items():
            runs: dict[str, list[float]] = {"bare": [], "local": []}
            for r in range(args.rounds):
                print(f"{name}: round {r + 1}/{args.rounds}", file=sys.stderr)
                runs["bare"].append(bare(paths, model, args.threads))
                runs["local"].append(local(crops, model, args.threads, work))
            b, loc = statistics.median(runs["bare"]), statistics.median(runs["local"])
            print(
                f"{name}: bare loop {b:,.0f} faces/s; local engine {loc:,.0f} faces/s "
                f"({loc / b:.0%} of the bare loop; medians of {args.rounds} alternating rounds)"
            )
        if args.rss_inputs:
            listing = work / "paths.txt"
            listing.write_text("\n".join(np.resize(np.array(paths), args.rss_inputs)) + "\n")
            mb, seconds = peak_rss(listing, args.threads, work)
            rate = args.rss_inputs / seconds
            print(f"local engine on {args.rss_inputs:,} inputs: peak RSS {mb:,.0f} MB, {rate:,.0f} inputs/s")
        if args.ray:
            ray(crops, args.threads, work)


if __name__ == "__main__":
    main()
