"""Seeded mutation fuzzer: damaged model files through xemotion's public API, in worker processes.

    python scripts/fuzz_models.py ARTIFACTS [--count 1000] [--seed 0] [--formats onnx,tflite-fp32,tflite-int8]
                                  [--workers 1] [--probe default|always|never] [--keep DIR] [--json FILE]

ARTIFACTS is a folder from ``xemotion export`` (or model files). Each mutant is the original file with
1-3 mutations (bit flips, byte overwrites, truncation, chunk duplication or deletion) placed anywhere in
the file: half uniformly, half in the first 4 KiB or the last 8 KiB, where the structure lives. Mutant
``i`` of a format depends only on (seed, format, i), so any one can be rebuilt.

Workers are child processes that each handle many mutants and are restarted when one dies. A worker
opens a mutant with ``EmotionClassifier.from_file`` (default: TFLite probed in a helper process, see
``xruntime_emotion.runtime.safety``) and classifies a batch of 2 faces and then 1. Outcomes per mutant:
- ran: loaded and classified;
- refused: an XEmotionError (of these, "probe caught" counts files that killed the probe process);
- crashed: the worker (the host process) died; hung: no answer within --timeout;
- unexpected: any other exception, by type.
Workers run under an 8 GiB address-space cap, so that a mutant asking for absurd memory cannot take
the machine down: with ``--probe never`` such a file shows up as a refusal, not as an OOM kill.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.model.catalog import FORMATS

# every exported artifact kind that runs on a host CPU, by the catalog
FILES = {f.name: f.filename for f in FORMATS.values() if f.exported and f.runs_on_host}
INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)
# flip bits, overwrite bytes, truncate, duplicate a chunk, delete a chunk: in-place changes get past
# the parsers' offset checks more often, so they come first
WEIGHTS = (0.4, 0.3, 0.1, 0.1, 0.1)
MEMORY_GIB = 8  # address space of a worker


# ------------------------------------------------------------------------------------------ mutation
def _position(n: int, rng: np.random.Generator) -> int:
    """Anywhere in ``n`` bytes: half uniform, a quarter in the head, a quarter in the tail."""
    r = rng.random()
    if r < 0.5 or n <= 12288:
        return int(rng.integers(0, n))
    if r < 0.75:
        return int(rng.integers(0, 4096))
    return int(rng.integers(n - 8192, n))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """1-3 random mutations of ``data``."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not b:
            break
        op, p = int(rng.choice(5, p=WEIGHTS)), _position(len(b), rng)
        if op == 0:  # flip 1-8 bits
            for _ in range(int(rng.integers(1, 9))):
                q = min(len(b) - 1, p + int(rng.integers(0, 4)))
                b[q] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:  # overwrite 1-8 bytes with random or boundary values
            k = int(rng.integers(1, 9))
            if rng.random() < 0.5:
                new = rng.integers(0, 256, k, dtype=np.uint8).tobytes()
            else:
                new = bytes([INTERESTING[int(rng.integers(0, len(INTERESTING)))]]) * k
            b[p : p + k] = new[: len(b) - p]
        elif op == 2:  # truncate
            del b[p:]
        elif op == 3:  # duplicate a chunk elsewhere
            k = int(rng.integers(1, 257))
            b[_position(len(b), rng) : _position(len(b), rng)] = b[p : p + k]
        else:  # delete a chunk
            del b[p : p + int(rng.integers(1, 257))]
    return bytes(b)


def mutant(original: bytes, fmt: str, seed: int, i: int) -> bytes:
    return mutate(original, np.random.default_rng([seed, zlib.crc32(fmt.encode()), i]))


# ---------------------------------------------------------------------------------------------- worker
def _worker(probe: str) -> None:
    """Read mutant paths on stdin, answer one JSON line each (the supervisor survives our death)."""
    import resource

    from xruntime_emotion import EmotionClassifier
    from xruntime_emotion.errors import UnsafeModelError, XEmotionError

    cap = MEMORY_GIB << 30  # so that no mutant can exhaust the machine: past it, allocations fail
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # runtimes print to stdout; the protocol owns the original
    faces = np.random.default_rng(7).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    flag = {"default": None, "always": True, "never": False}[probe]
    for line in sys.stdin:
        path = line.strip()
        answer: dict[str, Any] = {"outcome": "ran"}
        try:
            clf = EmotionClassifier.from_file(path, probe=flag, threads=1)
            clf.predict(faces)
            clf.predict(faces[1])
        except UnsafeModelError as exc:
            answer = {"outcome": "refused", "error": type(exc).__name__, "probe_signal": exc.signal}
        except XEmotionError as exc:
            answer = {"outcome": "refused", "error": type(exc).__name__}
        except Exception as exc:
            answer = {"outcome": "unexpected", "error": type(exc).__name__, "message": str(exc)[:200]}
        out.write(json.dumps(answer) + "\n")
        out.flush()


