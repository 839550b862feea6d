"""Classify many faces: a folder, a glob, a list of paths or a table in; one result table out.

    from xruntime_emotion.batch import classify, classify_table
    report = classify("crops/", "emotions.parquet")          # a Parquet dataset (a folder of parts)
    table = classify_table("crops/")                          # a pyarrow.Table, in memory

Sources: ``xruntime_emotion.batch.sources``; the columns: ``xruntime_emotion.batch.work``; the
engines (local streaming, Ray Data): ``xruntime_emotion.batch.engines``. Bad inputs become rows with an
``error``; bad settings (arguments, $XEMOTION_MAX_PIXELS, $XEMOTION_MAX_IMAGE_BYTES) fail before the first
input is read. One run writes an output at a time (a lock), and at the end the output is read back,
every row checked (``xruntime_emotion.batch.sinks``): every input must appear in it exactly once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.batch.engines import ENGINES, Settings, engine
from xruntime_emotion.batch.sinks import FLUSH_SECONDS, CsvSink, MemorySink, ParquetSink, Sink
from xruntime_emotion.batch.sources import Source, max_image_bytes, open_source
from xruntime_emotion.batch.work import Faces, columns
from xruntime_emotion.errors import XEmotionError, require
from xruntime_emotion.runtime.classifier import ModelSpec
from xruntime_emotion.runtime.detect import DEFAULT_DETECTOR, MARGIN
from xruntime_emotion.runtime.preprocess import max_pixels
from xruntime_emotion.util import sha256_file

PART_ROWS = 8192  # rows per Parquet part (and per CSV append)
OnProgress = Callable[[int, int, int], None]  # (inputs done, inputs in all, faces classified)


@dataclass(frozen=True)
class Report:
    """What a run did; ``inputs == present`` is checked before it is returned."""

    source: str
    output: str | None
    engine: str
    inputs: int  # in the source
    resumed: int  # already in the output when the run started
    present: int  # distinct inputs in the output at the end
    rows: int
    errors: int  # inputs that could not be read (a row with an error each)
    faces: int  # faces classified in this run
    seconds: float
    model_sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _spec(model: ModelSpec | str | os.PathLike[str] | None) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else ModelSpec(None if model is None else Path(model))


def _sink(out: Path, meta: dict[str, Any], detect: bool, resume: bool, part_rows: int, flush_seconds: float) -> Sink:
    kind = CsvSink if out.suffix.lower() == ".csv" else ParquetSink
    return kind(out, meta, detect=detect, part_rows=part_rows, resume=resume, flush_seconds=flush_seconds)


def _run(
    source: Source,
    sink_for: Callable[[str], Sink],
    spec: ModelSpec,
    settings: Settings,
    engine_name: str,
    on_progress: OnProgress | None,
    output: str | None = None,
) -> Report:
    t0 = time.perf_counter()
    run = engine(engine_name)
    sha = sha256_file(spec.open(1).backend.path)  # a bad model fails here, before anything is written
    sink = sink_for(sha)  # an existing output is locked and checked here
    try:
        done = sink.done()
        seen = np.zeros(source.total, bool)
        seen[done[(done >= 0) & (done < source.total)]] = True
        resumed = int(seen.sum())
        count = {"inputs": resumed, "faces": 0}

        def step(inputs: int, faces: int) -> None:
            count["inputs"] += inputs
            count["faces"] += faces
            if on_progress is not None:
                on_progress(count["inputs"], source.total, count["faces"])

        if on_progress is not None:
            on_progress(resumed, source.total, 0)
        ran = run(source, lambda i: bool(seen[i]), sink, spec, settings, step)
        sink.close()
        if ran - {sha}:  # changed during the run, or (Ray) another copy on some node
            others = ", ".join(sorted(h[:12] for h in ran - {sha}))
            raise XEmotionError(f"the model file {sha[:12]} was not the one every worker ran (also: {others})")
        tally = sink.tally(source.total)  # read back and checked, still under the lock
    finally:
        sink.release()
    report = Report(
        source.description,
        output,
        engine_name,
        source.total,
        resumed,
        tally.inputs,
        tally.rows,
        tally.errors,
        count["faces"],
        round(time.perf_counter() - t0, 3),
        sha,
    )
    if tally.missing or tally.inputs != source.total:
        raise XEmotionError(
            f"the output holds {tally.inputs} of {source.total} inputs ({tally.missing} missing); "
            "run again with --resume to finish it"
        )
    return report


def _inputs(source: str | os.PathLike[str], column: str | None) -> Source:
    """The source's inputs; a source with none is an error, never an empty result."""
    src = open_source(source, column)
    if src.total == 0:
        raise XEmotionError(f"{os.fspath(source)}: no images found")
    return src


