"""What an app that embeds the classifier gets: a start that imports only what it uses, and a quiet stderr."""

from __future__ import annotations

import ast
import json
import os
import shutil
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


# What an app's start may import beyond a bare onnxruntime process that opened and ran the same file: xemotion's own
# modules, OpenSSL's sha256 and importlib.util (runtime lookup); default() also json (the package's manifest).
START_EXTRA = {"_hashlib", "importlib.util", "importlib._abc"}
MANIFEST_EXTRA = {"json", "json.decoder", "json.encoder", "json.scanner", "_json"}


@pytest.mark.parametrize("how", ["default", "from_onnx"])
def test_an_apps_start_imports_nothing_a_bare_onnxruntime_start_does_not(how: str, tmp_path: Path) -> None:
    """No pathlib, dataclasses, json (for a cached ``from_onnx``), subprocess or tempfile: each costs a start
    milliseconds against a 1.1x budget of about 15 ms (scripts/cold_start.py)."""
    from xruntime_emotion.weights import default_onnx_path

    model = Path(shutil.copy(default_onnx_path(), tmp_path / "exported.onnx"))
    code = """
import sys
import numpy as np
import onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
s.run(None, {s.get_inputs()[0].name: np.zeros((1, 48, 48, 1), np.float32)})
bare = set(sys.modules)
from xruntime_emotion import EmotionClassifier
clf = EmotionClassifier.default() if sys.argv[2] == "default" else EmotionClassifier.from_onnx(sys.argv[1])
clf.predict(np.zeros((48, 48), np.uint8))
print(sorted(m for m in set(sys.modules) - bare if not m.startswith("xruntime_emotion")))
"""
    env = {**os.environ, "XEMOTION_PROBE_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code, str(model), how], capture_output=True, text=True, env=env)
            for _ in range(2)]  # fmt: skip
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-3000:]
    if how == "from_onnx":  # the first start probed the file; the second found the verdict
        assert len(os.listdir(tmp_path / "cache")) == 1
    extra = set(ast.literal_eval(runs[1].stdout.strip()))
    assert extra <= START_EXTRA | (MANIFEST_EXTRA if how == "default" else set()), sorted(extra)
