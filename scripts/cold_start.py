"""Cold start: a whole app process that embeds xemotion, against a bare onnxruntime process on the same file.

    python scripts/cold_start.py [--pairs 15] [--threads N]

Each sample is one whole process, from its start to its exit, that loads the model and classifies one face:

- ``bare``: ``import numpy, onnxruntime``; ``InferenceSession(file)``; one ``run``;
- ``default``: ``import xruntime_emotion``; ``EmotionClassifier.default()`` (the shipped model, its sha256
  checked against the package manifest); one ``predict``;
- ``from_onnx``: ``EmotionClassifier.from_onnx(copy)`` of an exported file (a copy of the shipped model in
  a temporary folder) whose probe passed in an earlier process: the verdict comes from the probe cache
  (a temporary one, ``$XEMOTION_PROBE_CACHE``);
- ``from_onnx, no cache``: the same with ``XEMOTION_PROBE_CACHE=0``, so every start pays the probe, as the
  first open of a file does.

Both sides use the same onnxruntime session options (those ``OrtBackend`` sets: all graph optimisations,
log level 3, the CPU provider, onnxruntime's default threads unless ``--threads``) and the same input (a black
face, which is all zeros either way). Each comparison runs ``--pairs`` pairs, the order alternating
(bare first, then second); the figure is the median of the per-pair ratios of wall time. The median ratio
of CPU time (user and system, of the process, its threads and the probe processes it waited for) is
printed beside it: on a busy machine it moves less than wall time. The package's bytecode is
compiled first, as ``pip install`` does (a checkout run with ``PYTHONDONTWRITEBYTECODE`` would otherwise
compile every module at every start, which no installed app does). Where the time goes at import:
``python -X importtime -c "import xruntime_emotion"``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xruntime_emotion"
SHIPPED = PACKAGE / "weights" / "emotion_float32.onnx"

BARE = """
import sys
import numpy as np
import onnxruntime as ort
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
threads = int(sys.argv[2])
if threads:
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
opts.log_severity_level = 3
session = ort.InferenceSession(sys.argv[1], sess_options=opts, providers=["CPUExecutionProvider"])
p = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 48, 48, 1), np.float32)})[0]
print(int(p.argmax()), float(p.max()))
"""

XEMOTION = """
import sys
import numpy as np
from xruntime_emotion import EmotionClassifier
threads = int(sys.argv[2]) or None
clf = EmotionClassifier.default(threads=threads) if sys.argv[1] == "default" else EmotionClassifier.from_onnx(
    sys.argv[1], threads=threads
)
p = clf.predict(np.zeros((48, 48), np.uint8))
print(int(p.argmax()), float(p.max()))
"""


def _cpu() -> float:
    """CPU seconds (user and system) of the waited-for children so far."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run(code: str, model: str, threads: int, env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds and CPU seconds of one whole process, and what it printed."""
    c0, t0 = _cpu(), time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code, model, str(threads)], capture_output=True, text=True, env=env, cwd=cwd
    )
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    if r.returncode != 0:
        sys.exit(f"error: a timed process failed:\n{r.stderr[-2000:]}")
    return seconds, cpu, r.stdout.strip()


def compare(
    name: str,
    xemotion: str,
    bare: str,
    args: argparse.Namespace,
    env: dict[str, str],
    cwd: Path,
    extra: dict[str, str] | None = None,
) -> dict:
    """``--pairs`` alternating pairs of (bare, xemotion) processes; their median times and ratios. ``extra``:
    environment for the xemotion side only."""
    extra = extra or {}
    pairs = []
    for i in range(args.pairs):
        sides = [("bare", BARE, bare), (name, XEMOTION, xemotion)]
        out = {}
        for side, code, model in sides if i % 2 == 0 else sides[::-1]:
            out[side] = run(code, model, args.threads, env if side == "bare" else {**env, **extra}, cwd)
        if out["bare"][2].split()[0] != out[name][2].split()[0]:
            sys.exit(f"error: the two sides disagree: {out}")
        pairs.append((out["bare"], out[name]))
    ratios = [x[0] / b[0] for b, x in pairs]
    return {
        "side": name,
        "pairs": len(pairs),
        "bare_s": statistics.median(b[0] for b, _ in pairs),
        "xemotion_s": statistics.median(x[0] for _, x in pairs),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "cpu_ratio": statistics.median(x[1] / b[1] for b, x in pairs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=15, help="alternating pairs per comparison (default 15)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads, both sides (0: its default)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    import onnxruntime

    compileall.compile_dir(PACKAGE, quiet=1)
    with tempfile.TemporaryDirectory(prefix="xemotion-cold-") as tmp:
        work = Path(tmp)
        exported = Path(shutil.copy(SHIPPED, work / "exported.onnx"))
        env = {**os.environ, "XEMOTION_PROBE_CACHE": str(work / "cache")}
        run(XEMOTION, str(exported), args.threads, env, work)  # its first open pays the probe
        entries = [p for p in (work / "cache").iterdir() if not p.name.startswith(".")]
        if len(entries) != 1:
            sys.exit(f"error: the first open left {len(entries)} probe verdicts, expected 1")
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        rows = [
            compare("default", "default", str(SHIPPED), args, env, work),
            compare("from_onnx", str(exported), str(exported), args, env, work),
            compare(
                "from_onnx, no cache", str(exported), str(exported), args, env, work, {"XEMOTION_PROBE_CACHE": "0"}
            ),
        ]
        after = os.getloadavg() if hasattr(os, "getloadavg") else None
    info = {
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": load,
        "load_after": after,
    }
    print(f"python {info['python']}, onnxruntime {info['onnxruntime']}, {info['machine']}; load average "
          f"before {load and round(load[0], 2)}, after {after and round(after[0], 2)}")  # fmt: skip
    print("| xemotion side | pairs | bare onnxruntime | xemotion | ratio (median) | ratio (min-max) | CPU-time ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['side']}` | {r['pairs']} | {r['bare_s']:.3f} s | {r['xemotion_s']:.3f} s | "
              f"{r['ratio']:.3f}x | {r['ratio_min']:.2f}-{r['ratio_max']:.2f} | {r['cpu_ratio']:.3f}x |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
