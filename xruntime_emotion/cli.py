"""The `xemotion` command. Every XEmotionError becomes one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from xruntime_emotion._version import __version__
from xruntime_emotion.atomic import write_output
from xruntime_emotion.console import SETTINGS, Summary, err, native_output, out, steps
from xruntime_emotion.errors import XEmotionError
from xruntime_emotion.model.catalog import describe_formats, exported_formats
from xruntime_emotion.runtime.integrity import EXPORT_MANIFEST

app = typer.Typer(
    name="xemotion",
    help="DeepFace's facial-emotion CNN: export to ONNX / TFLite / i.MX NPUs, run, evaluate and verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
golden_app = typer.Typer(help="The golden vectors that `verify` checks against.", no_args_is_help=True)
app.add_typer(golden_app, name="golden")

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON to this file.")]
# Which model `predict` and `classify` run (xruntime_emotion.runtime.classifier.ModelSpec).
ModelOpt = Annotated[Path | None, typer.Option(help="An .onnx, .tflite, or weights file (default: shipped).")]
TargetOpt = Annotated[str | None, typer.Option(help="Pick the backend of a target (cpu, imx8mp, imx93).")]
ArtifactsOpt = Annotated[Path, typer.Option(help="Where --target finds its artifacts.")]
RuntimeOpt = Annotated[str | None, typer.Option(help="Force a runtime: onnxruntime, litert, tflite_runtime...")]
DelegateOpt = Annotated[str | None, typer.Option(help="External TFLite delegate (.so).")]
DetectorOpt = Annotated[
    str, typer.Option(help="With --detect: blazeface (shipped DNN, the default) or haar (OpenCV's cascade).")
]
MinFaceOpt = Annotated[
    int | None,
    typer.Option(
        help="With --detect: the smallest face side searched, in pixels "
        "(blazeface: default 32, at least 24; haar: default 30)."
    ),
]
MarginOpt = Annotated[float, typer.Option(help="With --detect: context added around each face box, per side.")]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(help="Weights: xemotion's .npz or DeepFace's facial_expression_model_weights.h5 (default: shipped)."),
]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 controls: ANSI/OSC escapes, bells, newlines


def _t(value: Any) -> str:
    """Text that came from a file or the command line (names, metadata, paths, messages), safe to print:
    control characters (terminal escapes) replaced, Rich markup escaped, on one line."""
    return escape(_CONTROL.sub(" ", str(value)))


def _write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        write_output(path, json.dumps(data, indent=1, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        out.print(f"xemotion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (the summary line stays).")] = False,
    log: Annotated[
        Path | None,
        typer.Option(help="Append the runtimes' own messages (TensorFlow, absl, XNNPACK...) here; default: dropped."),
    ] = None,
) -> None:
    """xemotion: one model description, every artifact, and proof that they agree.

    Results go to stdout; progress (on a terminal) and a one-line summary to stderr.
    """
    SETTINGS.quiet, SETTINGS.log = quiet, log


def _load_ir(weights: Path | None) -> Any:
    from xruntime_emotion.model.ir import ModelIR

    return ModelIR.load(weights) if weights else ModelIR.default()


# --------------------------------------------------------------------------------------------- export
@app.command(epilog="Formats:\n\n" + "\n\n".join(describe_formats()))
def export(
    format: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="A format (repeatable); the formats are listed below."),
    ] = None,
    all_formats: Annotated[bool, typer.Option("--all", help=f"All of {', '.join(exported_formats())}.")] = False,
    target: Annotated[str | None, typer.Option(help="Build what a target needs: cpu, imx8mp, imx93.")] = None,
    weights: WeightsOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the artifacts.")] = Path("artifacts"),
    calib_data: Annotated[
        Path | None,
        typer.Option(
            help="FER2013 (npz, CSV or Kaggle folder) to draw the int8 calibration from (default: shipped sample)."
        ),
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
    try:
        from exporters.context import ExportContext
        from exporters.pipeline import check_output_folder, plan
        from exporters.pipeline import export as run_export
    except ImportError as exc:  # pragma: no cover - exporters ship in the same wheel
        raise XEmotionError(f"the exporters package is missing ({exc})") from exc
    p = plan(
        format,
        all_formats=all_formats,
        target=target,
        via=via,
        calib_data=calib_data,
        calib_size=calib_size,
        calib_seed=calib_seed,
        granularity=granularity,
        reduce_range=reduce_range,
        vela=vela,
        allow_cpu_fallback=allow_cpu_fallback,
    )
    for notice in p.notices:
        err.print(_t(notice))
    ir = _load_ir(weights)  # bad weights: an error before anything is written
    check_output_folder(output)  # before TensorFlow or any conversion
    ctx = ExportContext(ir, p.options, p.calibration)

    def done(name: str, entry: dict[str, Any]) -> None:
        v = entry["validation"]
        h = v.get("holdout", {})
        detail = (
            f"max|diff| {v['max_abs_diff']:.2e}"
            if "max_abs_diff" in v
            else f"{h['faces']} held-out faces: PSNR {h['psnr_db']:.1f} dB, max|dp| {h['max_abs_dp']:.3f}"
            if h
            else v.get("reason", "")
        )
        vela_info = entry.get("vela")
        if vela_info:
            detail = (
                f"Vela {vela_info['vela_version']}: ops {vela_info['ops']}, "
                f"est. {vela_info.get('estimated_inference_ms', '?')} ms, "
                f"SRAM {vela_info.get('sram_used_kib', '?')} KiB"
            )
        out.print(f"[green]✓[/green] {name:<12} {_t(output / entry['file'])}  ({_t(entry['producer'])}; {_t(detail)})")

    summary = Summary("export")
    with native_output(), steps("export") as step:
        manifest = run_export(ctx, list(p.formats), output, on_done=done, on_step=step)
    out.print(f"manifest: {_t(output / EXPORT_MANIFEST)}")
    _write_json(json_path, manifest)
    summary.done(f"{len(p.formats)} artifact(s) written and validated in {_t(output)}")


# -------------------------------------------------------------------------------------------- predict
@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Face crops (any size; grey or RGB), or photos with --detect.")],
    model: ModelOpt = None,
    target: TargetOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    runtime: RuntimeOpt = None,
    delegate: DelegateOpt = None,
    threads: Annotated[int | None, typer.Option(help="Runtime threads.")] = None,
    detect: Annotated[
        bool, typer.Option("--detect", help="Whole photos: find the faces (see --detector) and classify each.")
    ] = False,
    detector: DetectorOpt = "blazeface",
    annotate: Annotated[
        Path | None, typer.Option(help="With --detect and one photo: write it with boxes and labels drawn (PNG).")
    ] = None,
    margin: MarginOpt = 0.05,
    min_face: MinFaceOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Classify face crops (or, with --detect, every face in whole photos): label and seven probabilities."""
    if annotate is not None and not detect:
        raise typer.BadParameter("--annotate needs --detect", param_hint="--annotate")
    if annotate is not None and len(images) != 1:
        raise typer.BadParameter("--annotate takes exactly one photo", param_hint="--annotate")
    if not 0.0 <= margin <= 1.0:
        raise typer.BadParameter("--margin must lie in [0, 1]", param_hint="--margin")
    finder = _detector(detector, min_face) if detect else None
    with native_output():
        clf = _classifier(model, target, artifacts, runtime, delegate, threads)
    if finder is not None:
        _predict_photos(clf, images, annotate, margin, finder, json_path)
        return
    results = []
    for img in images:
        with native_output():
            p = clf.classify(img)
        out.print(f"{_t(img)}: Recognized emotion: [bold]{_t(p.label)}[/bold] ({p.probability:.4f})")
        out.print("  " + "  ".join(f"{k} {v:.4f}" for k, v in p.probabilities.items()))
        results.append(
            {"image": str(img), "label": p.label, "probability": p.probability, "probabilities": p.probabilities}
        )
    _write_json(json_path, {"model": str(clf.backend.path), "runtime": clf.backend.runtime, "results": results})