def limits() -> dict[str, int]:
    """The input limits now, validated (a bad $XEMOTION_MAX_PIXELS or $XEMOTION_MAX_IMAGE_BYTES fails here,
    before any input is read, never as an error row per input)."""
    return {"max_pixels": max_pixels(), "max_image_bytes": max_image_bytes()}


def _settings(
    detect: bool, margin: float, detector: str, detector_options: Mapping[str, Any] | None, **kwargs: Any
) -> Settings:
    limits()
    if not 0.0 <= margin <= 1.0:
        raise XEmotionError(f"margin must lie in [0, 1], got {margin}")
    if not detect:
        return Settings(**kwargs)
    faces = Faces(margin, detector, tuple(sorted((detector_options or {}).items())))
    faces.check()
    return Settings(faces=faces, **kwargs)


def classify(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: ModelSpec | str | os.PathLike[str] | None = None,
    column: str | None = None,
    detect: bool = False,
    margin: float = MARGIN,
    detector: str = DEFAULT_DETECTOR,
    detector_options: Mapping[str, Any] | None = None,
    engine: str = "local",
    resume: bool = False,
    batch: int = 256,
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
    part_rows: int = PART_ROWS,
    flush_seconds: float = FLUSH_SECONDS,
    on_progress: OnProgress | None = None,
) -> Report:
    """Classify every image of ``source`` into ``out``: a Parquet dataset folder, or a CSV file (``.csv``).

    ``resume`` continues an interrupted run into the same ``out`` (same source, model and settings). A
    part is written every ``part_rows`` rows, or once its oldest row is ``flush_seconds`` old.
    """
    if part_rows < 1:
        raise XEmotionError("part_rows must be at least 1")
    if not 0.0 <= flush_seconds <= 86_400.0:  # NaN fails too
        raise XEmotionError(f"flush_seconds must lie in [0, 86400], got {flush_seconds}")
    settings = _settings(
        detect, margin, detector, detector_options, batch=batch, workers=workers, threads=threads, address=address
    )
    src = _inputs(source, column)
    spec = _spec(model)
    out_path = Path(out)
    meta = {
        "format": 1,
        "source": src.description,
        "inputs": src.total,
        "fingerprint": src.fingerprint,
        "columns": [c.name for c in columns(detect)],
        "detect": [margin, detector, dict(detector_options or {})] if detect else None,
        "limits": limits(),
    }
    return _run(
        src,
        lambda sha: _sink(out_path, {**meta, "model_sha256": sha}, detect, resume, part_rows, flush_seconds),
        spec,
        settings,
        engine,
        on_progress,
        str(out_path),
    )


def classify_table(
    source: str | os.PathLike[str],
    *,
    model: ModelSpec | str | os.PathLike[str] | None = None,
    column: str | None = None,
    detect: bool = False,
    margin: float = MARGIN,
    detector: str = DEFAULT_DETECTOR,
    detector_options: Mapping[str, Any] | None = None,
    engine: str = "local",
    batch: int = 256,
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
) -> Any:
    """The result table of ``source`` as a ``pyarrow.Table``, in memory (for notebooks; ``classify``
    writes one to disk instead)."""
    require("pyarrow", "classify")  # the table is pyarrow's: say so before any work, not after it
    settings = _settings(
        detect, margin, detector, detector_options, batch=batch, workers=workers, threads=threads, address=address
    )
    src = _inputs(source, column)
    sink = MemorySink(detect)
    _run(src, lambda _sha: sink, _spec(model), settings, engine, None)
    return sink.table()


__all__ = ["ENGINES", "ModelSpec", "Report", "classify", "classify_table"]
