"""Shared fixtures. Data comes from $XEMOTION_DATA: missing data fails in CI and skips elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from xruntime_emotion.model.catalog import ALL_FORMATS
from xruntime_emotion.model.data import FerData, load_fer2013
from xruntime_emotion.model.ir import DEEPFACE_LAYERS, InputContract, ModelIR, Provenance, weight_shapes

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ALL = list(ALL_FORMATS)


def need(condition: bool, why: str) -> None:
    """Fail in CI, skip on a developer machine."""
    if not condition:
        (pytest.fail if IN_CI else pytest.skip)(why)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = os.environ.get("XEMOTION_DATA")
    need(
        bool(root) and Path(root, "fer2013", "fer2013.npz").is_file(),
        "XEMOTION_DATA with fer2013/fer2013.npz is required",
    )
    return Path(root)  # type: ignore[arg-type]


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
    """A copy of ``artifacts`` plus the IR-made ONNX (``export --via ir``)."""
    import shutil

    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export

    out = tmp_path_factory.mktemp("full-artifacts") / "a"
    shutil.copytree(artifacts, out)
    export(ExportContext(default_ir, ExportOptions(onnx_via="ir")), ["onnx"], out)
    return out