def _detector_options(name: str, min_face: int | None) -> dict[str, Any]:
    """--detector and --min-face as a detector catalog name and settings, checked."""
    from xruntime_emotion.runtime.detect import DETECTORS

    if name not in DETECTORS:
        raise typer.BadParameter(f"choose from: {', '.join(DETECTORS)}", param_hint="--detector")
    if min_face is None:
        return {}
    kind = DETECTORS[name]
    if kind.min_face is None:
        raise typer.BadParameter(f"--detector {name} has no minimum face setting", param_hint="--min-face")
    if min_face < kind.min_face_least:
        raise typer.BadParameter(f"must be at least {kind.min_face_least} for {name}", param_hint="--min-face")
    return {kind.min_face: min_face}


def _detector(name: str, min_face: int | None) -> Any:
    from xruntime_emotion.runtime.detect import detector

    options = _detector_options(name, min_face)
    with native_output():
        try:
            return detector(name, **options)
        except ValueError as exc:  # a setting the detector refuses (BlazeFace: min_face above max_side)
            raise typer.BadParameter(str(exc), param_hint="--min-face") from exc


def _predict_photos(
    clf: Any, images: list[Path], annotate: Path | None, margin: float, detector: Any, json_path: Path | None
) -> None:
    """`predict --detect`: each face's box, label and probabilities; optionally the annotated photo."""
    from xruntime_emotion.runtime.detect import annotate as draw
    from xruntime_emotion.runtime.preprocess import load_image

    results = []
    for img in images:
        photo = load_image(img)
        faces = clf.analyze(photo, margin=margin, detector=detector)
        name = _t(img)
        if not faces:
            out.print(f"{name}: no face found")
        for n, f in enumerate(faces, 1):
            b = f.box
            out.print(
                f"{name}: face {n} at x={b.x} y={b.y} w={b.w} h={b.h}: "
                f"Recognized emotion: [bold]{f.label}[/bold] ({f.probability:.4f})"
            )
            out.print("  " + "  ".join(f"{k} {v:.4f}" for k, v in f.prediction.probabilities.items()))
        entry: dict[str, Any] = {"image": str(img), "faces": [f.to_json() for f in faces]}
        if annotate is not None:
            entry["annotated"] = str(draw(photo, faces, annotate))
            out.print(f"annotated: {_t(annotate)}")
        results.append(entry)
    _write_json(json_path, {"model": str(clf.backend.path), "runtime": clf.backend.runtime, "results": results})


