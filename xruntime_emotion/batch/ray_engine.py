"""The Ray engine: Ray Data's batch inference with a stateful model (``map_batches`` with a class).

Each actor holds one ``EmotionClassifier`` (onnxruntime sessions cannot be pickled), with as many
inference threads as the actor has CPUs. The defaults fit the nodes, never the cluster's total: an
actor gets the CPUs of the smallest alive node, and as many actors run as the nodes hold (``plan``).
Before Ray Data starts, one placement group per actor (released at once) finds how many actors the
cluster can place within the placement timeout (``$XEMOTION_RAY_PLACEMENT_TIMEOUT``, default 60 s):
none is a one-line error saying what was asked and what the nodes have, instead of a wait for ever;
fewer than asked run, with a warning.

The inputs go in as a dataset of (index, path) rows, or of (index, image bytes) for a Parquet column of
bytes; actors read and decode the files themselves, so on a cluster the paths (and the model file) must
be visible to every node, as for ``ray.data.read_binary_files``. Results come back to the driver in order
and are written by the same sink as the local engine's: atomic parts, ``--resume``, the same columns.
Each result batch carries the actor and node that made it (two columns the driver strips), so the
driver counts the actors that ran; a node that leaves the cluster during the run is reported too.

What the engine has to say goes to the logger ``xruntime_emotion.batch.ray_engine``: warnings (fewer
actors than asked, a node lost) and, at INFO, how many actors ran (``actors``, ``nodes``, ``workers`` on
the record). Ray's own loggers write to file descriptor 2 for the run, as a native library would, never
through ``sys.stderr`` (where a progress display may be drawing): the CLI sends that to ``--log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from xruntime_emotion.batch.engines import Progress, Settings, chunks
from xruntime_emotion.batch.sinks import Sink
from xruntime_emotion.batch.sources import Item, Source
from xruntime_emotion.batch.work import classify_decoded, decode_all, to_arrow
from xruntime_emotion.errors import XEmotionError, require
from xruntime_emotion.runtime.classifier import ModelSpec
from xruntime_emotion.util import env_number, sha256_file

BLOCK = 1024  # the most inputs per dataset block handed to Ray
_INPUT = ("index", "path", "data")  # the columns of those blocks
_WHO = ("_actor", "_node")  # the columns each result batch carries back, stripped by the driver
PLACEMENT_TIMEOUT = 60.0  # seconds to wait for an actor's CPUs; $XEMOTION_RAY_PLACEMENT_TIMEOUT overrides
PLACEMENT_ENV = "XEMOTION_RAY_PLACEMENT_TIMEOUT"
PLACEMENT_MAX = 7 * 24 * 3600.0  # a week
START_S = 120.0  # what an actor may take beyond placement: a worker process, its imports, the model
NODE_CHECK_S = 2.0  # how often the driver looks for lost nodes during the run
RAY_LOGGERS = ("ray", "ray.data")  # Ray's loggers with a handler of their own (the rest propagate to these)

log = logging.getLogger(__name__)


def placement_timeout() -> float:
    """Seconds an actor may wait for its CPUs (``$XEMOTION_RAY_PLACEMENT_TIMEOUT``, validated)."""
    return env_number(PLACEMENT_ENV, PLACEMENT_TIMEOUT, 0, PLACEMENT_MAX)


@dataclass(frozen=True)
class Plan:
    """How many actors to run and the CPUs (= inference threads) of each, for nodes of ``cpus`` CPUs."""

    workers: int
    threads: int
    cpus: tuple[int, ...]  # of each alive node

    def nodes(self) -> str:
        """The nodes, in words: '2 nodes of 1 CPU', 'nodes of 1, 4 CPUs'."""
        if not self.cpus:
            return "no alive node with a CPU"
        if len(set(self.cpus)) == 1:
            n = len(self.cpus)
            return f"{n} node{'s' * (n > 1)} of {_cpus(self.cpus[0])}"
        return f"{len(self.cpus)} nodes of {', '.join(map(str, sorted(self.cpus)))} CPUs"


def _cpus(n: int) -> str:
    return f"{n} CPU{'s' * (n != 1)}"


def plan(cpus: Sequence[int], workers: int | None, threads: int | None) -> Plan:
    """Defaults that fit the nodes: ``threads`` the CPUs of the smallest node (or, with ``workers`` given,
    the most CPUs per actor that still lets that many fit), ``workers`` as many actors as fit."""
    usable = tuple(sorted((c for c in cpus if c >= 1), reverse=True))
    if threads is None:
        if not workers:
            threads = min(usable, default=1)
        else:
            fitting = [t for t in range(1, max(usable, default=1) + 1) if sum(c // t for c in usable) >= workers]
            threads = max(fitting, default=1)
    return Plan(workers or max(1, sum(c // threads for c in usable)), threads, usable)


def _alive(ray: Any) -> dict[str, int]:
    """Node id -> CPUs, of the alive nodes."""
    return {n["NodeID"]: int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")}


def _place(ray: Any, want: Plan, timeout: float) -> int:
    """How many of the plan's actors can have their CPUs within ``timeout`` seconds (reserved one
    placement group each, released again before Ray Data starts its actors)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    groups = [placement_group([{"CPU": want.threads}]) for _ in range(want.workers)]
    try:
        ready, _ = ray.wait([g.ready() for g in groups], num_returns=len(groups), timeout=timeout)
        return len(ready)
    finally:
        for g in groups:
            remove_placement_group(g)


