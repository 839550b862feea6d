"""`xemotion bench`: latency, throughput, cold start and memory of each artifact × runtime,
through the EmotionClassifier API and through the runtime's bare call on the same file.

Each row runs in its own child process (so peak RSS and cold start belong to that row alone).
This prints figures; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHILD_FLAG = "--bench-child"


@dataclass(frozen=True)
class Job:
    model: str
    runtime: str | None
    threads: int
    batches: tuple[int, ...]
    runs: int
    keras: bool = False  # the DeepFace-style Keras baseline instead of an artifact


def default_models(artifacts: Path) -> list[Path]:
    """Bench's default rows: every exported kind that runs on a host CPU, from ``artifacts``; the
    shipped ONNX where the folder has no ONNX of its own."""
    from xruntime_emotion.model.catalog import FORMATS
    from xruntime_emotion.weights import default_onnx_path

    paths = []
    for f in FORMATS.values():
        if f.exported and f.runs_on_host:
            if (artifacts / f.filename).is_file():
                paths.append(artifacts / f.filename)
            elif f.filename == default_onnx_path().name:
                paths.append(default_onnx_path())
    return paths


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.array(samples) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}  # fmt: skip


def _time(fn: Callable[[], Any], runs: int, warmup: int = 20) -> list[float]:
    return _time_pair(fn, None, runs, warmup)[0]


def _time_pair(
    a: Callable[[], Any], b: Callable[[], Any] | None, runs: int, warmup: int = 20
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately, so that both see the same machine state (their ratio is fair)."""
    fns = [f for f in (a, b) if f is not None]
    for _ in range(warmup):
        for f in fns:
            f()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for f, samples in zip(fns, out):
            t = time.perf_counter()
            f()
            samples.append(time.perf_counter() - t)
    return out


def _throughput_pair(
    a: Callable[[], Any], b: Callable[[], Any], batch: int, seconds: float = 2.0
) -> tuple[float, float]:
    """Faces per second of ``a`` and ``b``, called alternately for about ``seconds`` in all."""
    a(), b()
    spent = [0.0, 0.0]
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for i, f in enumerate((a, b)):
            t = time.perf_counter()
            f()
            spent[i] += time.perf_counter() - t
        calls += 1
    return calls * batch / spent[0], calls * batch / spent[1]


def _faces(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


# Cold start in a brand-new interpreter: import, load, first prediction.
COLD = """
import json, sys, time
t0 = time.perf_counter()
from xruntime_emotion import EmotionClassifier
t1 = time.perf_counter()
clf = EmotionClassifier.from_file(sys.argv[1], **json.loads(sys.argv[2]))
t2 = time.perf_counter()
import numpy as np
clf.predict(np.full((48, 48), 128, np.uint8))
t3 = time.perf_counter()
print(json.dumps({"import": 1e3 * (t1 - t0), "load": 1e3 * (t2 - t1), "first_inference": 1e3 * (t3 - t2),
                  "total": 1e3 * (t3 - t0), "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def _options(job: Job) -> dict[str, Any]:
    if not job.threads:
        return {}
    return {"threads": job.threads}


def cold_start(job: Job) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", COLD, job.model, json.dumps(_options(job))],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-300:]}


def run_child(job: Job) -> dict[str, Any]:
    """Measure one row in this (fresh) process."""
    t0 = time.perf_counter()
    if job.keras:
        return _keras_row(job, t0)
    from xruntime_emotion._version import __version__
    from xruntime_emotion.runtime.classifier import EmotionClassifier

    clf = EmotionClassifier.from_file(job.model, runtime=job.runtime, **_options(job))
    one = _faces(1)[0]
    b = clf.backend
    native1 = b.native_input(clf_input(one))
    row: dict[str, Any] = {
        "model": Path(job.model).name,
        "runtime": b.runtime,
        "threads": job.threads,
        "fixed_batch": b.fixed_batch,
        "cold_start_ms": cold_start(job),
        "xemotion": __version__,
    }  # fmt: skip
    api, raw = _time_pair(lambda: clf.predict(one), lambda: b.raw(native1), job.runs)
    row["batch1_classifier"], row["batch1_raw"] = _percentiles(api), _percentiles(raw)
    row["batch1_ratio"] = row["batch1_classifier"]["p50_ms"] / row["batch1_raw"]["p50_ms"]
    row["throughput"] = {}
    for n in job.batches if b.fixed_batch is None else (1,):
        faces = _faces(n)
        native = b.native_input(clf_input(faces))
        api, raw = _throughput_pair(lambda f=faces: clf.predict(f), lambda x=native: b.raw(x), n)
        row["throughput"][str(n)] = {"classifier_per_s": api, "raw_per_s": raw, "ratio": api / raw}
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def clf_input(faces: np.ndarray) -> np.ndarray:
    from xruntime_emotion.runtime.preprocess import prepare

    return prepare(faces)


def _keras_row(job: Job, t0: float) -> dict[str, Any]:
    from xruntime_emotion.runtime.backends import open_backend

    model = open_backend(job.model, "keras").model  # type: ignore[attr-defined]  # the Keras model itself
    t_load = time.perf_counter()
    x = clf_input(_faces(1)[0])
    model.predict_on_batch(x)
    t_first = time.perf_counter()
    row: dict[str, Any] = {
        "model": Path(job.model).name,
        "runtime": "keras",
        "threads": job.threads,
        "cold_start_ms": {"load": 1e3 * (t_load - t0), "first_inference": 1e3 * (t_first - t_load)},
        "batch1_predict_on_batch": _percentiles(_time(lambda: model.predict_on_batch(x), max(50, job.runs // 4))),
        "batch1_call": _percentiles(_time(lambda: model(x, training=False), max(50, job.runs // 4))),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return row


def spawn(job: Job) -> dict[str, Any]:
    env = {**os.environ}
    if job.threads:
        env["OMP_NUM_THREADS"] = str(job.threads)
    r = subprocess.run(
        [sys.executable, "-m", "xruntime_emotion.check.bench", CHILD_FLAG, json.dumps(job.__dict__)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    if r.returncode != 0:
        return {"model": Path(job.model).name, "runtime": job.runtime or "auto", "error": r.stderr.strip()[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def cli_cold_start(model: str | None, image: str, repeats: int = 3) -> float:
    """Median wall time of a whole `xemotion predict` process, in ms."""
    cmd = [sys.executable, "-m", "xruntime_emotion.cli", "predict", image] + (["--model", model] if model else [])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        d = json.loads(sys.argv[2])
        d["batches"] = tuple(d["batches"])
        print(json.dumps(run_child(Job(**d))))