def _classifier(
    model: Path | None,
    target: str | None,
    artifacts: Path,
    runtime: str | None,
    delegate: str | None,
    threads: int | None,
) -> Any:
    from xruntime_emotion.runtime.classifier import ModelSpec

    spec = ModelSpec(model, target, artifacts, runtime, delegate)
    return spec.open(threads, on_fallback=lambda why: err.print(f"note: {_t(why)}"))


# ------------------------------------------------------------------------------------------- classify
@app.command()
def classify(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder (recursive: jpg, png, bmp, webp), a glob, a .txt list of paths, one image, "
            "or a .parquet/.csv table (see --column)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="A Parquet dataset (a folder of part files), or a .csv file.")
    ],
    column: Annotated[
        str | None, typer.Option(help="A table's column of paths, or (Parquet) of image bytes (default: path).")
    ] = None,
    model: ModelOpt = None,
    target: TargetOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    runtime: RuntimeOpt = None,
    delegate: DelegateOpt = None,
    detect: Annotated[
        bool, typer.Option("--detect", help="Whole photos: one row per face found (box, face index), or a null face.")
    ] = False,
    detector: DetectorOpt = "blazeface",
    margin: MarginOpt = 0.05,
    min_face: MinFaceOpt = None,
    engine: Annotated[str, typer.Option(help="local (one machine, streaming) or ray (Ray Data; the ray extra).")] = (
        "local"
    ),
    workers: Annotated[
        int | None,
        typer.Option(
            help="local: decode threads (default: cores - 1; 0 decodes between model calls); "
            "ray: model actors (default: as many as the nodes hold)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Inference threads (default: all cores; ray: CPUs per actor, default the smallest node's)."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="ray: join this running cluster (e.g. auto, or ray://head:10001).")
    ] = None,
    placement_timeout: Annotated[
        float,
        typer.Option(
            envvar="XEMOTION_RAY_PLACEMENT_TIMEOUT",
            help="ray: seconds the nodes may take to place the actors: none placed is an error, some a warning.",
        ),
    ] = 60.0,
    batch: Annotated[int, typer.Option(help="Inputs per model call.")] = 256,
    part_rows: Annotated[int, typer.Option(help="Rows per Parquet part file (and per CSV append).")] = 8192,
    flush_seconds: Annotated[
        float,
        typer.Option(help="Write a part at least this often, however few rows it holds (what a kill can lose)."),
    ] = 10.0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run into the same output.")] = (
        False
    ),
    json_path: JsonOpt = None,
) -> None:
    """Classify every image of a folder, glob, list or table into one result table (Parquet or CSV)."""
    import os

    from xruntime_emotion.batch import classify as run_classify
    from xruntime_emotion.batch.ray_engine import PLACEMENT_ENV, PLACEMENT_MAX, listen
    from xruntime_emotion.console import progress
    from xruntime_emotion.runtime.classifier import ModelSpec

    if address is not None and engine != "ray":
        raise typer.BadParameter("--address needs --engine ray", param_hint="--address")
    if not 0 < placement_timeout <= PLACEMENT_MAX:
        raise typer.BadParameter(f"must lie in (0, {PLACEMENT_MAX:g}] seconds", param_hint="--placement-timeout")
    os.environ[PLACEMENT_ENV] = repr(placement_timeout)  # the Ray engine reads it there
    options = _detector_options(detector, min_face) if detect else {}
    timer = Summary("classify")
    t0 = timer.t0

    def warn(text: str) -> None:
        err.print(f"warning: {_t(text)}", highlight=False, soft_wrap=True)

    with native_output(), progress() as bar, listen(warn) as ray_ran:
        task = bar.add_task("classify", total=None, rate="")

        def step(done: int, total: int, faces: int) -> None:
            rate = faces / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} faces/s")

        report = run_classify(
            source,
            output,
            model=ModelSpec(model, target, artifacts, runtime, delegate),
            column=column,
            detect=detect,
            margin=margin,
            detector=detector,
            detector_options=options,
            engine=engine,
            resume=resume,
            batch=batch,
            workers=workers,
            threads=threads,
            address=address,
            part_rows=part_rows,
            flush_seconds=flush_seconds,
            on_progress=step,
        )
    out.print(
        f"{_t(report.output)}: {report.rows} rows for {report.present} of {report.inputs} inputs "
        f"({report.errors} could not be read)",
        highlight=False,
    )
    _write_json(json_path, report.to_json())
    fresh = report.inputs - report.resumed
    resumed = f", {report.resumed} already there" if report.resumed else ""
    actors = f"; {ray_ran()}" if engine == "ray" and fresh else ""
    timer.done(
        f"{fresh} inputs classified{resumed}, {report.errors} with an error; every input is in {_t(report.output)} "
        f"({report.present} = {report.inputs}){actors}; {report.faces / max(report.seconds, 1e-9):,.0f} faces/s"
    )