@dataclass
class Ran:
    """What a run said about its actors: how many ran, on how many nodes, of how many asked."""

    actors: int = 0
    nodes: int = 0
    workers: int = 0

    def __str__(self) -> str:
        a, n = self.actors, self.nodes
        return f"{a} Ray actor{'s' * (a != 1)} on {n} node{'s' * (n != 1)}"


class _Listener(logging.Handler):
    def __init__(self, on_warning: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.on_warning = on_warning
        self.ran = Ran()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.on_warning(record.getMessage())
        elif hasattr(record, "actors"):
            self.ran = Ran(record.actors, record.nodes, record.workers)


@contextlib.contextmanager
def listen(on_warning: Callable[[str], None]) -> Iterator[Callable[[], Ran]]:
    """For the block, the engine's warnings go to ``on_warning`` (one line each) rather than to logging's
    defaults; yields a function that gives what the last run in the block said about its actors."""
    listener = _Listener(on_warning)
    saved = log.level, log.propagate
    log.addHandler(listener)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield lambda: listener.ran
    finally:
        log.removeHandler(listener)
        log.setLevel(saved[0])
        log.propagate = saved[1]


class _ToFd2(logging.Handler):
    """Writes records to file descriptor 2 as it is at the time (``--log`` under the CLI)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            os.write(2, (self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:  # logging must never end the run
            self.handleError(record)


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


@contextlib.contextmanager
def _ray_logs_to_fd2() -> Iterator[None]:
    """For the block, Ray's console handlers (which write to ``sys.stderr`` as it is when they emit, a
    progress display's proxy to the terminal included) are swapped for ones of the same level on file
    descriptor 2; its session log files stay as they are."""
    saved = {}
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = list(logger.handlers)
        for h in [h for h in logger.handlers if _is_console(h)]:
            to_fd2 = _ToFd2(h.level)
            to_fd2.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.removeHandler(h)
            logger.addHandler(to_fd2)
    try:
        yield
    finally:
        for name, handlers in saved.items():
            logging.getLogger(name).handlers[:] = handlers


class Classify:
    """The actor: one classifier, reused for every batch it is given."""

    def __init__(self, spec: ModelSpec, settings: Settings, threads: int) -> None:
        import ray

        self.clf = spec.open(threads)
        self.sha = sha256_file(self.clf.backend.path)
        self.settings = settings
        ctx = ray.get_runtime_context()
        self.who = (ctx.get_actor_id() or "", ctx.get_node_id() or "")

    def __call__(self, batch: Any) -> Any:
        pa = require("pyarrow", "classify")
        items = [Item(int(i), str(p), d) for i, p, d in zip(*(batch.column(c).to_pylist() for c in _INPUT))]
        detect = self.settings.faces is not None
        table = to_arrow(classify_decoded(self.clf, decode_all(items, self.settings.faces), self.sha, detect), detect)
        for name, value in zip(_WHO, self.who):
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        return table


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
    ray = require("ray", "ray")
    require("ray.data", "ray")  # imported now, so that its loggers exist before they are redirected
    timeout = placement_timeout()
    items = list(source.items(skip))
    if not items:
        return set()
    with _ray_logs_to_fd2():
        started = not ray.is_initialized()
        if started:
            ray.init(
                address=settings.address,
                num_cpus=None if settings.address else os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,  # the actors' own output stays in the session's log files
                logging_level=logging.ERROR,
                configure_logging=False,
            )
        try:
            return _run(ray, items, sink, spec, settings, step, timeout)
        finally:
            if started:
                ray.shutdown()


def _run(
    ray: Any, items: list[Item], sink: Sink, spec: ModelSpec, settings: Settings, step: Progress, timeout: float
) -> set[str]:
    nodes = _alive(ray)
    want = plan(list(nodes.values()), settings.workers, settings.threads)
    placed = _place(ray, want, timeout)
    if placed == 0:
        raise XEmotionError(
            f"ray: no actor of {_cpus(want.threads)} could be placed within {timeout:g} s (the placement timeout); "
            f"the cluster has {want.nodes()}"
        )
    if placed < want.workers:
        log.warning(
            "ray: only %d of %d actors of %s could be placed within %g s (the cluster has %s); running %d",
            placed, want.workers, _cpus(want.threads), timeout, want.nodes(), placed,
        )  # fmt: skip
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come back in input order
    ctx.execution_options.verbose_progress = False
    ctx.enable_progress_bars = False  # ours is on stderr
    ctx.enable_operator_progress_bars = False
    # Their CPUs were free a moment ago: if another job takes them first, fail rather than wait for ever.
    ctx.wait_for_min_actors_s = round(timeout + START_S)
    size = max(settings.batch, min(BLOCK, -(-len(items) // (4 * placed))))  # a few blocks per actor at least
    ds = ray.data.from_arrow(list(_blocks(items, size))).map_batches(
        Classify,
        fn_constructor_args=(spec, settings, want.threads),
        batch_size=settings.batch,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=placed),
        num_cpus=want.threads,
    )
    used: set[str] = set()
    actors: set[str] = set()
    ran_on: set[str] = set()
    lost: set[str] = set()
    checked = time.monotonic()
    try:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            rows = batch.to_pydict()
            actors.update(rows.pop("_actor"))
            ran_on.update(rows.pop("_node"))
            used.update(rows["model_sha256"])
            sink.write(rows)
            step(len(set(rows["index"])), sum(label is not None for label in rows["label"]))
            if time.monotonic() - checked > NODE_CHECK_S:
                checked = time.monotonic()
                _report_lost(nodes, _alive(ray), lost)
    except ray.exceptions.GetTimeoutError:
        raise XEmotionError(
            f"ray: {placed} actor{'s' * (placed > 1)} of {_cpus(want.threads)}, placed a moment before, did not "
            f"start within {timeout + START_S:g} s (the placement timeout and {START_S:g} s); the cluster has "
            f"{want.nodes()}, perhaps busy with other work"
        ) from None
    _report_lost(nodes, _alive(ray), lost)
    log.info(
        "ray: %d actor(s) on %d node(s) ran the inputs (%d asked)", len(actors), len(ran_on), want.workers,
        extra={"actors": len(actors), "nodes": len(ran_on), "workers": want.workers},
    )  # fmt: skip
    return used


def _report_lost(before: dict[str, int], now: dict[str, int], lost: set[str]) -> None:
    """Warn once for each node that was alive when the run started and is not now."""
    for node in sorted(set(before) - set(now) - lost):
        lost.add(node)
        log.warning(
            "ray: node %s left the cluster during the run; Ray Data retries its unfinished batches elsewhere",
            node[:12],
        )
