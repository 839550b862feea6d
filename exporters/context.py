"""State shared by the exporters of one `export` run: the IR, the Keras models and the calibration
sample are built once and reused by every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.data import FerData, Split, image_sha256
from xruntime_emotion.errors import ExportError
from xruntime_emotion.ir import ModelIR


@dataclass(frozen=True)
class Calibration:
    images: np.ndarray  # uint8 (N,48,48), Training rows only
    rows: tuple[int, ...]  # row indices in the dataset
    source: str
    seed: int
    holdout: np.ndarray  # other Training rows, for checking int8 exports (never calibrated on)

    @property
    def hashes(self) -> list[str]:
        return [image_sha256(im) for im in self.images]

    def describe(self) -> dict[str, Any]:
        return {
            "split": Split.TRAINING.value,
            "size": len(self.images),
            "seed": self.seed,
            "source": Path(self.source).name,
            "image_sha256": self.hashes,
        }


def calibration_sample(data: FerData, size: int = 100, seed: int = 0, holdout: int = 500) -> Calibration:
    """A seeded sample of ``size`` Training rows (never PublicTest or PrivateTest)."""
    rows = data.indices(Split.TRAINING)
    if size < 1 or size > len(rows):
        raise ExportError(f"calibration size must be 1..{len(rows)}, got {size}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(rows)
    pick, rest = np.sort(perm[:size]), np.sort(perm[size : size + holdout])
    return Calibration(data.images[pick], tuple(int(i) for i in pick), data.source, seed, data.images[rest])


@dataclass(frozen=True)
class ExportOptions:
    opset: int = 17
    granularity: str = "per-channel"  # or "per-tensor" (TFLite int8)
    fixed_batch: int | None = None  # 1 for NPU targets
    reduce_range: bool = True  # onnx-int8: 7-bit weights, safe on CPUs without VNNI
    vela: str = "vela"  # the Vela executable (NXP pins a build per BSP)
    accelerator: str = "ethos-u65-256"
    system_config: str = "Ethos_U65_High_End"
    memory_mode: str = "Dedicated_Sram_384KB"
    vela_config: str = "Arm/vela.ini"
    allow_cpu_fallback: bool = False
    onnx_via: str = "auto"  # "tf2onnx", "ir" or "auto" (tf2onnx when TensorFlow is installed)


@dataclass
class ExportContext:
    ir: ModelIR
    options: ExportOptions = field(default_factory=ExportOptions)
    calibration: Calibration | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def keras_model(self, batch_size: int | None = None) -> Any:
        from .keras_builder import build_model

        return self.cached(f"keras:{batch_size}", lambda: build_model(self.ir, batch_size=batch_size))

    def require_calibration(self, fmt: str) -> Calibration:
        if self.calibration is None:
            raise ExportError(f"{fmt} needs calibration data: pass --calib-data (FER2013 npz, CSV or Kaggle folder)")
        return self.calibration

    def calibration_float(self) -> np.ndarray:
        from xruntime_emotion.data import to_input

        return to_input(self.require_calibration("int8").images)
