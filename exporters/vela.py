"""Vela for the i.MX 93's Ethos-U65: compile the batch-1 int8 TFLite, parse Vela's summary, and
refuse a model whose compute ops fall back to the CPU (unless allowed)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from xruntime_emotion.errors import ExportError, MissingDependencyError

from .context import ExportContext
from .tflite import int8_bytes, tflite_ops

PRODUCER = "vela"
# Ops that may stay outside the ethos-u custom op: the boundary conversions.
ALLOWED_CPU_OPS = {"QUANTIZE", "DEQUANTIZE"}


def find_vela(exe: str) -> str | None:
    """``exe`` on PATH, or beside this Python (a venv's bin/ that is not activated)."""
    return shutil.which(exe) or shutil.which(exe, path=str(Path(sys.executable).parent))


def vela_version(exe: str) -> str:
    path = find_vela(exe)
    if path is None:
        raise MissingDependencyError(f"Vela ({exe}) is not installed; install it with: pip install 'xemotion[imx93]'")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()


def compile_model(ctx: ExportContext) -> tuple[bytes, dict[str, Any]]:
    o = ctx.options
    version = vela_version(o.vela)
    src = int8_bytes(ctx, 1)
    with tempfile.TemporaryDirectory(prefix="xemotion-vela-") as d:
        dd = Path(d)
        (dd / "emotion_uint8_float32.tflite").write_bytes(src)
        cmd = [
            find_vela(o.vela) or o.vela,
            str(dd / "emotion_uint8_float32.tflite"),
            "--accelerator-config",
            o.accelerator,
            "--config",
            o.vela_config,
            "--system-config",
            o.system_config,
            "--memory-mode",
            o.memory_mode,
            "--output-dir",
            str(dd / "out"),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ExportError(f"vela failed (exit {run.returncode}): {tail[0]}")
        compiled = (dd / "out" / "emotion_uint8_float32_vela.tflite").read_bytes()
        summaries = sorted((dd / "out").glob("*_summary_*.csv"))
        summary = _parse_summary(summaries[0]) if summaries else {}
    ops = tflite_ops(compiled)
    cpu_ops = [op for op in ops if op != "ethos-u" and op not in ALLOWED_CPU_OPS]
    report = {
        "vela_version": version,
        "accelerator_config": o.accelerator,
        "system_config": o.system_config,
        "memory_mode": o.memory_mode,
        "config_file": o.vela_config,
        "ops": ops,
        "cpu_ops": cpu_ops,
        **summary,
    }
    if cpu_ops and not o.allow_cpu_fallback:
        raise ExportError(
            f"Vela left compute ops on the CPU: {', '.join(cpu_ops)} (pass --allow-cpu-fallback to accept)"
        )
    return compiled, report


def _parse_summary(path: Path) -> dict[str, Any]:
    with open(path, newline="") as f:
        row = next(csv.DictReader(f))
    pick = {
        "inference_time": ("estimated_inference_ms", 1000.0),
        "inferences_per_second": ("estimated_inferences_per_second", 1.0),
        "sram_memory_used": ("sram_used_kib", 1.0),
        "off_chip_flash_memory_used": ("off_chip_flash_used_kib", 1.0),
        "dram_memory_used": ("dram_used_kib", 1.0),
        "on_chip_flash_memory_used": ("on_chip_flash_used_kib", 1.0),
        "cycles_total": ("npu_cycles_total", 1.0),
    }
    out: dict[str, Any] = {}
    for key, (name, scale) in pick.items():
        if row.get(key) not in (None, ""):
            out[name] = round(float(row[key]) * scale, 4)
    for key in ("cpu_operators", "npu_operators", "passes_fused"):
        if key in row:
            out[key] = row[key]
    return out


def export(ctx: ExportContext) -> tuple[bytes, dict[str, Any]]:
    return compile_model(ctx)
