"""The `xemotion` command. Every XEmotionError becomes one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ._version import __version__
from .atomic import write_text_atomic
from .errors import XEmotionError

app = typer.Typer(
    name="xemotion",
    help="DeepFace's facial-emotion CNN: export to ONNX / TFLite / i.MX NPUs, run, evaluate and verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
golden_app = typer.Typer(help="The golden vectors that `verify` checks against.", no_args_is_help=True)
app.add_typer(golden_app, name="golden")
out = Console(soft_wrap=True)
err = Console(stderr=True)

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON to this file.")]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(help="Weights: xemotion's .npz or DeepFace's facial_expression_model_weights.h5 (default: shipped)."),
]


def _write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        write_text_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        out.print(f"xemotion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """xemotion: one model description, every artifact, and proof that they agree."""


def _load_ir(weights: Path | None) -> Any:
    from .ir import ModelIR

    return ModelIR.load(weights) if weights else ModelIR.default()


# --------------------------------------------------------------------------------------------- export
@app.command()
def export(
    format: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="onnx, onnx-int8, tflite-fp32, tflite-int8, vela (repeatable)."),
    ] = None,
    all_formats: Annotated[bool, typer.Option("--all", help="All five formats.")] = False,
    target: Annotated[str | None, typer.Option(help="Build what a target needs: cpu, imx8mp, imx93.")] = None,
    weights: WeightsOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the artifacts.")] = Path("artifacts"),
    calib_data: Annotated[
        Path | None, typer.Option(help="FER2013 (npz, CSV or Kaggle folder) for int8 calibration; Training rows.")
    ] = None,
    calib_size: Annotated[int, typer.Option(help="Calibration images (seeded sample of Training).")] = 100,
    calib_seed: Annotated[int, typer.Option(help="Seed of the calibration sample.")] = 0,
    granularity: Annotated[str, typer.Option(help="TFLite int8 weights: per-channel or per-tensor.")] = "per-channel",
    via: Annotated[str, typer.Option(help="ONNX producer: auto, tf2onnx or ir (no TensorFlow).")] = "auto",
    reduce_range: Annotated[bool, typer.Option(help="onnx-int8: 7-bit weights (safe without VNNI).")] = True,
    vela: Annotated[str, typer.Option(help="Vela executable (pin NXP's build for your BSP).")] = "vela",
    allow_cpu_fallback: Annotated[bool, typer.Option(help="Accept Vela leaving compute ops on the CPU.")] = False,
    json_path: JsonOpt = None,
) -> None:
    """Export artifacts, each validated against the IR reference before it is written."""
    from .data import load_fer2013
    from .formats import ALL_FORMATS, FORMATS, get_target

    formats = list(format or [])
    fixed_batch = None
    if all_formats:
        formats = list(ALL_FORMATS)
    if target:
        t = get_target(target)
        formats += [f for f in t.formats if f not in formats]
        fixed_batch = t.fixed_batch
    if not formats:
        raise XEmotionError("nothing to export: pass --format, --all or --target")
    if via not in ("auto", "tf2onnx", "ir"):
        raise XEmotionError(f"--via must be auto, tf2onnx or ir, got {via!r}")
    if via == "auto" and "onnx" in formats:
        from .runtimes import RUNTIMES

        if not RUNTIMES["keras"].available():
            err.print("TensorFlow is not installed: ONNX is emitted straight from the IR (--via ir).")
            via = "ir"
    ir = _load_ir(weights)
    try:
        from exporters.context import ExportContext, ExportOptions, calibration_sample
        from exporters.pipeline import export as run_export
    except ImportError as exc:  # pragma: no cover - exporters ship in the same wheel
        raise XEmotionError(f"the exporters package is missing ({exc})") from exc
    calibration = None
    if any(FORMATS[f].calibrated for f in formats if f in FORMATS):
        import os

        if calib_data is None and not os.environ.get("XEMOTION_DATA"):
            raise XEmotionError("int8 formats need calibration data: pass --calib-data PATH (FER2013 npz/CSV/folder)")
        calibration = calibration_sample(load_fer2013(calib_data), calib_size, calib_seed)
    options = ExportOptions(
        granularity=granularity,
        fixed_batch=fixed_batch,
        reduce_range=reduce_range,
        vela=vela,
        allow_cpu_fallback=allow_cpu_fallback,
        onnx_via=via,
    )
    ctx = ExportContext(ir, options, calibration)

    def done(name: str, entry: dict[str, Any]) -> None:
        v = entry["validation"]
        detail = (
            f"max|diff| {v['max_abs_diff']:.2e}"
            if "max_abs_diff" in v
            else f"argmax agreement {v['argmax_agreement']:.3f}, max|dp| {v['max_abs_dp']:.3f}"
            if "argmax_agreement" in v
            else v.get("reason", "")
        )
        vela_info = entry.get("vela")
        if vela_info:
            detail = (
                f"Vela {vela_info['vela_version']}: ops {vela_info['ops']}, "
                f"est. {vela_info.get('estimated_inference_ms', '?')} ms, "
                f"SRAM {vela_info.get('sram_used_kib', '?')} KiB"
            )
        out.print(f"[green]✓[/green] {name:<12} {output / entry['file']}  ({entry['producer']}; {detail})")

    manifest = run_export(ctx, formats, output, on_done=done)
    out.print(f"manifest: {output / 'export_manifest.json'}")
    _write_json(json_path, manifest)


# -------------------------------------------------------------------------------------------- predict
@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Face crops (any size; grey or RGB).")],
    model: Annotated[Path | None, typer.Option(help="An .onnx, .tflite, or weights file (default: shipped).")] = None,
    target: Annotated[str | None, typer.Option(help="Pick the backend of a target (cpu, imx8mp, imx93).")] = None,
    artifacts: Annotated[Path, typer.Option(help="Where --target finds its artifacts.")] = Path("artifacts"),
    runtime: Annotated[str | None, typer.Option(help="Force a runtime: onnxruntime, litert, tflite_runtime...")] = None,
    delegate: Annotated[str | None, typer.Option(help="External TFLite delegate (.so).")] = None,
    threads: Annotated[int | None, typer.Option(help="Runtime threads.")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Classify face crops: the label and the seven probabilities per image."""
    clf = _classifier(model, target, artifacts, runtime, delegate, threads)
    results = []
    for img in images:
        p = clf.classify(img)
        out.print(f"{img}: Recognized emotion: [bold]{p.label}[/bold] ({p.probability:.4f})")
        out.print("  " + "  ".join(f"{k} {v:.4f}" for k, v in p.probabilities.items()))
        results.append(
            {"image": str(img), "label": p.label, "probability": p.probability, "probabilities": p.probabilities}
        )
    _write_json(json_path, {"model": str(clf.backend.path), "runtime": clf.backend.runtime, "results": results})


