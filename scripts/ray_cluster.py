"""`xemotion classify --engine ray` on a two-node Ray cluster made on this machine, and when a node is lost.

    python scripts/ray_cluster.py [--faces 2000] [--json result.json]

Starts a head (`ray start --head --num-cpus 1`) and a second node (`ray start --address 127.0.0.1:PORT
--num-cpus 1`), each with a temporary folder of its own, writes ``--faces`` 48x48 PNG crops (the shipped
FER2013 sample, repeated), classifies them with the local engine for reference, then on the cluster:
1. the defaults (no --workers, --threads): every input once, the labels and probabilities of the local
   engine, and how many actors ran;
2. --threads 2, which no node has: one error line within --placement-timeout;
3. --workers 3, one more actor than the nodes hold: one warning line, and the run done by 2 actors;
4. the defaults again, with the second node's raylet killed (SIGKILL) once the first part file is
   written: the warning line (and when it came), every input once, the local engine's labels.
Then it stops both nodes and checks that none of their processes is left. Each node is started in a
session of its own and stopped by that session's id: `ray stop` would end every Ray process on the
machine, other users' included. Linux only (it reads /proc). Figures go to stdout; exits 1 if a check
fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "xruntime_emotion" / "samples" / "fer2013_training_sample.npz"
RAY = Path(sys.executable).with_name("ray")  # the ray CLI of this environment, else the one on PATH
RAY_CLI = str(RAY) if RAY.exists() else "ray"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_of(pid: int) -> int | None:
    """The session id of a process (/proc/PID/stat), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[3])  # after the name: state, ppid, pgrp, session


def in_sessions(sessions: Sequence[int]) -> list[int]:
    """The live processes of those sessions."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and session_of(int(entry.name)) in sessions:
            found.append(int(entry.name))
    return found


class LocalCluster:
    """Ray nodes on this machine of ``cpus`` CPUs each, the first the head; each node's processes (its
    workers included) share a session that ``ray start`` opened, by whose id they are stopped. The cluster
    asks for a token of its own: a driver joins it with ``env`` (RAY_AUTH_MODE, RAY_AUTH_TOKEN); without
    one, Ray would turn token auth on for the head alone whenever ~/.ray/auth_token exists, and the second
    node could not join."""

    def __init__(self, root: Path, cpus: Sequence[int] = (1, 1)) -> None:
        self.root = root
        self.cpus = tuple(cpus)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.sessions: list[int] = []
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    def _start(self, i: int, *args: str) -> None:
        temp = self.root / f"n{i}"
        cmd = [RAY_CLI, "start", *args, "--num-cpus", str(self.cpus[i]), "--temp-dir", str(temp)]
        cmd += ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        cmd += ["--dashboard-agent-listen-port", str(free_port())]  # two nodes on one machine: not the default
        log = (self.root / f"n{i}.log").open("w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env, start_new_session=True)
        self.sessions.append(proc.pid)  # a new session: its id is the pid of its first process
        if proc.wait(timeout=120) != 0:
            raise RuntimeError(f"ray start failed: {(self.root / f'n{i}.log').read_text()[-2000:]}")

    def __enter__(self) -> LocalCluster:
        try:
            self._start(0, "--head", "--port", str(self.port), "--include-dashboard", "false",
                        "--ray-client-server-port", str(free_port()))  # fmt: skip
            for i in range(1, len(self.cpus)):
                self._start(i, "--address", self.address)
            self.wait_for_nodes(len(self.cpus))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        code = (
            "import logging, sys, time, ray\n"
            f"ray.init(address={self.address!r}, logging_level=logging.ERROR, log_to_driver=False)\n"
            f"end = time.time() + {timeout}\n"
            f"while sum(x['Alive'] for x in ray.nodes()) < {n} and time.time() < end: time.sleep(0.2)\n"
            f"sys.exit(sum(x['Alive'] for x in ray.nodes()) < {n})\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=self.env, timeout=timeout + 60)
        if done.returncode:
            raise RuntimeError(f"fewer than {n} Ray nodes came up within {timeout} s")

    def raylet(self, i: int) -> int:
        """The pid of node i's raylet."""
        for pid in in_sessions([self.sessions[i]]):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
        raise RuntimeError(f"node {i} has no raylet")

    def processes(self) -> list[int]:
        return in_sessions(self.sessions)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM to every process of the nodes' sessions, SIGKILL to those left after ``grace`` seconds;
        raises if any is still there."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + wait
            while self.processes() and time.monotonic() < end:
                time.sleep(0.2)
        if self.processes():
            raise RuntimeError(f"Ray processes left after stopping: {self.processes()}")


