"""Export: IR -> artifacts, each validated against the IR reference before it is renamed into place.

Formats are rows of the catalog (``xruntime_emotion.model.catalog``), each naming its producer. Every
artifact goes to a temporary file in the output folder, is opened by its own runtime and compared
with the NumPy reference, and only then renamed: a failed validation leaves nothing behind. One
``export_manifest.json`` records every artifact.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import __version__
from xruntime_emotion.atomic import atomic_path, write_text_atomic
from xruntime_emotion.check.fidelity import Int8Rule, judge_int8
from xruntime_emotion.errors import ExportError, XEmotionError
from xruntime_emotion.model.calibration import (
    DEFAULT_SEED,
    DEFAULT_SIZE,
    Calibration,
    calibration_sample,
    shipped_sample,
)
from xruntime_emotion.model.catalog import FORMATS, Format, Precision, exportable_formats, exported_formats, get_target
from xruntime_emotion.model.data import load_fer2013, to_input
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.model.synthetic import synthetic_inputs
from xruntime_emotion.runtime.backends import RUNTIMES, open_backend
from xruntime_emotion.runtime.integrity import EXPORT_MANIFEST, read_manifest
from xruntime_emotion.util import sha256_file

from .context import ExportContext, ExportOptions

MANIFEST = EXPORT_MANIFEST
FP32_TOLERANCE = 1e-5
INT8_RULE = Int8Rule()  # the rule `verify` applies on the golden faces, here on held-out Training faces


@dataclass(frozen=True)
class Made:
    data: bytes
    producer: str
    details: dict[str, Any]


def resolve_via(via: str) -> str:
    """The ONNX producer ``via`` names: ``auto`` is tf2onnx where TensorFlow is installed, else the IR emitter."""
    if via not in ("auto", "tf2onnx", "ir"):
        raise ExportError(f"--via must be auto, tf2onnx or ir, got {via!r}")
    if via == "auto":
        return "tf2onnx" if RUNTIMES["keras"].available() else "ir"
    return via


def _onnx_bytes(ctx: ExportContext, via: str) -> Made:
    def make() -> Made:
        if via == "ir":
            from xruntime_emotion.model.onnx_ir import PRODUCER, model_proto

            return Made(model_proto(ctx.ir, ctx.options.opset, ctx.options.fixed_batch).SerializeToString(),
                        PRODUCER, {"opset": ctx.options.opset})  # fmt: skip
        from . import onnx_tf2onnx as mod

        return Made(mod.export(ctx), mod.PRODUCER, {"opset": ctx.options.opset})

    return ctx.cached(f"onnx:{via}", make)


def make_onnx(ctx: ExportContext) -> Made:
    return _onnx_bytes(ctx, "tf2onnx")


def make_onnx_ir(ctx: ExportContext) -> Made:
    return _onnx_bytes(ctx, "ir")


def make_onnx_int8(ctx: ExportContext) -> Made:
    from . import onnx_int8

    fp32 = _onnx_bytes(ctx, resolve_via(ctx.options.onnx_via)).data
    return Made(onnx_int8.export(ctx, fp32), onnx_int8.PRODUCER, onnx_int8.settings(ctx))


def make_tflite_fp32(ctx: ExportContext) -> Made:
    from . import tflite

    return Made(tflite.export_fp32(ctx), tflite.PRODUCER, {})


def make_tflite_int8(ctx: ExportContext) -> Made:
    from . import tflite

    return Made(tflite.export_int8(ctx), tflite.PRODUCER, {"granularity": ctx.options.granularity})


def make_deepface_h5(ctx: ExportContext) -> Made:
    """DeepFace's facial_expression_model_weights.h5 from any weights (h5py only: no TensorFlow)."""
    from xruntime_emotion.model.h5io import write_deepface_h5

    with tempfile.TemporaryDirectory(prefix="xemotion-h5-") as d:
        path = write_deepface_h5(ctx.ir, Path(d) / "weights.h5")
        return Made(path.read_bytes(), "xemotion-h5io", {"layout": "DeepFace legacy Keras 2 weights (by layer order)"})