def _classifier(
    model: Path | None,
    target: str | None,
    artifacts: Path,
    runtime: str | None,
    delegate: str | None,
    threads: int | None,
) -> Any:
    from .classifier import EmotionClassifier
    from .formats import FORMATS, get_target
    from .runtimes import file_kind

    if target:
        t = get_target(target)
        model = model or artifacts / FORMATS[t.format].filename
        delegate = delegate or (t.delegate if t.delegate and Path(t.delegate).exists() else None)
    if model is None:
        return EmotionClassifier.default(threads=threads)
    kind = file_kind(model)
    if kind == ".tflite":
        return EmotionClassifier.from_tflite(model, delegate, threads, runtime=runtime)
    return EmotionClassifier.from_file(
        model, runtime=runtime, **({"threads": threads} if threads and kind == ".onnx" else {})
    )


# ----------------------------------------------------------------------------------------------- info
@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="An .onnx, .tflite, .npz or DeepFace .h5 file.")],
    json_path: JsonOpt = None,
) -> None:
    """Inputs, outputs, metadata, node count and sha256 of a model file."""
    from .info import describe

    d = describe(model)
    out.print(f"[bold]{d['file']}[/bold]  {d['kind']}  {d['bytes']} bytes  sha256 {d['sha256']}")
    for k in ("inputs", "outputs"):
        for t in d.get(k, []):
            q = f"  quant {t['quantization']}" if t.get("quantization") else ""
            out.print(f"  {k[:-1]:<6} {t['name']}  {t['shape']}  {t['type']}{q}")
    for k in ("nodes", "ops", "opset", "producer", "parameters", "weights_sha256", "runtime"):
        if k in d:
            out.print(f"  {k}: {d[k]}")
    for k, v in d.get("metadata", {}).items():
        out.print(f"  meta {k}: {v}")
    _write_json(json_path, d)


