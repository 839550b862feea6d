"""The Ray engine: Ray Data's batch inference with a stateful model (``map_batches`` with a class).

Each actor holds one ``EmotionClassifier`` (onnxruntime sessions cannot be pickled), with as many
inference threads as the actor has CPUs; ``workers`` sets how many actors run. The inputs go in as a
dataset of (index, path) rows, or of (index, image bytes) for a Parquet column of bytes; actors read
and decode the files themselves, so on a cluster the paths (and the model file) must be visible to
every node, as for ``ray.data.read_binary_files``. Results come back to the driver in order and are
written by the same sink as the local engine's: atomic parts, ``--resume``, the same columns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from xruntime_emotion.batch.engines import Progress, Settings, chunks
from xruntime_emotion.batch.sinks import Sink
from xruntime_emotion.batch.sources import Item, Source
from xruntime_emotion.batch.work import classify_decoded, decode_all, to_arrow
from xruntime_emotion.errors import require
from xruntime_emotion.runtime.classifier import ModelSpec
from xruntime_emotion.util import sha256_file

BLOCK = 1024  # the most inputs per dataset block handed to Ray
_INPUT = ("index", "path", "data")  # the columns of those blocks


class Classify:
    """The actor: one classifier, reused for every batch it is given."""

    def __init__(self, spec: ModelSpec, settings: Settings, threads: int) -> None:
        self.clf = spec.open(threads)
        self.sha = sha256_file(self.clf.backend.path)
        self.settings = settings

    def __call__(self, batch: Any) -> Any:
        items = [Item(int(i), str(p), d) for i, p, d in zip(*(batch.column(c).to_pylist() for c in _INPUT))]
        detect = self.settings.faces is not None
        return to_arrow(classify_decoded(self.clf, decode_all(items, self.settings.faces), self.sha, detect), detect)


def _blocks(items: list[Item], size: int) -> Iterator[Any]:
    pa = require("pyarrow", "classify")
    for chunk in chunks(iter(items), size):
        data = [i.data for i in chunk]
        as_bytes = any(isinstance(d, bytes) for d in data)
        yield pa.table(
            {
                "index": pa.array([i.index for i in chunk], pa.int64()),
                "path": pa.array([i.path for i in chunk], pa.string()),
                "data": pa.array(data, pa.binary() if as_bytes else pa.string()),
            }
        )


def run_ray(
    source: Source, skip: Callable[[int], bool], sink: Sink, spec: ModelSpec, settings: Settings, step: Progress
) -> set[str]:
    """Classify every input not skipped into ``sink`` with Ray Data; returns the sha256 of every model file
    the actors ran (on a cluster, one per node's copy)."""
    ray = require("ray", "ray")  # ray.data and pyarrow: checked by ``engine("ray")``
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=settings.address,
            num_cpus=None if settings.address else os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=False,
        )
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in input order
        ctx.enable_progress_bars = False  # ours is on stderr
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = settings.workers or 1
        threads = settings.threads or max(1, cpus // workers)
        items = list(source.items(skip))
        if not items:
            return set()
        size = max(settings.batch, min(BLOCK, -(-len(items) // (4 * workers))))  # a few blocks per actor at least
        blocks = list(_blocks(items, size))
        ds = ray.data.from_arrow(blocks).map_batches(
            Classify,
            fn_constructor_args=(spec, settings, threads),
            batch_size=settings.batch,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
        )
        used: set[str] = set()
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            rows = batch.to_pydict()
            used.update(rows["model_sha256"])
            sink.write(rows)
            step(len(set(rows["index"])), sum(label is not None for label in rows["label"]))
        return used
    finally:
        if started:
            ray.shutdown()
