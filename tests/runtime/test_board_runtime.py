"""What an i.MX board's Python has: NumPy < 2 and ``tflite_runtime`` (2.14, as BSPs ship it), no LiteRT and
no TensorFlow. The base install runs there, and `verify` runs the tflite_runtime pairs (no delegate: the CPU).

pip fetches numpy 1.26 and tflite-runtime 2.14 (wheels exist for x86_64 and aarch64, CPython 3.9-3.11).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOARD_PINS = ("numpy<2", "tflite-runtime==2.14.0")

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12) or platform.machine() not in ("x86_64", "aarch64"),
    reason="tflite-runtime 2.14 has wheels for CPython 3.9-3.11 on x86_64 and aarch64 only",
)


@pytest.fixture(scope="module")
def board_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("board")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(d)
    r = subprocess.run(
        [d / "bin" / "python", "-m", "pip", "install", "-q", *BOARD_PINS, str(ROOT)],
        capture_output=True, text=True, timeout=900, cwd=d,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def _run(env: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    # cwd outside the checkout, so that the installed package is imported, not the source tree
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=env)


CHECK = """
import importlib.util, sys, numpy
from xruntime_emotion import EmotionClassifier
absent = [m for m in ("ai_edge_litert", "tensorflow") if importlib.util.find_spec(m)]
assert not absent and numpy.__version__.startswith("1."), (absent, numpy.__version__)
clf = EmotionClassifier.from_tflite(sys.argv[1])
p = clf.classify(sys.argv[2])
print(clf.backend.runtime, p.label, p.probability)
"""


def test_tflite_runtime_classifies_on_numpy_1(board_venv: Path, artifacts: Path, happy_jpg: Path) -> None:
    r = _run(board_venv, board_venv / "bin" / "python", "-c", CHECK, artifacts / "emotion_uint8_float32.tflite",
             happy_jpg)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    runtime, label, prob = r.stdout.split()
    assert (runtime, label) == ("tflite_runtime", "happy") and float(prob) >= 0.9


@pytest.fixture(scope="module")
def board_report(
    board_venv: Path, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path_factory.mktemp("board-verify") / "v.json"
    r = _run(board_venv, board_venv / "bin" / "xemotion", "verify", "--artifacts", artifacts,
             "--golden", ROOT / "golden", "--json", out)  # fmt: skip
    assert out.is_file(), r.stderr[-3000:]
    return r, json.loads(out.read_text())


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["pair"]: row for row in report["results"]}


def test_verify_runs_the_tflite_runtime_pairs(board_report: tuple[subprocess.CompletedProcess[str], Any]) -> None:
    r, report = board_report
    rows = _rows(report)
    fp32 = rows["tflite-fp32 × tflite_runtime"]
    assert fp32["status"] == "passed" and fp32["checks"]["max_abs_diff"] <= 1e-5
    int8 = rows["tflite-int8 × tflite_runtime"]["checks"]
    # tflite_runtime 2.14 runs int8 on TFLite's builtin kernels, exactly as the litert-builtin recording
    assert int8["recording"] == "litert-builtin" and int8["max_steps_vs_recorded"] == 0
    assert int8["max_steps_by_recording"]["litert"] > 2  # XNNPACK rounds elsewhere: why two recordings
    assert int8["happy_label"] == "happy" and int8["cases"] >= 570
    # missing runtimes are skipped with their install hint, printed as such (not eaten as Rich markup)
    for pair, extra in (("weights × keras", "export"), ("tflite-int8 × litert", "litert")):
        assert rows[pair]["status"] == "skipped" and f"xemotion[{extra}]" in rows[pair]["reason"]
        assert f"xemotion[{extra}]" in r.stdout