# ----------------------------------------------------------------------------------------------- info
@app.command()
def info(
    model: Annotated[
        Path | None,
        typer.Argument(help="An .onnx, .tflite, .npz or DeepFace .h5 file (default: list the shipped ones)."),
    ] = None,
    json_path: JsonOpt = None,
) -> None:
    """Inputs, outputs, metadata, node count and sha256 of a model file; without one, the shipped models
    (the emotion model and the face detectors)."""
    from xruntime_emotion.runtime.info import describe, shipped

    if model is None:
        rows = shipped()
        for r in rows:
            where = f"{_t(r['file'])}  {r['bytes']} bytes  sha256 {r['sha256']}" if "file" in r else _t(r["missing"])
            out.print(f"[bold]{_t(r['name'])}[/bold] ({_t(r['runtime'])}): {_t(r['about'])}")
            out.print(f"  {where}", highlight=False)
        _write_json(json_path, rows)
        return
    d = describe(model)
    out.print(f"[bold]{_t(d['file'])}[/bold]  {d['kind']}  {d['bytes']} bytes  sha256 {d['sha256']}")
    for k in ("inputs", "outputs"):
        for t in d.get(k, []):
            q = f"  quant {t['quantization']}" if t.get("quantization") else ""
            out.print(f"  {k[:-1]:<6} {_t(t['name'])}  {_t(t['shape'])}  {_t(t['type'])}{_t(q)}")
    for k in ("nodes", "ops", "custom_ops", "opset", "producer", "buffers_bytes", "parameters", "weights_sha256"):
        if k in d:
            out.print(f"  {k}: {_t(d[k])}")
    for k, v in d.get("metadata", {}).items():
        out.print(f"  meta {_t(k)}: {_t(v)}")
    _write_json(json_path, d)


