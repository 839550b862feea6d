"""The data-set marker: tests that need FER2013 skip without it (CI's first step too) and fail under
--require-data (CI's second step); a test that needs the data set without saying so fails the first step."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

PROBE = """
import os
import pytest
from helpers import run_cli

def test_asks_for_the_fixture(fer):
    assert len(fer.labels) > 0

@pytest.mark.fer2013
def test_says_so_with_the_marker():
    assert os.environ["XEMOTION_DATA"]

def test_needs_data_without_saying_so(tmp_path):
    r = run_cli("evaluate", "--model", "emotion_float32.onnx")
    assert r.returncode == 0, r.stderr

def test_needs_nothing():
    assert True
"""


def _run(folder: Path, *args: str, data: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XEMOTION_DATA"}
    env["CI"] = "true"
    if data is not None:
        env["XEMOTION_DATA"] = data
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return {name: outcome for name, outcome in re.findall(r"^\S+::(\w+) (PASSED|FAILED|SKIPPED|ERROR)", r.stdout, re.M)}


def test_ci_steps_judge_data_tests_as_stated(tmp_path: Path) -> None:
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "empty").mkdir()

    first = _run(tmp_path, data=None)  # step 1: the README's command, no data set, CI=true
    assert first == {
        "test_asks_for_the_fixture": "SKIPPED",
        "test_says_so_with_the_marker": "SKIPPED",
        "test_needs_data_without_saying_so": "FAILED",
        "test_needs_nothing": "PASSED",
    }, first
    second = _run(tmp_path, "-m", "fer2013", "--require-data", data=str(tmp_path / "empty"))  # step 2, no data
    red = {"FAILED", "ERROR"}  # a failure in setup is an error: red either way
    assert second.keys() == {"test_asks_for_the_fixture", "test_says_so_with_the_marker"}, second
    assert set(second.values()) <= red, second


def test_ci_runs_both_steps() -> None:
    ci = (TESTS.parent / ".ci" / "run").read_text()
    assert re.search(r"^unset XEMOTION_DATA$", ci, re.M)
    assert re.search(r'^XEMOTION_DATA="\$data" pytest -q -m fer2013 --require-data$', ci, re.M)
