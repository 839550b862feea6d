"""The runtime install has no TensorFlow: embedding works, and ONNX export goes straight from the IR."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from helpers import write_upstream_h5

from xruntime_emotion.model.ir import ModelIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the base install only."""
    d = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(d)
    py = d / "bin" / "python"
    r = subprocess.run(
        [py, "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True, timeout=900, cwd=d
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def _py(env: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the checkout, so that the installed package is imported, not the source tree
    return subprocess.run(
        [env / "bin" / "python", "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=env
    )


EMBED = """
import importlib.util, sys
assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed"
from xruntime_emotion import EmotionClassifier
from xruntime_emotion.weights import default_onnx_path
p = EmotionClassifier.from_onnx(default_onnx_path()).classify(sys.argv[1])
bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx")]
assert not bad, bad
print(p.label, round(p.probability, 4))
"""


def test_base_install_embeds_without_tensorflow(bare_venv: Path, happy_jpg: Path) -> None:
    r = _py(bare_venv, EMBED, str(happy_jpg))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[0] == "happy"
    r = subprocess.run([bare_venv / "bin" / "xemotion", "--help"], capture_output=True, text=True, cwd=bare_venv)
    assert r.returncode == 0 and "export" in r.stdout
    r = subprocess.run(
        [bare_venv / "bin" / "xemotion", "predict", str(happy_jpg)], capture_output=True, text=True, cwd=bare_venv
    )
    assert r.returncode == 0 and "happy" in r.stdout, r.stderr


def test_export_onnx_without_tensorflow(bare_venv: Path, tmp_path: Path, random_ir: ModelIR, fer, happy_jpg) -> None:
    from helpers import inputs64

    r = subprocess.run([bare_venv / "bin" / "xemotion", "export", "--format", "onnx", "--weights", str(tmp_path)],
                       capture_output=True, text=True, cwd=bare_venv)  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr  # a folder is no weights file
    r = subprocess.run([bare_venv / "bin" / "python", "-m", "pip", "install", "-q", f"{ROOT}[onnx]"],
                       capture_output=True, text=True, timeout=900, cwd=bare_venv)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    h5 = tmp_path / "facial_expression_model_weights.h5"
    write_upstream_h5([random_ir.weights[layer.name] for layer in random_ir.weighted_layers], h5)
    out = tmp_path / "out"
    r = subprocess.run([bare_venv / "bin" / "xemotion", "export", "--format", "onnx", "--weights", str(h5), "-o",
                        str(out)], capture_output=True, text=True, timeout=300, cwd=bare_venv)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "TensorFlow is not installed" in r.stderr
    model = out / "emotion_float32_ir.onnx"
    check = "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print('ok')"
    assert _py(bare_venv, check, str(model)).stdout.strip() == "ok"
    x = inputs64(fer, happy_jpg)
    import onnxruntime as ort

    got = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(got - random_ir.forward(x)).max() <= 1e-5