# -------------------------------------------------------------------------------------------- targets
@app.command()
def targets(json_path: JsonOpt = None) -> None:
    """The deployment targets: format, runtime and delegate of each."""
    from dataclasses import asdict

    from xruntime_emotion.model.catalog import FORMATS, TARGETS

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
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 60, or the recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for init, order, augmentation and dropout.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where weights and manifest go.")] = Path("trained"),
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints (resume from here); default OUTPUT/checkpoints.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows of each split (smoke runs).")] = None,
    recipe: Annotated[
        Path | None, typer.Option(help="A JSON of recipe fields, or a weights manifest.json (its recipe).")
    ] = None,
    soft_targets: Annotated[
        Path | None, typer.Option(help="Distil from this soft-target file (made by `xemotion teacher`).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Distillation temperature T (default 4).")] = None,
    alpha: Annotated[
        float | None, typer.Option(help="Weight of the hard-label loss; the rest goes to T²·KL (default 0.5).")
    ] = None,
    prune: Annotated[
        str | None, typer.Option(help="Prune kernels: LAYER=SPARSITY,... e.g. dense=0.75,conv2d_3=0.5.")
    ] = None,
    prune_start: Annotated[
        int | None, typer.Option(help="Epochs done when the pruning ramp starts (default 2).")
    ] = None,
    prune_end: Annotated[
        int | None, typer.Option(help="Epochs done when the final sparsity is reached (default 40).")
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Fine-tune: start from these weights (.npz or DeepFace's .h5), not at random.")
    ] = None,
    hold_out_private: Annotated[
        bool, typer.Option(help="Do not score PrivateTest (a candidate; score the chosen one with `evaluate`).")
    ] = False,
) -> None:
    """Train the DeepFace architecture on FER2013 (Training only; best epoch by PublicTest).

    Optionally distils from a teacher's soft targets and prunes kernels by magnitude (the network and
    its files stay as they are; pruned weights are zeros).
    """
    from dataclasses import replace

    from xruntime_emotion.model.data import load_fer2013

    try:
        from exporters.train import Recipe, load_recipe, parse_prune
        from exporters.train import train as run_train
    except ImportError as exc:  # pragma: no cover
        raise XEmotionError(f"the exporters package is missing ({exc})") from exc
    timer = Summary("train")
    given = {
        "epochs": epochs,
        "temperature": temperature,
        "alpha": alpha,
        "prune": parse_prune(prune) if prune is not None else None,
        "prune_start": prune_start,
        "prune_end": prune_end,
    }
    plan = replace(load_recipe(recipe) if recipe else Recipe(), **{k: v for k, v in given.items() if v is not None})
    if soft_targets is None and not plan.distill and (temperature is not None or alpha is not None):
        raise XEmotionError("--temperature and --alpha apply to distillation: give --soft-targets too")
    if not plan.prune and (prune_start is not None or prune_end is not None):
        raise XEmotionError("--prune-start and --prune-end apply to pruning: give --prune too")
    fer = load_fer2013(data)
    with native_output(), steps("train") as step:

        def epoch_done(row: dict[str, Any]) -> None:  # Keras' own bars stay off; one bar, per epoch
            metrics = (
                f"loss {row['loss']:.3f}, acc {row['train_accuracy']:.3f}, PublicTest {row['public_accuracy']:.3f}"
            )
            step(f"epoch {row['epoch']} ({metrics})", row["epoch"], plan.epochs)

        step("epoch 1", 0, plan.epochs)
        manifest = run_train(fer, output, recipe=plan, seed=seed, checkpoint_dir=checkpoint_dir, limit=limit,
                             soft_targets=soft_targets, init=init, on_epoch=epoch_done, progress=False,
                             score_private=not hold_out_private)  # fmt: skip
    acc = manifest["accuracy"]
    private = acc["PrivateTest"]
    private_text = f"{private['accuracy']:.4f}" if "accuracy" in private else "not scored"
    out.print(
        f"best epoch {manifest['best_epoch']}: PublicTest {acc['PublicTest']['accuracy']:.4f}, "
        f"PrivateTest {private_text}; weights in {_t(output)}"
    )
    if plan.prune:
        out.print("sparsity: " + ", ".join(f"{n} {manifest['sparsity'][n]:.4f}" for n, _ in plan.prune))
    timer.done(f"{plan.epochs} epoch(s), {manifest['cpu_hours']:.2f} CPU hours")


