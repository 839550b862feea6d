"""Release packaging: the built wheel carries the model, the golden set and the calibration sample, installs into
a fresh TensorFlow-free venv and predicts; with the export extras, the README's main job runs on a fresh machine.

The sdist, wheel and venvs come from docker/install.sh: the same steps as the Dockerfile's stages.
pip fetches the pinned dependencies (from its cache where it has them), so this takes a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xruntime_emotion import LABELS, EmotionClassifier, __version__
from xruntime_emotion.model.data import FerData

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "install.sh"
GOLDEN = ROOT / "golden"
FACE_ROW = 32414  # a PrivateTest row: NXP's test.jpg, a happy face


def clean_env() -> dict[str, str]:
    """This process's environment without the dev venv, so nothing leaks into the fresh one."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**clean_env(), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run("bash", SCRIPT, "wheel", out, cwd=out)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    wheels = list(dist.glob("xemotion-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def install(kind: str, wheel: Path, factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel, as the Dockerfile's stage ``kind`` (runtime or export) installs it."""
    where = factory.mktemp(f"{kind}-venv")
    run("bash", SCRIPT, kind, where / "v", wheel, cwd=where)
    return where / "v"


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install("runtime", wheel, tmp_path_factory)


def test_wheel_carries_the_model_and_no_tensorflow_dependency(dist: Path, wheel: Path) -> None:
    assert wheel.name == f"xemotion-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "xruntime_emotion/weights/__init__.py" in names
        for f in ("emotion_weights.npz", "emotion_float32.onnx"):  # the shipped files, byte for byte
            assert z.read(f"xruntime_emotion/weights/{f}") == (ROOT / "xruntime_emotion" / "weights" / f).read_bytes()
        assert "xruntime_emotion/py.typed" in names and "exporters/pipeline.py" in names
        if (ROOT / "xruntime_emotion" / "weights" / "manifest.json").is_file():
            assert "xruntime_emotion/weights/manifest.json" in names
        golden = sorted(p for p in GOLDEN.rglob("*") if p.is_file())
        assert len(golden) >= 5
        for p in golden:  # one source of truth: the wheel's golden set is golden/, byte for byte
            assert z.read(f"xruntime_emotion/golden_set/{p.relative_to(GOLDEN)}") == p.read_bytes(), p
        sample = "xruntime_emotion/samples/fer2013_training_sample.npz"
        assert z.read(sample) == (ROOT / sample).read_bytes()
        meta = Parser().parsestr(z.read(f"xemotion-{__version__}.dist-info/METADATA").decode())
    assert meta["Version"] == __version__
    base = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert base and not any(r.lower().startswith(("tensorflow", "keras", "tf2onnx")) for r in base), base
    assert "detect" in (meta.get_all("Provides-Extra") or [])
    sdists = list(dist.glob("xemotion-*.tar.gz"))
    assert len(sdists) == 1
    with tarfile.open(sdists[0]) as t:
        names = t.getnames()
        assert f"xemotion-{__version__}/xruntime_emotion/weights/emotion_float32.onnx" in names
        assert f"xemotion-{__version__}/golden/faces.npz" in names


def test_fresh_venv_has_no_tensorflow(venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, sys, xruntime_emotion;"
        "print(json.dumps([importlib.util.find_spec('tensorflow') is None, xruntime_emotion.__file__, sys.prefix]))"
    )
    no_tf, module, prefix = json.loads(run(venv / "bin" / "python", "-c", code, cwd=tmp_path).stdout)
    assert no_tf
    assert Path(module).resolve().is_relative_to(venv.resolve()) and Path(prefix).resolve() == venv.resolve()


def test_installed_cli(venv: Path, fer: FerData, tmp_path: Path) -> None:
    xemotion = venv / "bin" / "xemotion"
    assert "predict" in run(xemotion, "--help", cwd=tmp_path).stdout
    assert run(xemotion, "--version", cwd=tmp_path).stdout.strip() == f"xemotion {__version__}"

    face = tmp_path / "face.png"
    Image.fromarray(fer.images[FACE_ROW]).save(face)
    r = run(xemotion, "predict", face, "--json", tmp_path / "p.json", cwd=tmp_path)
    assert f"{face}: Recognized emotion:" in r.stdout
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["runtime"] == "onnxruntime" and Path(result["model"]).is_relative_to(venv)
    got = result["results"][0]
    assert got["label"] in LABELS
    # The installed package gives what the checkout gives.
    expected = EmotionClassifier.default().predict(fer.images[FACE_ROW])[0]
    np.testing.assert_allclose([got["probabilities"][k] for k in LABELS], expected, atol=1e-5)


def test_install_script_check(venv: Path, tmp_path: Path) -> None:
    """What the runtime image runs at build time (predict, and --detect's install hint without OpenCV)."""
    r = run("bash", SCRIPT, "check", "runtime", venv, cwd=tmp_path)
    assert "install.sh check runtime: ok" in r.stdout


# ------------------------------------------------------------------------------------- a fresh machine
def main_job() -> list[str]:
    """The README's main-job commands (its first bash block under "## The main job"), minus the install line."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The main job\n.*?```bash\n(.*?)```", text, re.S)
    assert block, "README has no main-job block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("pip install")]


@pytest.fixture(scope="module")
def export_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install("export", wheel, tmp_path_factory)


def test_main_job_on_a_fresh_machine(export_venv: Path, tmp_path: Path) -> None:
    """The wheel with the export extras, no FER2013, an empty HOME: the README's main job, as written, in a
    folder holding what a checkout's root gives it (examples/)."""
    import shutil

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {k: v for k, v in clean_env().items() if not k.startswith("XEMOTION_")}
    env.update(HOME=str(home), PATH=f"{export_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{command}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    commands = main_job()
    assert commands[:2] == ["xemotion export --all -o artifacts", "xemotion verify --artifacts artifacts"], commands
    results = [sh(c) for c in commands]
    verify, summary = results[1].stdout, results[1].stderr
    assert re.fullmatch(r"verify: \d+ pairs passed, 0 failed, \d+ skipped; .*\n", summary), summary  # one line
    for pair in ("onnx × onnxruntime", "onnx-int8 × onnxruntime", "tflite-fp32 × litert", "tflite-int8 × litert",
                 "tflite-int8 × litert-builtin", "weights × keras"):  # fmt: skip
        assert re.search(rf"{re.escape(pair)}\s+│ ✓ passed", verify), (pair, verify)
    assert "575 cases" in verify and "514 of them real faces" in summary and "vela × NPU" in verify
    predict = shlex.split(commands[2])
    assert predict[:2] == ["xemotion", "predict"] and "happy" in results[2].stdout
    # int8 alone, and the golden set for a board
    sh("xemotion export --format tflite-int8 -o alone && test -f alone/emotion_uint8_float32.tflite")
    mirror = sh("xemotion golden mirror -o mirror").stdout
    assert "test_data_set_1 (514 real faces)" in mirror
    assert sorted(p.name for p in (work / "mirror").iterdir()) == ["model.onnx", "test_data_set_0", "test_data_set_1"]
    # nothing downloaded: TensorFlow/Keras/matplotlib leave small config files in HOME, no model or data
    big = [(p, p.stat().st_size) for p in home.rglob("*") if p.is_file() and p.stat().st_size > 64 * 1024]
    assert not big, big