def make_vela(ctx: ExportContext) -> Made:
    from . import vela

    data, report = vela.export(ctx)
    return Made(data, vela.PRODUCER, {"vela": report})


def producer(fmt: Format) -> Callable[[ExportContext], Made]:
    """The function a catalog row names as its producer ("module:function"), imported now."""
    module, _, name = fmt.producer.partition(":")
    if not module or not name:
        raise ExportError(f"{fmt.name} has no exporter; choose from {', '.join(exportable_formats())}")
    fn: Callable[[ExportContext], Made] = getattr(importlib.import_module(module), name)
    return fn


def rows(formats: list[str], via: str = "auto") -> list[Format]:
    """The catalog rows for ``formats``; ``onnx`` becomes the IR-made ``onnx-ir`` when ``via`` resolves to ir."""
    unknown = [f for f in formats if f not in FORMATS or not FORMATS[f].producer]
    if unknown:
        raise ExportError(
            f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(exportable_formats())} "
            "(`xemotion export --help` says what each is)"
        )
    resolved = resolve_via(via)
    out: list[Format] = []
    for f in formats:
        variants = [r for r in FORMATS.values() if r.via and (r.name == f or r.variant_of == f)]
        row = next((r for r in variants if r.via == resolved), FORMATS[f])  # the file ``via``'s producer writes
        if row not in out:
            out.append(row)
    return out


@dataclass(frozen=True)
class Plan:
    """What one `export` writes, decided before any work: the rows, the options and the calibration sample."""

    formats: tuple[str, ...]
    options: ExportOptions
    calibration: Calibration | None
    notices: tuple[str, ...] = ()


def plan(
    formats: list[str] | None = None,
    *,
    all_formats: bool = False,
    target: str | None = None,
    via: str = "auto",
    calib_data: str | Path | None = None,
    calib_size: int = DEFAULT_SIZE,
    calib_seed: int = DEFAULT_SEED,
    **options: Any,
) -> Plan:
    """Formats from ``--format``/``--all``/``--target``, the ONNX producer, and the calibration sample:
    the shipped one, or one drawn from ``calib_data`` (FER2013)."""
    asked = list(formats or [])
    if all_formats:
        asked += [f for f in exported_formats() if f not in asked]
    if target:
        t = get_target(target)
        asked += [f for f in t.formats if f not in asked]
        options.setdefault("fixed_batch", t.fixed_batch)
    if not asked:
        raise ExportError("nothing to export: pass --format, --all or --target")
    notices = []
    resolved = resolve_via(via)
    if via == "auto" and resolved == "ir" and "onnx" in asked:
        notices.append("TensorFlow is not installed: ONNX is emitted straight from the IR (--via ir).")
    names = tuple(r.name for r in rows(asked, resolved))
    calibration = None
    if any(FORMATS[f].calibrated for f in names):
        if calib_data is not None:
            calibration = calibration_sample(load_fer2013(calib_data), calib_size, calib_seed)
        elif (calib_size, calib_seed) != (DEFAULT_SIZE, DEFAULT_SEED):
            raise ExportError(
                f"the shipped calibration sample is {DEFAULT_SIZE} images of seed {DEFAULT_SEED}; "
                "pass --calib-data FER2013 to draw another"
            )
        else:
            calibration = shipped_sample()
    return Plan(names, ExportOptions(onnx_via=resolved, **options), calibration, tuple(notices))


def validate(ctx: ExportContext, fmt: Format, path: Path) -> dict[str, Any]:
    """Run the artifact in its runtime and compare with the IR reference."""
    if not fmt.runs_on_host:
        return {"status": "skipped", "reason": "runs only on its NPU delegate; its op list is checked instead"}
    backend = open_backend(path, fmt.runtime, probe=False)  # made by this process a moment ago
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


