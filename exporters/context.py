"""State shared by the exporters of one `export` run: the IR, the Keras models and the calibration
sample are built once and reused by every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xruntime_emotion.errors import ExportError
from xruntime_emotion.model.calibration import Calibration, calibration_sample
from xruntime_emotion.model.ir import ModelIR


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
            raise ExportError(f"{fmt} needs a calibration sample (the shipped one, or --calib-data FER2013)")
        return self.calibration

    def calibration_float(self) -> np.ndarray:
        from xruntime_emotion.model.data import to_input

        return to_input(self.require_calibration("int8").images)


__all__ = ["Calibration", "ExportContext", "ExportOptions", "calibration_sample"]