# ------------------------------------------------------------------------------------------ supervisor
@dataclass
class Tally:
    format: str
    mutants: int = 0
    ran: int = 0
    refused: int = 0
    probe_caught: int = 0  # refused because the file killed (or hung) the probe process
    crashed: int = 0  # the host API process died
    hung: int = 0
    unexpected: int = 0
    refused_by: dict[str, int] = field(default_factory=dict)
    unexpected_by: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)  # crashed, hung, unexpected: mutant and seed

    def line(self) -> str:
        return (
            f"{self.format:<12} mutants {self.mutants:>5}  ran {self.ran:>5}  refused {self.refused:>5} "
            f"(probe caught {self.probe_caught})  crashed {self.crashed}  hung {self.hung}  "
            f"unexpected {self.unexpected} {dict(self.unexpected_by) if self.unexpected_by else ''}"
        )


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[1])  # the repository, for xruntime_emotion
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


class _Worker:
    def __init__(self, probe: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "--probe", probe],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "PYTHONPATH": _pythonpath(), "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    def run(self, path: Path, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.proc.kill()
            self.proc.wait()
            return {"outcome": "hung"}
        if box and box[0]:
            return dict(json.loads(box[0]))
        code = self.proc.wait()
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace").strip().splitlines()[-2:]
        return {"outcome": "crashed", "returncode": code, "stderr": " | ".join(tail)[-300:]}

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin:
            self.proc.stdin.close()
            self.proc.wait()
        self.log.close()


def fuzz(
    model: Path,
    fmt: str,
    count: int,
    *,
    seed: int = 0,
    workers: int = 1,
    probe: str = "default",
    timeout: float = 300.0,
    keep: Path | None = None,
) -> Tally:
    """Run ``count`` mutants of ``model`` through the public API; count what happened."""
    original = model.read_bytes()
    tally = Tally(fmt)
    jobs: queue.Queue[int] = queue.Queue()
    for i in range(count):
        jobs.put(i)
    results: dict[int, dict[str, Any]] = {}

    def drive(slot: int, tmp: Path) -> None:
        worker = _Worker(probe)
        path = tmp / f"mutant-{slot}{model.suffix}"
        while True:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                break
            path.write_bytes(mutant(original, fmt, seed, i))
            res = worker.run(path, timeout)
            results[i] = res
            if keep and res["outcome"] in ("crashed", "hung", "unexpected"):
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{fmt}-seed{seed}-{i}{model.suffix}").write_bytes(path.read_bytes())
            if res["outcome"] in ("crashed", "hung"):
                worker.close()
                worker = _Worker(probe)
        worker.close()

    with tempfile.TemporaryDirectory(prefix="xemotion-fuzz-") as d:
        threads = [threading.Thread(target=drive, args=(k, Path(d))) for k in range(max(1, workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    refused_by: Counter[str] = Counter()
    unexpected_by: Counter[str] = Counter()
    for i in sorted(results):
        r = results[i]
        tally.mutants += 1
        outcome = r["outcome"]
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        if outcome == "refused":
            refused_by[r["error"]] += 1
            tally.probe_caught += r.get("error") == "UnsafeModelError"
        elif outcome == "unexpected":
            unexpected_by[r["error"]] += 1
        if outcome in ("crashed", "hung", "unexpected"):
            tally.problems.append({"mutant": i, "seed": seed, **r})
    tally.refused_by, tally.unexpected_by = dict(refused_by), dict(unexpected_by)
    return tally


def find_models(paths: list[Path], formats: list[str]) -> dict[str, Path]:
    """Format -> file, from export folders or files (named as ``xemotion export`` names them)."""
    found: dict[str, Path] = {}
    for p in paths:
        for fmt in formats:
            f = p / FILES[fmt] if p.is_dir() else p
            if f.is_file() and f.name == FILES[fmt]:
                found.setdefault(fmt, f)
    missing = [f for f in formats if f not in found]
    if missing:
        raise SystemExit(f"no {', '.join(FILES[f] for f in missing)} in {', '.join(map(str, paths))}")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", type=Path, nargs="*")
    ap.add_argument("--count", type=int, default=1000, help="mutants per format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formats", default="onnx,tflite-fp32,tflite-int8")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--probe", choices=("default", "always", "never"), default="default")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant before it counts as hung")
    ap.add_argument("--keep", type=Path, help="save crashing and hanging mutants here")
    ap.add_argument("--json", type=Path, help="write the tallies as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return _worker(args.probe)
    if not args.paths:
        ap.error("give an export folder or model files")
    models = find_models(args.paths, args.formats.split(","))
    print(f"seed {args.seed}, {args.count} mutants per format, probe {args.probe}, {args.workers} worker(s)")
    tallies = []
    for fmt, path in models.items():
        tally = fuzz(
            path,
            fmt,
            args.count,
            seed=args.seed,
            workers=args.workers,
            probe=args.probe,
            timeout=args.timeout,
            keep=args.keep,
        )
        print(tally.line(), flush=True)
        for p in tally.problems:
            print(f"  {p}")
        tallies.append(tally)
    crashed = sum(t.crashed + t.hung for t in tallies)
    unexpected = sum(t.unexpected for t in tallies)
    print(f"total: {crashed} crashed or hung, {unexpected} unexpected exception types")
    if args.json:
        args.json.write_text(json.dumps([asdict(t) for t in tallies], indent=1) + "\n")
    sys.exit(1 if crashed or unexpected else 0)


if __name__ == "__main__":
    main()
