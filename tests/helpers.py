"""Small helpers shared by tests."""

from __future__ import annotations

import importlib.util
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from xruntime_emotion.check import golden as G
from xruntime_emotion.model.data import FerData, Split, to_input
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.model.synthetic import synthetic_inputs
from xruntime_emotion.runtime.preprocess import load_image

ROOT = Path(__file__).resolve().parents[1]  # the repository


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `xemotion ARGS` in a fresh process (as a user would), by default in an empty folder, so that the
    installed package is what runs, never the checkout's source tree."""
    with tempfile.TemporaryDirectory(prefix="xemotion-cli-") as empty:
        return subprocess.run(
            [sys.executable, "-m", "xruntime_emotion.cli", *args],
            capture_output=True,
            text=True,
            cwd=cwd or empty,
            env={**os.environ, **(env or {})},
            timeout=900,
        )


def inputs64(fer: FerData, happy: Path) -> np.ndarray:
    """64 float inputs: the happy test.jpg, 31 PrivateTest faces and 32 synthetic images."""
    faces, _ = fer.split(Split.PRIVATE_TEST)
    happy_px = load_image(happy)
    return to_input(np.concatenate([happy_px[None], faces[:31], synthetic_inputs()[:32]]))


def write_upstream_h5(arrays: list[tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """A legacy Keras 2 weights file laid out as DeepFace's release asset, with Keras 2.2-style
    layer names (conv2d_1, ...) that differ from ours: layers must be matched by order."""
    import h5py

    names = [
        "conv2d_1", "max_pooling2d_1", "conv2d_2", "conv2d_3", "average_pooling2d_1", "conv2d_4", "conv2d_5",
        "average_pooling2d_2", "flatten_1", "dense_1", "dropout_1", "dense_2", "dropout_2", "dense_3",
    ]  # fmt: skip
    weighted = iter(arrays)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for n in names:
            g = f.create_group(n)
            if n.startswith(("conv2d", "dense")):
                k, b = next(weighted)
                wn = [f"{n}/kernel:0", f"{n}/bias:0"]
                g.attrs["weight_names"] = np.array([w.encode() for w in wn])
                g.create_dataset(wn[0], data=k)
                g.create_dataset(wn[1], data=b)
            else:
                g.attrs["weight_names"] = np.array([], dtype="S1")


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an ONNX model up to the input of its Softmax: the pre-softmax logits."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    softmax = next(n for n in proto.graph.node if n.op_type == "Softmax")
    proto.graph.output.append(onnx.helper.make_tensor_value_info(softmax.input[0], onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([softmax.input[0]], {"input": x})[0]


def _script(name: str) -> ModuleType:
    """Import scripts/NAME.py (the scripts are not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _arrays(ir: ModelIR) -> list[tuple[np.ndarray, np.ndarray]]:
    return [ir.weights[layer.name] for layer in ir.weighted_layers]


def _copy_golden(tmp_path: Path) -> Path:
    d = tmp_path / "golden"
    shutil.copytree(G.golden_dir(), d)
    return d


def on_a_terminal(args: list[str], timeout: float = 300) -> bytes:
    """Run `xemotion ARGS` with stdout and stderr on a pseudo-terminal; everything it drew, in order."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "xruntime_emotion.cli", *args], stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})  # fmt: skip
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side is closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, seen[-2000:]
    return seen


def from_scratch_recipe(manifest: dict) -> dict:
    """The recipe that trained the shipped lineage from a random init: the shipped weights' own, or, when
    they were fine-tuned (``train --init``), that of the weights they started from (``init.base``)."""
    return manifest["init"]["base"]["recipe"] if "init" in manifest else manifest["recipe"]