@app.command()
def teacher(
    member: Annotated[
        list[Path], typer.Option("--member", "-m", help="Weights of one member: .npz or DeepFace's .h5 (repeatable).")
    ],
    data: Annotated[Path, typer.Option(help="FER2013: npz, fer2013.csv or the Kaggle folder tree.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The soft-target file to write (.npz).")] = Path(
        "soft_targets.npz"
    ),
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows of each split (smoke runs).")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Soft targets for `train --soft-targets`: an ensemble's probabilities on every Training row.

    Each member sees each face and its mirror (the two averaged), the members are averaged; the teacher's
    and each member's PublicTest accuracy are recorded. PrivateTest is never read.
    """
    from xruntime_emotion.model.data import load_fer2013
    from xruntime_emotion.model.ir import ModelIR

    try:
        from exporters.teacher import save_soft_targets, soft_targets
    except ImportError as exc:  # pragma: no cover
        raise XEmotionError(f"the exporters package is missing ({exc})") from exc
    timer = Summary("teacher")
    members = [ModelIR.load(m) for m in member]  # a bad member fails before the data is read
    fer = load_fer2013(data)
    with native_output(), steps("teacher") as step:
        targets = soft_targets(members, fer, limit=limit, on_step=step)
    save_soft_targets(targets, output)
    rec = targets.record
    table = Table("member", "sha256", "PublicTest top-1", "with flip TTA", title=f"teacher: {_t(output)}")
    for m in rec["members"]:
        table.add_row(
            _t(m["file"]),
            m["weights_sha256"][:16],
            f"{100 * m['public_accuracy_without_tta']:.2f}%",
            f"{100 * m['public_accuracy']:.2f}%",
        )
    table.add_row("ensemble", targets.sha256[:16], "", f"{100 * rec['public_accuracy']:.2f}%")
    out.print(table)
    _write_json(json_path, {**rec, "sha256": targets.sha256, "file": str(output)})
    timer.done(
        f"{len(member)} member(s) × {rec['data']['rows']} Training rows, PublicTest {rec['public_accuracy']:.4f}"
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
    from xruntime_emotion.check.evaluate import comparison, plot_confusion
    from xruntime_emotion.check.evaluate import evaluate as run_eval
    from xruntime_emotion.model.data import Split, load_fer2013

    try:
        s = Split(split)
    except ValueError:
        raise XEmotionError(f"unknown split {split!r}; choose Training, PublicTest or PrivateTest") from None
    summary = Summary("evaluate")
    fer = load_fer2013(data)
    with native_output(), steps("evaluate") as step:
        results = run_eval(model, fer, s, runtime=runtime, allow_overlap=allow_overlap, on_step=step)
    cmp = comparison(results)
    table = Table(
        "artifact",
        "runtime",
        "correct",
        f"{s.value} top-1",
        "vs fp32 baseline",
        "Δ (pp)",
        "argmax agreement",
        "int8 ≥ 99% of fp32 top-1",
        title=f"FER2013 {s.value} ({len(results[0].labels)} rows)",
    )
    marks = {"passed": "[green]✓ passed[/green]", "failed": "[red]✗ failed[/red]", "not judged": "[yellow]–[/yellow]"}
    for r in results:
        c = cmp[r.name]
        flag = " [red]LEAK: calibrated on this split[/red]" if r.leakage.get("overlap_with_split") else ""
        rule = c.get("int8_rule")
        table.add_row(
            _t(r.name) + flag,
            r.runtime,
            str(r.correct),
            f"{100 * r.accuracy:.2f}%",
            _t(c["baseline"] or "–") if c["baseline"] != r.name else "(itself)",
            f"{c['delta_pp']:+.2f}" if "delta_pp" in c else "",
            f"{c['argmax_agreement']:.4f}" if "argmax_agreement" in c else "",
            (
                marks[rule["status"]]
                + (f" ({100 * rule['ratio_of_fp32_top1']:.2f}%)" if "ratio_of_fp32_top1" in rule else "")
            )
            if rule
            else "",
        )
    out.print(table)
    if plot:
        plot_confusion(results, plot)
        out.print(f"confusion matrix: {_t(plot)}")
    _write_json(
        json_path,
        {
            "split": s.value,
            "artifacts": {r.name: r.to_json() for r in results},
            "accuracy": {r.name: r.accuracy for r in results},
            "comparison": cmp,
        },
    )
    failed = [n for n, c in cmp.items() if c.get("int8_rule", {}).get("status") == "failed"]
    if failed:
        raise XEmotionError(f"int8 below 99% of its fp32 top-1: {', '.join(failed)}")
    judged = sum("int8_rule" in c for c in cmp.values())
    summary.done(f"{len(results)} artifact(s) × {len(results[0].labels)} {s.value} rows; {judged} int8 rule(s) passed")


# --------------------------------------------------------------------------------------------- verify
@app.command()
def verify(
    artifacts: Annotated[Path, typer.Option(help="Folder written by `xemotion export`.")] = Path("artifacts"),
    format: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="Only these formats, each required (repeatable).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Only the pairs of a target (cpu, imx8mp, imx93); its formats are required.")
    ] = None,
    delegate: Annotated[str | None, typer.Option(help="Also run tflite-int8 on tflite_runtime with it.")] = None,
    golden: Annotated[Path | None, typer.Option(help="Golden folder (default: the installed golden set).")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Check every (format, runtime) pair against the golden vectors; non-zero exit on any failure."""
    from xruntime_emotion.check.verify import verify as run_verify
    from xruntime_emotion.errors import ConformanceError

    summary = Summary("verify")
    with native_output(), steps("verify") as step:
        report = run_verify(
            artifacts, target=target, delegate=delegate, formats=format, golden_directory=golden, on_step=step
        )
    table = Table(
        "pair",
        "status",
        "max |Δp| vs fp32",
        "argmax agree",
        "int8 PSNR dB",
        "int8 steps vs recorded",
        "note",
        title=f"golden: {report['golden']['cases']} cases, weights {report['golden']['weights_sha256'][:12]}…",
    )
    marks = {
        "passed": "[green]✓ passed[/green]",
        "failed": "[red]✗ failed[/red]",
        "skipped": "[yellow]– skipped[/yellow]",
    }
    for r in report["results"]:
        c = r["checks"]
        table.add_row(
            _t(r["pair"]), marks[r["status"]],
            f"{c['max_abs_diff']:.2e}" if "max_abs_diff" in c else "",
            f"{c['argmax_agreement']:.4f}" if "argmax_agreement" in c else "",
            f"{c['real_psnr_db']:.1f}" if "real_psnr_db" in c else "",
            f"{c['max_steps_vs_recorded']:.2f} ({c['recording']})" if "max_steps_vs_recorded" in c else "",
            _t(r["reason"]),  # install hints like xemotion[litert] are not Rich markup
        )  # fmt: skip
    out.print(table)
    sm = report["summary"]
    _write_json(json_path, report)
    counts = (
        f"{sm['passed']} pairs passed, {sm['failed']} failed, {sm['skipped']} skipped; "
        f"{sm['checked']} case runs checked ({sm['passed'] + sm['failed']} pairs × up to {sm['cases']} cases, "
        f"{sm['real_faces']} of them real faces)"
    )
    if not report["passed"]:  # the error line is the summary then: one line either way
        raise ConformanceError(f"verify failed: {', '.join(report['failed']) or 'no pair could run'} ({counts})")
    summary.done(counts)


@golden_app.command("regenerate")
def golden_regenerate(
    artifacts: Annotated[Path, typer.Option(help="Folder from `xemotion export --all` (int8 expectations).")] = Path(
        "artifacts"
    ),
    weights: WeightsOpt = None,
    data: Annotated[Path | None, typer.Option(help="FER2013 (default: $XEMOTION_DATA).")] = None,
    golden: Annotated[Path, typer.Option(help="Golden folder to write (run from a checkout: its golden/).")] = Path(
        "golden"
    ),
    force: Annotated[bool, typer.Option(help="Replace a golden set made for other weights.")] = False,
) -> None:
    """Rewrite the golden set deterministically and print what changed."""
    from xruntime_emotion.check.golden import regenerate
    from xruntime_emotion.model.data import load_fer2013

    timer = Summary("golden regenerate")
    fer = load_fer2013(data)
    with native_output(), steps("golden regenerate") as step:
        summary = regenerate(_load_ir(weights), artifacts, fer, directory=golden, force=force, on_step=step)
    out.print_json(json.dumps(summary))
    timer.done(f"{summary['cases']} cases written to {_t(golden)}")


@golden_app.command("record")
def golden_record(
    runtime: Annotated[str, typer.Option(help="The runtime to record (e.g. tflite_runtime on a board).")],
    fmt: Annotated[str, typer.Option("--format", help="The int8 format: tflite-int8 or onnx-int8.")] = "tflite-int8",
    delegate: Annotated[str | None, typer.Option(help="External delegate, e.g. /usr/lib/libvx_delegate.so.")] = None,
    artifacts: Annotated[Path, typer.Option(help="Folder holding the very artifact the set was made with.")] = Path(
        "artifacts"
    ),
    golden: Annotated[Path | None, typer.Option(help="Golden folder (default: the installed golden set).")] = None,
) -> None:
    """Add a kernel set's own int8 outputs (a board's NPU delegate) as a drift baseline for `verify`."""
    from xruntime_emotion.check.golden import record

    timer = Summary("golden record")
    with native_output():
        summary = record(artifacts, fmt, runtime, delegate=delegate, directory=golden)
    out.print_json(json.dumps(summary))
    timer.done(f"{_t(summary['recording'])} recorded for {fmt}")


@golden_app.command("mirror")
def golden_mirror(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for model.onnx + test_data_set_N.")],
    model: Annotated[Path | None, typer.Option(help="The .onnx to ship with it (default: shipped).")] = None,
    golden: Annotated[Path | None, typer.Option(help="Golden folder (default: the installed golden set).")] = None,
) -> None:
    """Write the golden set in ONNX's backend-test layout, for onnx_test_runner on a board."""
    from xruntime_emotion.check.golden import mirror
    from xruntime_emotion.weights import default_onnx_path

    timer = Summary("golden mirror")
    r = mirror(output, model or default_onnx_path(), golden)
    out.print(
        f"wrote {_t(output)}: model.onnx, test_data_set_0 ({r['generated_cases']} generated cases), "
        f"test_data_set_1 ({r['real_faces']} real faces)"
    )
    timer.done(f"{r['generated_cases'] + r['real_faces']} cases")


# ---------------------------------------------------------------------------------------------- bench
@app.command()
def bench(
    model: Annotated[
        list[Path] | None, typer.Option("--model", "-m", help="Artifacts to measure (repeatable).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Measure the artifact of a target (cpu, imx8mp, imx93).")] = None,
    artifacts: Annotated[Path, typer.Option(help="Folder from `xemotion export --all` (default rows).")] = Path(
        "artifacts"
    ),
    batch: Annotated[str, typer.Option(help="Batch sizes for throughput, comma-separated.")] = "1,8,64",
    threads: Annotated[str, typer.Option(help="Runtime thread counts, comma-separated.")] = "1,2",
    runs: Annotated[int, typer.Option(help="Timed batch-1 runs per row, after warm-up (at least 200).")] = 300,
    keras: Annotated[bool, typer.Option(help="Add the DeepFace-style Keras baseline (needs TensorFlow).")] = True,
    json_path: JsonOpt = None,
) -> None:
    """Latency p50/p90/p99, throughput, cold start and peak RSS: classifier API vs the raw runtime call."""
    from xruntime_emotion.check.bench import Job, cli_cold_start, default_models, machine, spawn
    from xruntime_emotion.model.catalog import FORMATS, get_target
    from xruntime_emotion.runtime.backends import RUNTIMES
    from xruntime_emotion.weights import default_weights_path

    if runs < 200:
        raise XEmotionError("--runs must be at least 200 (fewer give no stable p99)")
    try:
        batches = tuple(int(b) for b in batch.split(","))
        thread_counts = [int(t) for t in threads.split(",")]
    except ValueError:
        raise XEmotionError(
            f"--batch and --threads take comma-separated integers, got {batch!r} and {threads!r}"
        ) from None
    if min(batches) < 1 or min(thread_counts) < 1:
        raise XEmotionError("--batch and --threads values must be at least 1")
    big_batch = max(batches)
    if model:
        paths = list(model)
    elif target:
        paths = [artifacts / FORMATS[get_target(target).format].filename]
    else:
        paths = default_models(artifacts)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise XEmotionError(f"no such artifact: {missing[0]} (make them with `xemotion export --all -o {artifacts}`)")
    jobs = [Job(str(p), None, t, batches, runs) for p in paths for t in thread_counts]
    if keras and RUNTIMES["keras"].available():
        jobs += [Job(str(default_weights_path()), "keras", t, (1,), runs, keras=True) for t in thread_counts]
    rows = []
    table = Table("model", "runtime", "thr", "cold start ms", "b1 API p50/p90/p99 ms", "b1 raw p50 ms", "API/raw",
                  f"b{big_batch} API faces/s", f"b{big_batch} raw faces/s", "RSS MB")  # fmt: skip
    timer = Summary("bench")
    with steps("bench") as step:
        for done, job in enumerate(jobs):
            step(f"{Path(job.model).name} × {job.threads} thread(s)", done, len(jobs))
            rows.append(spawn(job))
    for job, row in zip(jobs, rows):
        if "error" in row:
            table.add_row(row["model"], row["runtime"], str(job.threads), f"[red]{row['error'][-80:]}[/red]")
            continue
        if job.keras:
            k = row["batch1_predict_on_batch"]
            load = f"{row['cold_start_ms']['load']:.0f}"
            table.add_row(row["model"], "keras predict_on_batch", str(job.threads), load,
                          f"{k['p50_ms']:.3f}/{k['p90_ms']:.3f}/{k['p99_ms']:.3f}", "", "", "", "",
                          f"{row['peak_rss_mb']:.0f}")  # fmt: skip
            continue
        c, r = row["batch1_classifier"], row["batch1_raw"]
        big = row["throughput"].get(str(big_batch), {})  # fixed-batch models have batch 1 only: blank
        table.add_row(row["model"], row["runtime"], str(job.threads), f"{row['cold_start_ms']['total']:.0f}",
                      f"{c['p50_ms']:.3f}/{c['p90_ms']:.3f}/{c['p99_ms']:.3f}", f"{r['p50_ms']:.3f}",
                      f"{row['batch1_ratio']:.3f}", f"{big['classifier_per_s']:.0f}" if big else "",
                      f"{big['raw_per_s']:.0f}" if big else "", f"{row['peak_rss_mb']:.0f}")  # fmt: skip
    out.print(table)
    result: dict[str, Any] = {"machine": machine(), "runs": runs, "batches": list(batches), "rows": rows}
    import tempfile

    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "face.png"
        Image.fromarray(np.full((48, 48), 128, np.uint8)).save(img)
        result["cli_predict_cold_start_ms"] = cli_cold_start(None, str(img))
    out.print(
        f"CLI cold start (`xemotion predict face.png`, shipped ONNX): {result['cli_predict_cold_start_ms']:.0f} ms"
    )
    _write_json(json_path, result)
    timer.done(f"{len(rows)} row(s), {sum('error' in r for r in rows)} failed")


def main() -> None:
    """Entry point: domain errors become one line and an exit code, never a traceback."""
    try:
        from typer._click import exceptions as click  # typer >= 0.22 carries its own Click
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as click  # type: ignore[no-redef]

    try:
        code = app(prog_name="xemotion", standalone_mode=False)  # usage errors come here, not in a framed box
    except click.NoArgsIsHelpError as exc:  # bare `xemotion` or `xemotion golden`: the help
        help_text = exc.format_message()  # empty where Rich has drawn it already
        if help_text.strip():
            print(help_text)
        sys.exit(0)
    except click.UsageError as exc:
        hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx else ""
        message = exc.format_message().rstrip(".")
        err.print(f"[red]error:[/red] {_t(message)}{_t(hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:  # Ctrl-C
        err.print("[red]error:[/red] interrupted", highlight=False)
        sys.exit(130)
    except XEmotionError as exc:
        # escape: install hints like xemotion[detect] are not Rich markup
        err.print(f"[red]error:[/red] {_t(exc)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file system failure (read-only folder, disk full, ...): one line too
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"[red]error:[/red] {_t(where)}{_t(exc.strerror or exc)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except MemoryError:  # past the memory this process may use (a ulimit, a container): one line too
        err.print("[red]error:[/red] out of memory: the input needs more than this process may use", highlight=False)
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(code) and --help's exit come back as a number
        sys.exit(code)


if __name__ == "__main__":
    main()
