"""exporters.tflite and exporters.vela: the int8 TFLite contract and the i.MX 93 Ethos-U export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from helpers import run_cli

BUILTIN_INT8_OPS = {
    "QUANTIZE", "DEQUANTIZE", "CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE",
    "SHAPE", "STRIDED_SLICE", "PACK",
}  # fmt: skip


def _ops(path: Path) -> list[str]:
    from exporters.tflite import tflite_ops

    return tflite_ops(path.read_bytes())


def test_tflite_int8_contract(artifacts: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(artifacts / "emotion_uint8_float32.tflite"))
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert i["dtype"] == np.uint8 and list(i["shape"]) == [1, 48, 48, 1]
    scale, zero = i["quantization"]
    assert zero == 0 and abs(scale - 1 / 255) < 1e-9
    assert o["dtype"] == np.float32 and list(o["shape"]) == [1, 7]
    ops = _ops(artifacts / "emotion_uint8_float32.tflite")
    assert set(ops) <= BUILTIN_INT8_OPS, ops
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"} <= set(ops)


def test_export_target_imx93_vela(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "imx93"
    r = run_cli("export", "--target", "imx93", "--output", str(out), "--calib-data", str(data_dir / "fer2013"))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "export_manifest.json").read_text())
    vela = m["artifacts"]["vela"]["vela"]
    assert vela["accelerator_config"] == "ethos-u65-256" and vela["estimated_inference_ms"] > 0
    assert vela["vela_version"] and vela["sram_used_kib"] > 0
    from exporters.tflite import tflite_ops

    ops = tflite_ops((out / "emotion_uint8_float32_vela.tflite").read_bytes())
    assert "ethos-u" in ops and set(ops) <= {"ethos-u", "QUANTIZE", "DEQUANTIZE"}, ops
    # the NPU input model is fixed batch 1: no ops from a dynamic Flatten
    b1 = _ops(out / "emotion_uint8_float32.tflite")
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(b1), b1
    r = run_cli(
        "predict", "--target", "imx93", "--artifacts", str(out), str(data_dir / "nxp-deepface-emotion/test.jpg")
    )
    # the compiled model runs only on the board's Ethos-U delegate: a clear error here, not a crash
    assert r.returncode != 0 and "libethosu_delegate.so" in r.stderr and "Traceback" not in r.stderr
