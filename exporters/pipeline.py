"""Export: IR -> artifacts, each validated against the IR reference before it is renamed into place.

Formats are rows of ``PRODUCERS``; every artifact goes to a temporary file in the output folder,
is opened by its own runtime and compared with the NumPy reference, and only then renamed. A
failed validation leaves nothing behind. One ``export_manifest.json`` records every artifact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import __version__
from xruntime_emotion.atomic import atomic_path, write_text_atomic
from xruntime_emotion.data import to_input
from xruntime_emotion.errors import ExportError, XEmotionError
from xruntime_emotion.fidelity import Int8Rule, judge_int8
from xruntime_emotion.formats import FORMATS, IR_ONNX_FILENAME, Format, Precision
from xruntime_emotion.ir import ModelIR, sha256_file
from xruntime_emotion.runtimes import RUNTIMES
from xruntime_emotion.synthetic import synthetic_inputs

from .context import ExportContext

MANIFEST = "export_manifest.json"
FP32_TOLERANCE = 1e-5
INT8_RULE = Int8Rule()  # the rule `verify` applies on the golden faces, here on held-out Training faces


@dataclass(frozen=True)
class Made:
    data: bytes
    producer: str
    details: dict[str, Any]


def _onnx(ctx: ExportContext) -> Made:
    via = ctx.options.onnx_via
    if via == "auto":
        via = "tf2onnx" if RUNTIMES["keras"].available() else "ir"
    if via not in ("tf2onnx", "ir"):
        raise ExportError(f"--via must be tf2onnx, ir or auto, got {via!r}")

    def make() -> Made:
        if via == "ir":
            from . import onnx_ir as mod
        else:
            from . import onnx_tf2onnx as mod  # type: ignore[no-redef]
        return Made(mod.export(ctx), mod.PRODUCER, {"opset": ctx.options.opset})

    return ctx.cached(f"onnx:{via}", make)


def _onnx_int8(ctx: ExportContext) -> Made:
    from . import onnx_int8

    return Made(onnx_int8.export(ctx, _onnx(ctx).data), onnx_int8.PRODUCER, onnx_int8.settings(ctx))


def _tflite_fp32(ctx: ExportContext) -> Made:
    from . import tflite

    return Made(tflite.export_fp32(ctx), tflite.PRODUCER, {})


def _tflite_int8(ctx: ExportContext) -> Made:
    from . import tflite

    return Made(tflite.export_int8(ctx), tflite.PRODUCER, {"granularity": ctx.options.granularity})


def _vela(ctx: ExportContext) -> Made:
    from . import vela

    data, report = vela.export(ctx)
    return Made(data, vela.PRODUCER, {"vela": report})


PRODUCERS: dict[str, Callable[[ExportContext], Made]] = {
    "onnx": _onnx,
    "onnx-int8": _onnx_int8,
    "tflite-fp32": _tflite_fp32,
    "tflite-int8": _tflite_int8,
    "vela": _vela,
}


def validate(ctx: ExportContext, fmt: Format, path: Path) -> dict[str, Any]:
    """Run the artifact in its runtime and compare with the IR reference."""
    if fmt.name == "vela":
        return {"status": "skipped", "reason": "runs only on the Ethos-U delegate; its op list is checked instead"}
    backend = RUNTIMES[fmt.runtime].open(path)
    synth = to_input(synthetic_inputs())
    ref = ctx.ir.forward(synth)
    got = backend.predict(synth)
    out: dict[str, Any] = {"runtime": backend.runtime, "synthetic_cases": len(synth)}
    diff = float(np.abs(got - ref).max())
    if fmt.precision is Precision.FP32:
        out.update(max_abs_diff=diff, tolerance=FP32_TOLERANCE, status="passed" if diff <= FP32_TOLERANCE else "failed")
        if diff > FP32_TOLERANCE:
            raise ExportError(f"{fmt.name}: max |diff| {diff:.3g} against the IR reference exceeds {FP32_TOLERANCE}")
        return out
    faces = to_input(ctx.require_calibration(fmt.name).holdout)
    checks, failures = judge_int8(ctx.ir.forward(faces), backend.predict(faces), INT8_RULE)
    out.update(
        holdout=checks, synthetic_max_abs_dp=diff, rule=INT8_RULE.to_json(), status="failed" if failures else "passed"
    )
    if failures:
        raise ExportError(f"{fmt.name}: against fp32 on held-out Training faces: {'; '.join(failures)}")
    return out


def filename(fmt: Format, ctx: ExportContext) -> str:
    if fmt.name == "onnx" and ctx.options.onnx_via == "ir":
        return IR_ONNX_FILENAME
    return fmt.filename


def export(
    ctx: ExportContext,
    formats: list[str],
    output: Path,
    *,
    on_done: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write each format into ``output`` (atomically, validated) and update the export manifest."""
    output = Path(output)
    unknown = [f for f in formats if f not in PRODUCERS]
    if unknown:
        raise ExportError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(PRODUCERS)}")
    for f in formats:
        if FORMATS[f].calibrated:
            ctx.require_calibration(f)
    manifest = _load_manifest(output, ctx.ir)
    for name in formats:
        fmt = FORMATS[name]
        try:
            made = PRODUCERS[name](ctx)
        except XEmotionError:
            raise
        except Exception as exc:  # converter internals raise anything
            raise ExportError(f"{name}: export failed ({type(exc).__name__}: {str(exc).strip()[:300]})") from exc
        target = output / filename(fmt, ctx)
        with atomic_path(target) as tmp:
            tmp.write_bytes(made.data)
            report = validate(ctx, fmt, tmp)
        entry = {
            "file": target.name,
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "precision": fmt.precision.value,
            "producer": made.producer,
            "runtime": fmt.runtime,
            "fixed_batch": fmt.fixed_batch or ctx.options.fixed_batch,
            "validation": report,
            **made.details,
        }
        if fmt.calibrated:
            entry["calibration"] = ctx.require_calibration(name).describe()
        key = "onnx-ir" if target.name == IR_ONNX_FILENAME else name
        manifest["artifacts"][key] = entry
        write_text_atomic(output / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if on_done:
            on_done(name, entry)
    return manifest


def _load_manifest(output: Path, ir: ModelIR) -> dict[str, Any]:
    """The folder's manifest, keeping earlier artifacts only if they came from the same weights."""
    fresh = {
        "schema": 1,
        "xemotion_version": __version__,
        "weights_sha256": ir.weights_sha256,
        "weights_source": ir.provenance.source,
        "ir_hash": ir.ir_hash,
        "artifacts": {},
    }
    path = output / MANIFEST
    if not path.is_file():
        return fresh
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return fresh
    if old.get("weights_sha256") != ir.weights_sha256:
        return fresh
    fresh["artifacts"] = {k: v for k, v in old.get("artifacts", {}).items() if (output / v.get("file", "")).is_file()}
    return fresh
