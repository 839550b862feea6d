"""Shared fixtures. Data comes from $XEMOTION_DATA: missing data fails in CI and skips elsewhere."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.model.catalog import FORMATS, exported_formats
from xruntime_emotion.model.data import FerData, load_fer2013
from xruntime_emotion.model.ir import DEEPFACE_LAYERS, InputContract, ModelIR, Provenance, weight_shapes

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The probe's verdict cache (xruntime_emotion.runtime.safety): a fresh folder for the session, which the
# subprocesses of tests inherit; never the user's own cache.
PROBE_CACHE = Path(tempfile.mkdtemp(prefix="xemotion-probe-cache-")).resolve()
os.environ["XEMOTION_PROBE_CACHE"] = str(PROBE_CACHE)
atexit.register(shutil.rmtree, PROBE_CACHE, True)

ALL = list(exported_formats())
FUZZED = [f.name for f in FORMATS.values() if f.exported and f.runs_on_host]  # every host-run kind


DATA_MARK = "fer2013"  # tests that need the full data set: `pytest -m fer2013 --require-data` runs just them
DATA_FIXTURES = frozenset({"data_dir", "fer", "happy_jpg"})  # asking for one of these marks a test


def need(condition: bool, why: str) -> None:
    """Fail in CI, skip on a developer machine."""
    if not condition:
        (pytest.fail if IN_CI else pytest.skip)(why)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-data",
        action="store_true",
        help="fail (rather than skip) the tests marked fer2013 when $XEMOTION_DATA lacks FER2013 (CI's data step)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{DATA_MARK}: needs the full FER2013 set from $XEMOTION_DATA")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(DATA_MARK)


def _fer2013_root() -> Path | None:
    root = os.environ.get("XEMOTION_DATA")
    return Path(root) if root and Path(root, "fer2013", "fer2013.npz").is_file() else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked fer2013 skips without the data set (CI too), except under --require-data, where it fails."""
    if item.get_closest_marker(DATA_MARK) and _fer2013_root() is None:
        why = "needs FER2013: set XEMOTION_DATA to a folder holding fer2013/fer2013.npz"
        (pytest.fail if item.config.getoption("--require-data") else pytest.skip)(why)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _fer2013_root()
    assert root is not None  # pytest_runtest_setup skipped or failed the test already
    return root


@pytest.fixture(scope="session")
def fer(data_dir: Path) -> FerData:
    return load_fer2013(data_dir / "fer2013" / "fer2013.npz")


@pytest.fixture(scope="session")
def happy_jpg(data_dir: Path) -> Path:
    p = data_dir / "nxp-deepface-emotion" / "test.jpg"
    need(p.is_file(), f"{p} is required")
    return p


@pytest.fixture(scope="session")
def default_ir() -> ModelIR:
    return ModelIR.default()


def confident_random_ir(seed: int = 0, scale: float = 5.0) -> ModelIR:
    """Random He-initialised weights with a scaled last layer, so some inputs give p > 0.9.

    Random weights give near-uniform softmax outputs that hide layout bugs; scaling the logits
    makes wrong layouts visible in the probabilities too.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    shapes = weight_shapes(DEEPFACE_LAYERS, InputContract())
    for name, (k, b) in shapes.items():
        fan_in = int(np.prod(k[:-1]))
        kernel = rng.normal(0, np.sqrt(2.0 / fan_in), k).astype(np.float32)
        bias = rng.normal(0, 0.05, b).astype(np.float32)
        if name == "dense_2":
            kernel *= scale
        arrays.append((kernel, bias))
    ir = ModelIR.from_arrays(arrays, Provenance("test-random", "", "test"))
    return ir


@pytest.fixture(scope="session")
def random_ir() -> ModelIR:
    return confident_random_ir()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, default_ir: ModelIR) -> Path:
    """All five formats of the shipped weights (calibrated on the shipped sample), exported once per session.

    Read-only for tests: a test that changes files copies the folder first.
    """
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export
    from xruntime_emotion.model.calibration import shipped_sample

    out = tmp_path_factory.mktemp("artifacts")
    export(ExportContext(default_ir, ExportOptions(), shipped_sample()), ALL, out)
    return out


@pytest.fixture(scope="session")
def full_artifacts(tmp_path_factory: pytest.TempPathFactory, artifacts: Path, default_ir: ModelIR) -> Path:
    """A copy of ``artifacts`` plus the IR-made ONNX (``export --via ir``) and DeepFace's weights file."""
    import shutil

    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export

    out = tmp_path_factory.mktemp("full-artifacts") / "a"
    shutil.copytree(artifacts, out)
    export(ExportContext(default_ir, ExportOptions(onnx_via="ir")), ["onnx", "deepface-h5"], out)
    return out


@pytest.fixture(scope="session")
def ir_export(tmp_path_factory: pytest.TempPathFactory, random_ir: ModelIR) -> Path:
    """An ONNX straight from the IR (no TensorFlow, no data) with its export manifest."""
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export

    out = tmp_path_factory.mktemp("ir-export")
    export(ExportContext(random_ir, ExportOptions(onnx_via="ir")), ["onnx"], out)
    return out


@pytest.fixture(scope="session")
def onnx_clf(ir_export: Path) -> EmotionClassifier:
    return EmotionClassifier.from_onnx(ir_export / "emotion_float32_ir.onnx", threads=1)


@pytest.fixture(scope="session")
def twin_exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same weights and options exported by two `xemotion export` processes (different hash seeds)."""
    from xruntime_emotion.runtime.backends import RUNTIMES

    need(RUNTIMES["keras"].available(), "TensorFlow (the export extra) is required")
    dirs = (tmp_path_factory.mktemp("export-a"), tmp_path_factory.mktemp("export-b"))
    procs = []
    for seed, d in enumerate(dirs, 1):
        args = [a for f in FUZZED for a in ("-f", f)]
        cmd = [sys.executable, "-m", "xruntime_emotion.cli", "export", *args, "-o", str(d)]
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=d.parent)
        )
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-3000:]
    return dirs