def write_faces(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    with np.load(SAMPLE) as z:
        faces = np.concatenate([z[k] for k in z.files if z[k].ndim == 3])
    for i in range(n):
        Image.fromarray(faces[i % len(faces)]).save(folder / f"{i:05d}.png")


class Run:
    """`xemotion classify` in a child process; its stderr lines kept with the second each came at."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "xruntime_emotion.cli", "classify", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((round(time.monotonic() - self.t0, 1), line.rstrip("\n")))

    def wait(self, timeout: float = 300) -> Run:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        self.seconds = round(time.monotonic() - self.t0, 1)
        return self

    def first(self, pattern: str) -> tuple[float, str] | None:
        return next(((t, s) for t, s in self.lines if re.search(pattern, s)), None)


def rows(output: Path) -> dict[str, Any]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(output) if output.suffix == ".csv" else pq.read_table(output)
    return table.sort_by("index").to_pydict()


def same_as(reference: dict[str, Any], output: Path, n: int) -> str | None:
    """Why the output is not every input once with the reference's labels and probabilities (None if it is)."""
    got = rows(output)
    if sorted(got["index"]) != list(range(n)):
        return f"indices: {len(got['index'])} rows, {len(set(got['index']))} distinct, of {n}"
    if got["label"] != reference["label"]:
        return f"{sum(a != b for a, b in zip(got['label'], reference['label']))} labels differ"
    a = np.array([got[k] for k in LABELS], np.float64)
    b = np.array([reference[k] for k in LABELS], np.float64)
    return None if np.allclose(a, b, atol=1e-6, rtol=0) else f"probabilities differ by {np.abs(a - b).max():.2e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xray-"))  # short: Ray's socket paths live under it
    result: dict[str, Any] = {"faces": args.faces}
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            failed.append(what)

    try:
        faces = root / "faces"
        write_faces(faces, args.faces)
        local = Run(str(faces), "-o", str(root / "local.csv")).wait()
        summary = local.first(r"^classify: ")
        check(local.proc.returncode == 0, f"local engine: {summary}")
        reference = rows(root / "local.csv")
        result["local"] = {"seconds": local.seconds, "summary": summary and summary[1]}
        t = time.monotonic()
        with LocalCluster(root, (1, 1)) as cluster:
            result["cluster_start_s"] = round(time.monotonic() - t, 1)
            ray = ["--engine", "ray", "--address", cluster.address]

            run = Run(str(faces), "-o", str(root / "defaults.parquet"), *ray, env=cluster.env).wait()
            summary = run.first(r"^classify: ")
            result["defaults"] = {"seconds": run.seconds, "summary": summary and summary[1]}
            check(run.proc.returncode == 0, f"defaults: exit {run.proc.returncode} in {run.seconds} s")
            check(bool(summary and "2 Ray actors on 2 nodes" in summary[1]), f"defaults: {summary}")
            why = same_as(reference, root / "defaults.parquet", args.faces) if run.proc.returncode == 0 else "no run"
            check(why is None, f"defaults: every input once, the local engine's labels ({why or 'yes'})")

            run = Run(str(faces), "-o", str(root / "threads.parquet"), *ray, "--threads", "2",
                      "--placement-timeout", "5", env=cluster.env).wait()  # fmt: skip
            err = [s for _, s in run.lines]
            result["threads_2"] = {"seconds": run.seconds, "stderr": err}
            check(run.proc.returncode == 1 and len(err) == 1 and err[0].startswith("error: "),
                  f"--threads 2: one error line in {run.seconds} s: {err}")  # fmt: skip
            check(not (root / "threads.parquet").exists(), "--threads 2: no output left")

            run = Run(str(faces), "-o", str(root / "workers.parquet"), *ray, "--workers", "3",
                      "--placement-timeout", "5", env=cluster.env).wait()  # fmt: skip
            warnings = [s for _, s in run.lines if s.startswith("warning: ")]
            summary = run.first(r"^classify: ")
            result["workers_3"] = {"seconds": run.seconds, "warnings": warnings, "summary": summary and summary[1]}
            check(run.proc.returncode == 0 and len(warnings) == 1, f"--workers 3: one warning: {warnings}")
            check(bool(summary and "2 Ray actors on 2 nodes" in summary[1]), f"--workers 3: {summary}")

            out = root / "lost.parquet"
            run = Run(str(faces), "-o", str(out), *ray, "--part-rows", "100", env=cluster.env)
            while not list(out.glob("part-*.parquet")) and run.proc.poll() is None:
                time.sleep(0.05)
            killed_at = round(time.monotonic() - run.t0, 1)
            os.kill(cluster.raylet(1), signal.SIGKILL)
            run.wait()
            warned = run.first(r"^warning: .*left the cluster")
            summary = run.first(r"^classify: ")
            result["node_lost"] = {
                "seconds": run.seconds,
                "raylet_killed_at_s": killed_at,
                "warning_at_s": warned and warned[0],
                "warning": warned and warned[1],
                "summary": summary and summary[1],
            }
            check(run.proc.returncode == 0, f"node lost: exit {run.proc.returncode} in {run.seconds} s")
            check(warned is not None, f"node lost: raylet killed at {killed_at} s, warned: {warned}")
            why = same_as(reference, out, args.faces) if run.proc.returncode == 0 else "no run"
            check(why is None, f"node lost: every input once, the local engine's labels ({why or 'yes'})")
            t = time.monotonic()
        result["cluster_stop_s"] = round(time.monotonic() - t, 1)
        check(not cluster.processes(), "stopped: no Ray process of the cluster left")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["failed"] = failed
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
