"""What an app that embeds the classifier gets: a start that imports only what it uses, and a quiet stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xruntime_emotion.runtime.backends import RUNTIMES

# imported on first use only: the batch engine and what it brings, the command line's libraries, the detector
LAZY = ("xruntime_emotion.batch", "pyarrow", "ray", "rich", "typer", "xruntime_emotion.runtime.detect", "cv2")


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_import_and_predict_load_no_batch_engine_cli_or_detector() -> None:
    code = f"""
import json, sys
import numpy as np
import xruntime_emotion
from xruntime_emotion import EmotionClassifier
p = EmotionClassifier.default().predict(np.zeros((48, 48), np.uint8))
loaded = sorted(m for m in sys.modules if m.startswith({LAZY!r}))
from xruntime_emotion import classify_table  # still there, on first use
print(json.dumps([loaded, p.shape, "xruntime_emotion.batch" in sys.modules, classify_table.__module__]))
"""
    r = _run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == [[], [1, 7], True, "xruntime_emotion.batch"]


@pytest.mark.skipif(not RUNTIMES["litert"].available(), reason="needs LiteRT (the litert extra)")
def test_from_tflite_prints_nothing_on_stderr(artifacts: Path) -> None:
    """TFLite's C++ side announced its XNNPACK delegate on fd 2, which an app cannot silence from Python."""
    code = """
import sys
import numpy as np
from xruntime_emotion import EmotionClassifier
for probe in (True, False):
    clf = EmotionClassifier.from_tflite(sys.argv[1], probe=probe)
    assert clf.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
print("ok")
"""
    r = _run(code, str(artifacts / "emotion_float32.tflite"))
    assert r.returncode == 0 and r.stdout.split() == ["ok"], r.stderr[-3000:]
    assert r.stderr == ""


@pytest.mark.skipif(not RUNTIMES["litert"].available(), reason="needs LiteRT (the litert extra)")
def test_other_stderr_output_while_an_interpreter_is_made_still_arrives(tmp_path: Path) -> None:
    """Only TFLite's INFO lines are dropped: what else reaches fd 2 meanwhile is passed on."""
    code = """
import os, sys
from xruntime_emotion.runtime.backends.litert import _without_native_info
with _without_native_info():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"ERROR: something real\\n")
    print("python's own", file=sys.stderr)
print("out")
"""
    r = _run(code)
    assert r.returncode == 0 and r.stdout == "out\n"
    assert r.stderr == "ERROR: something real\npython's own\n"