# -------------------------------------------------------------------------------------------- targets
@app.command()
def targets(json_path: JsonOpt = None) -> None:
    """The deployment targets: format, runtime and delegate of each."""
    from dataclasses import asdict

    from .formats import FORMATS, TARGETS

    table = Table("target", "board", "format", "file", "runtime", "delegate", "batch")
    for t in TARGETS.values():
        table.add_row(
            t.name.value,
            t.board,
            t.format,
            FORMATS[t.format].filename,
            t.runtime,
            t.delegate or "-",
            str(t.fixed_batch or "dynamic"),
        )
    out.print(table)
    _write_json(json_path, {k: {**asdict(v), "name": k} for k, v in TARGETS.items()})


# ---------------------------------------------------------------------------------------------- train
@app.command()
def train(
    data: Annotated[Path, typer.Option(help="FER2013: npz, fer2013.csv or the Kaggle folder tree.")],
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed for init, order, augmentation and dropout.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where weights and manifest go.")] = Path("trained"),
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints (resume from here); default OUTPUT/checkpoints.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows of each split (smoke runs).")] = None,
) -> None:
    """Train the DeepFace architecture on FER2013 (Training only; best epoch by PublicTest)."""
    from .data import load_fer2013

    try:
        from exporters.train import Recipe
        from exporters.train import train as run_train
    except ImportError as exc:  # pragma: no cover
        raise XEmotionError(f"the exporters package is missing ({exc})") from exc
    manifest = run_train(
        load_fer2013(data), output, recipe=Recipe(epochs=epochs), seed=seed, checkpoint_dir=checkpoint_dir, limit=limit
    )
    acc = manifest["accuracy"]
    out.print(
        f"best epoch {manifest['best_epoch']}: PublicTest {acc['PublicTest']['accuracy']:.4f}, "
        f"PrivateTest {acc['PrivateTest']['accuracy']:.4f}; weights in {output}"
    )


# ------------------------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="Artifacts to score (repeatable).")],
    data: Annotated[Path | None, typer.Option(help="FER2013 (default: $XEMOTION_DATA/fer2013/fer2013.npz).")] = None,
    split: Annotated[str, typer.Option(help="Training, PublicTest or PrivateTest.")] = "PrivateTest",
    runtime: Annotated[str | None, typer.Option(help="Force one runtime for all artifacts.")] = None,
    allow_overlap: Annotated[
        bool, typer.Option(help="Score artifacts calibrated on this split anyway, flagged.")
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the confusion matrices as a PNG.")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Top-1 accuracy, per-class P/R/F1 and confusion matrix of each artifact on a FER2013 split."""
    from .data import Split, load_fer2013
    from .evaluate import comparison, plot_confusion
    from .evaluate import evaluate as run_eval

    try:
        s = Split(split)
    except ValueError:
        raise XEmotionError(f"unknown split {split!r}; choose Training, PublicTest or PrivateTest") from None
    results = run_eval(model, load_fer2013(data), s, runtime=runtime, allow_overlap=allow_overlap)
    cmp = comparison(results)
    table = Table(
        "artifact",
        "runtime",
        "correct",
        f"{s.value} top-1",
        "Δ vs first (pp)",
        "argmax agreement",
        title=f"FER2013 {s.value} ({len(results[0].labels)} rows)",
    )
    for r in results:
        c = cmp[r.name]
        flag = " [red]LEAK: calibrated on this split[/red]" if r.leakage.get("overlap_with_split") else ""
        table.add_row(
            r.name + flag,
            r.runtime,
            str(r.correct),
            f"{100 * r.accuracy:.2f}%",
            f"{c['delta_pp']:+.2f}",
            f"{c['argmax_agreement']:.4f}",
        )
    out.print(table)
    if plot:
        plot_confusion(results, plot)
        out.print(f"confusion matrix: {plot}")
    _write_json(
        json_path,
        {
            "split": s.value,
            "artifacts": {r.name: r.to_json() for r in results},
            "accuracy": {r.name: r.accuracy for r in results},
            "comparison": cmp,
        },
    )


def main() -> None:
    """Entry point: domain errors become one line and an exit code, never a traceback."""
    try:
        app(standalone_mode=False)
    except XEmotionError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.BadParameter as exc:  # pragma: no cover
        err.print(f"error: {exc}")
        sys.exit(2)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
