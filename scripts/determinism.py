"""Fresh-process export determinism: every export of a format must give the same bytes.

    python scripts/determinism.py [--runs 20] [--format onnx --format onnx-int8 ...] [--jobs 1]

Each run exports one format in a new Python process with its own PYTHONHASHSEED (the run number) and
records the artifact's sha256 and node (operator) count. Progress goes to stderr; stdout gets one line
per format with its distinct sha256s and node counts. Exits 1 if any format gave more than one sha256.
The int8 formats calibrate on the shipped sample (as `xemotion export` does by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from xruntime_emotion.model.catalog import FORMATS as CATALOG

FORMATS = tuple(f.name for f in CATALOG.values() if f.exported and f.runs_on_host)
CALIBRATED = tuple(f.name for f in CATALOG.values() if f.calibrated)
MARK = "DETERMINISM "


def calibration() -> Any:
    """The int8 calibration sample: the shipped one."""
    from xruntime_emotion.model.calibration import shipped_sample

    return shipped_sample()


def child(fmt: str) -> None:
    """Export ``fmt`` once into a temporary folder; print its sha256 and node count."""
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export
    from xruntime_emotion.model.ir import ModelIR
    from xruntime_emotion.runtime.inspection import inspect_bytes

    ctx = ExportContext(ModelIR.default(), ExportOptions(), calibration() if fmt in CALIBRATED else None)
    with tempfile.TemporaryDirectory(prefix="xemotion-det-") as d:
        entry = export(ctx, [fmt], Path(d))["artifacts"][fmt]
        data = (Path(d) / entry["file"]).read_bytes()
    info = {"sha256": hashlib.sha256(data).hexdigest(), "nodes": len(inspect_bytes(data).operators)}
    print(MARK + json.dumps(info), flush=True)


def run_once(fmt: str, seed: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", fmt]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise SystemExit(f"{fmt} run with PYTHONHASHSEED={seed} failed (exit {proc.returncode}):\n{tail}")
    out: dict[str, Any] = json.loads(lines[-1][len(MARK) :])
    took = time.monotonic() - start
    print(f"{fmt} seed {seed}: {out['sha256'][:12]} {out['nodes']} nodes ({took:.1f} s)", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="fresh processes per format (default 20)")
    ap.add_argument("--format", action="append", choices=FORMATS, help="repeatable; default: all four")
    ap.add_argument("--jobs", type=int, default=1, help="processes at a time (default 1)")
    ap.add_argument("--child", choices=FORMATS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    formats = args.format or list(FORMATS)
    unstable = []
    for fmt in formats:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(run_once, [fmt] * args.runs, range(args.runs)))
        shas = Counter(r["sha256"] for r in results)
        nodes = Counter(r["nodes"] for r in results)
        listed = ", ".join(f"{sha[:12]} x{n}" for sha, n in shas.most_common())
        print(f"{fmt}: {len(shas)} distinct sha256 in {args.runs} runs ({listed}); nodes {dict(nodes)}", flush=True)
        if len(shas) > 1:
            unstable.append(fmt)
    if unstable:
        print(f"NOT DETERMINISTIC: {', '.join(unstable)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