def check_output_folder(output: Path) -> None:
    """Before any expensive work: ``output`` is (or can become) a folder this process may write into."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output}: exists and is not a folder (-o names the folder for the artifacts)")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{output}: cannot create the folder ({exc.strerror})") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise ExportError(f"{output}: the folder is not writable")


@contextlib.contextmanager
def _manifest_lock(output: Path) -> Iterator[None]:
    """One writer of ``output``'s manifest at a time, across processes (flock on the folder itself)."""
    fd = os.open(output, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


TMP_PREFIX = "xemotion-export-"


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """Converters' temporary files (TensorFlow's SavedModel folders, 12 MB each) in one folder of this run,
    removed when it ends; folders of earlier runs whose process is gone (killed) are swept first."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{TMP_PREFIX}*"):
        pid = old.name.removeprefix(TMP_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=base))
    before, tempfile.tempdir = tempfile.tempdir, str(mine)  # process-wide while exporting
    try:
        yield mine
    finally:
        tempfile.tempdir = before
        shutil.rmtree(mine, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to sweep
        return True
    return True


def export(
    ctx: ExportContext,
    formats: list[str],
    output: Path,
    *,
    on_done: Callable[[str, dict[str, Any]], None] | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Write each format into ``output`` (atomically, validated) and update the export manifest.
    ``on_step(format, done, total)`` hears of each format as it starts; ``on_done`` gets its entry.

    Several exports may share a folder: each manifest update is a locked read-merge-write. A file system
    error is one ExportError; an artifact whose manifest entry could not be written is taken back.
    """
    output = Path(output)
    chosen = rows(formats, ctx.options.onnx_via)
    for fmt in chosen:
        if fmt.calibrated:
            ctx.require_calibration(fmt.name)
    check_output_folder(output)
    with _manifest_lock(output):
        manifest = _load_manifest(output, ctx.ir)  # fails now, before the work, if it is unreadable
    with private_tempdir():
        for done, fmt in enumerate(chosen):
            if on_step:
                on_step(fmt.name, done, len(chosen))
            made = _make(ctx, fmt)
            target = output / fmt.filename
            try:
                with atomic_path(target, named=target.suffix == ".h5") as tmp:  # HDF5 needs a real path
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
                    entry["calibration"] = ctx.require_calibration(fmt.name).describe()
                manifest = _record(output, ctx.ir, fmt.name, entry, target)
            except OSError as exc:
                raise ExportError(f"{target}: cannot write it ({exc.strerror or exc})") from None
            if on_done:
                on_done(fmt.name, entry)
    return manifest


def _make(ctx: ExportContext, fmt: Format) -> Made:
    make = producer(fmt)
    try:
        return make(ctx)
    except XEmotionError:
        raise
    except Exception as exc:  # converter internals raise anything
        raise ExportError(f"{fmt.name}: export failed ({type(exc).__name__}: {str(exc).strip()[:300]})") from exc


def _record(output: Path, ir: ModelIR, name: str, entry: dict[str, Any], artifact: Path) -> dict[str, Any]:
    """Add ``entry`` to the manifest as it is on disk now (another export may have added its own)."""
    with _manifest_lock(output):
        manifest = _load_manifest(output, ir)
        manifest["artifacts"][name] = entry
        try:
            write_text_atomic(output / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        except OSError:
            artifact.unlink(missing_ok=True)  # no artifact without its manifest entry
            raise
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
    old = read_manifest(path)  # unreadable: one clear error, never silently replaced
    entries = old.get("artifacts")
    if not isinstance(entries, dict):
        raise ExportError(f"{path}: 'artifacts' is not an object; remove the file to start afresh")
    if old.get("weights_sha256") != ir.weights_sha256:
        return fresh
    fresh["artifacts"] = {
        k: v
        for k, v in entries.items()
        if isinstance(v, dict) and (output / Path(str(v.get("file", ""))).name).exists()
    }
    return fresh
