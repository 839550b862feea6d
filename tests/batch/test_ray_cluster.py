"""The Ray engine on a real cluster: two 1-CPU nodes started on this machine by `ray start`
(scripts/ray_cluster.py), joined by `classify --engine ray --address`. Defaults that fit the nodes, an
actor no node can hold, fewer actors than asked, Ray's own log lines kept off the terminal. The cluster's
processes are stopped (by session id) when the module ends. Losing a node mid-run is checked by the
script, where a run is long enough for Ray to notice (see BENCHMARKS.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import _script, on_a_terminal

from xruntime_emotion import LABELS
from xruntime_emotion.batch import classify_table
from xruntime_emotion.batch.ray_engine import PLACEMENT_ENV, Plan, placement_timeout, plan
from xruntime_emotion.errors import XEmotionError

FACES = 200


def test_the_defaults_fit_the_nodes_not_the_cluster_total() -> None:
    assert plan([1, 1], None, None) == Plan(2, 1, (1, 1))  # was: 1 actor of 2 CPUs, which no node has
    assert plan([4, 2], None, None) == Plan(3, 2, (4, 2))  # the smallest node's CPUs, as many as fit
    assert plan([0, 8], None, None) == Plan(1, 8, (8,))  # a head without CPUs takes no actor
    assert plan([8], 2, None) == Plan(2, 4, (8,))  # the most CPUs each that still lets 2 fit
    assert plan([3, 1], 2, None) == Plan(2, 1, (3, 1))
    assert plan([1], 3, None) == Plan(3, 1, (1,))  # more than fit: asked for as given (placement decides)
    assert plan([1], None, 2) == Plan(1, 2, (1,))
    assert plan([], None, None) == Plan(1, 1, ())
    assert Plan(2, 1, (1, 1)).nodes() == "2 nodes of 1 CPU" and Plan(1, 1, (4, 1)).nodes() == "2 nodes of 1, 4 CPUs"


def test_the_placement_timeout_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLACEMENT_ENV, raising=False)
    assert placement_timeout() == 60.0
    monkeypatch.setenv(PLACEMENT_ENV, "2.5")
    assert placement_timeout() == 2.5
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv(PLACEMENT_ENV, bad)
        with pytest.raises(XEmotionError, match=PLACEMENT_ENV):
            placement_timeout()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two nodes of 1 CPU each; stopped, and checked gone, at the end."""
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    if not Path("/proc/self/stat").exists():
        pytest.skip("the script finds a node's processes in /proc (Linux)")
    root = Path(tempfile.mkdtemp(prefix="xray-"))  # short: Ray's socket paths live under it
    try:
        with _script("ray_cluster").LocalCluster(root, (1, 1)) as nodes:
            yield nodes
        assert not nodes.processes()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def joined(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cluster, with its token in this process's environment (which the CLI's processes inherit)."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(name, cluster.env[name])
    return cluster


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray") / "faces"
    _script("ray_cluster").write_faces(folder, FACES)
    return folder


def on(cluster: Any) -> list[str]:
    """The options that run on the cluster; batches of 32, so that the 200 inputs give both actors work."""
    return ["--engine", "ray", "--address", cluster.address, "--batch", "32"]


def classify(*args: str, timeout: float = 50) -> tuple[subprocess.CompletedProcess[str], float]:
    """`xemotion classify ARGS` in a child process, and its seconds; a hang fails the test at ``timeout``."""
    t0 = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "xruntime_emotion.cli", "classify", *args],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"classify {' '.join(args)} still running after {timeout} s")
    return done, time.monotonic() - t0


def test_the_defaults_run_one_actor_on_each_1_cpu_node(joined: Any, faces: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    done, _ = classify(str(faces), "-o", str(tmp_path / "out.parquet"), *on(joined))
    assert done.returncode == 0, done.stderr
    assert f"{FACES} rows for {FACES} of {FACES} inputs" in done.stdout
    lines = done.stderr.splitlines()  # the summary alone: no Ray log line on stderr
    assert len(lines) == 1 and lines[0].startswith("classify: "), lines
    assert "; 2 Ray actors on 2 nodes;" in lines[0]
    got = pq.read_table(tmp_path / "out.parquet").sort_by("index")
    local = classify_table(faces)
    assert got.column("index").to_pylist() == list(range(FACES))
    assert got.column("label").to_pylist() == local.column("label").to_pylist()
    a = np.array([got.column(k).to_numpy() for k in LABELS])
    b = np.array([local.column(k).to_numpy() for k in LABELS])
    assert np.abs(a - b).max() <= 1e-6


def test_an_actor_no_node_can_hold_is_one_error_line_within_the_timeout(
    joined: Any, faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.parquet"
    ray = [*on(joined), "--threads", "2", "--placement-timeout", "3"]
    done, seconds = classify(str(faces), "-o", str(out), *ray)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: ray: no actor of 2 CPUs could be placed within 3 s (the placement timeout); "
        "the cluster has 2 nodes of 1 CPU"
    ]
    assert seconds < 3 + 25  # the timeout, and the start and connection of a Python process with Ray
    assert not out.exists()


def test_fewer_actors_than_asked_is_one_warning_and_the_summary_counts_those_that_ran(
    joined: Any, faces: Path, tmp_path: Path
) -> None:
    ray = [*on(joined), "--workers", "3", "--placement-timeout", "3"]
    done, _ = classify(str(faces), "-o", str(tmp_path / "out.csv"), *ray)
    assert done.returncode == 0, done.stderr
    warning, summary = done.stderr.splitlines()
    assert warning == (
        "warning: ray: only 2 of 3 actors of 1 CPU could be placed within 3 s (the cluster has 2 nodes of 1 CPU); "
        "running 2"
    )
    assert summary.startswith("classify: ") and "; 2 Ray actors on 2 nodes;" in summary
    assert f"({FACES} = {FACES})" in summary


def test_rays_own_log_lines_go_to_the_log_not_the_terminal(joined: Any, faces: Path, tmp_path: Path) -> None:
    log = tmp_path / "ray.log"
    args = [
        "classify",
        str(faces),
        "-o",
        str(tmp_path / "out.parquet"),
        *on(joined),
        "--workers",
        "2",
        "--threads",
        "1",
    ]
    drawn = on_a_terminal(["--log", str(log), *args], timeout=50)
    for chatter in (b"Starting execution", b"xecution finished", b"Progress bars disabled", b"Execution plan"):
        assert chatter not in drawn, drawn[-3000:]
    logged = log.read_text()
    assert "Starting execution of Dataset" in logged and "Progress bars disabled" in logged
    assert "execution finished" in logged
    assert re.search(rb"classify: .*2 Ray actors on 2 nodes", drawn), drawn[-2000:]
