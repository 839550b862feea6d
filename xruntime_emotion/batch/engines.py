"""The engines that run `classify`: one row each in ENGINES.

local: one process. A thread pool decodes the next batches while the model runs on the current one
(Pillow and onnxruntime release the GIL), at most ``2 x workers + 2`` batches and ``WINDOW_BYTES`` of
image bytes (a table's column) ahead, so memory stays bounded whatever the input size.

ray: Ray Data across a cluster; see ``xruntime_emotion.batch.ray_engine``.
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from xruntime_emotion.batch.sinks import Sink
from xruntime_emotion.batch.sources import Item, Source
from xruntime_emotion.batch.work import Faces, Rows, classify_decoded, decode_all
from xruntime_emotion.errors import XEmotionError, require
from xruntime_emotion.runtime.classifier import ModelSpec
from xruntime_emotion.util import sha256_file

T = TypeVar("T")
BATCH_BYTES = 32 << 20  # a batch of a table's image bytes ends at this many bytes, whatever its length
WINDOW_BYTES = 128 << 20  # the most image bytes the local engine holds ahead of the model
Progress = Callable[[int, int], None]  # (inputs finished in this call, faces classified in it)


@dataclass(frozen=True)
class Settings:
    """How to run; the defaults suit one machine."""

    batch: int = 256  # inputs per model call (and per Ray batch); 256 ran faster than 64 here
    workers: int | None = None  # local: decode threads (default: cores - 1, at least 1); ray: actors
    threads: int | None = None  # inference threads (default: all cores; ray: cores per actor)
    faces: Faces | None = None  # --detect
    address: str | None = None  # ray: a running cluster to join (default: start a local one)

    def __post_init__(self) -> None:
        if self.batch < 1 or (self.workers is not None and self.workers < 0):
            raise XEmotionError("batch must be at least 1, and workers at least 0")
        if self.threads is not None and self.threads < 1:
            raise XEmotionError("threads must be at least 1")


def chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _bytes(item: Item) -> int:
    return len(item.data) if isinstance(item.data, bytes) else 0


def batches(items: Iterator[Item], size: int, max_bytes: int = BATCH_BYTES) -> Iterator[list[Item]]:
    """Batches of at most ``size`` inputs, ending early once they hold ``max_bytes`` of image bytes."""
    batch: list[Item] = []
    held = 0
    for item in items:
        batch.append(item)
        held += _bytes(item)
        if len(batch) >= size or held >= max_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def run_local(
    source: Source, skip: Callable[[int], bool], sink: Sink, spec: ModelSpec, settings: Settings, step: Progress
) -> set[str]:
    """Classify every input not skipped into ``sink``; returns the sha256 of the model file it ran."""
    clf = spec.open(settings.threads)
    sha = sha256_file(clf.backend.path)
    detect = settings.faces is not None
    workers = settings.workers or max(1, (os.cpu_count() or 2) - 1)
    window: deque[tuple[Future[Any], int]] = deque()  # decoding batches and the image bytes each holds

    def finish(decoded: Any) -> None:
        rows: Rows = classify_decoded(clf, decoded, sha, detect)
        sink.write(rows)
        step(len(decoded), sum(0 if d.crops is None else len(d.crops) for d in decoded))

    if settings.workers == 0:  # decode in this thread, between model calls
        for chunk in batches(source.items(skip), settings.batch):
            finish(decode_all(chunk, settings.faces))
        return {sha}
    with ThreadPoolExecutor(workers, thread_name_prefix="xemotion-decode") as pool:
        try:
            ahead = 0
            for chunk in batches(source.items(skip), settings.batch):
                held = sum(_bytes(i) for i in chunk)
                window.append((pool.submit(decode_all, chunk, settings.faces), held))
                ahead += held
                while len(window) > 2 * workers + 2 or (ahead > WINDOW_BYTES and len(window) > 1):
                    done, held = window.popleft()
                    ahead -= held
                    finish(done.result())
            while window:
                finish(window.popleft()[0].result())
        finally:
            for f, _ in window:
                f.cancel()
    return {sha}


Engine = Callable[[Source, Callable[[int], bool], Sink, ModelSpec, Settings, Progress], set[str]]


@dataclass(frozen=True)
class EngineSpec:
    run: str  # "module:function", imported when chosen
    needs: tuple[tuple[str, str], ...] = ()  # (module, pip extra) it cannot start without


ENGINES: dict[str, EngineSpec] = {
    "local": EngineSpec("xruntime_emotion.batch.engines:run_local"),
    "ray": EngineSpec("xruntime_emotion.batch.ray_engine:run_ray", (("ray.data", "ray"), ("pyarrow", "ray"))),
}


def engine(name: str) -> Engine:
    """The engine of that name, its dependencies checked (before anything is written)."""
    if name not in ENGINES:
        raise XEmotionError(f"unknown engine {name!r}; choose from: {', '.join(ENGINES)}")
    spec = ENGINES[name]
    for module, extra in spec.needs:
        require(module, extra)
    module, _, function = spec.run.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


__all__ = ["ENGINES", "Settings", "batches", "chunks", "engine", "run_local"]
