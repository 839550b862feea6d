"""Where the CLI's words go: results on stdout; progress bars (on a terminal) and a one-line summary on
stderr; the runtimes' own chatter (TensorFlow, absl, oneDNN, XNNPACK, onnxruntime's quantizer) into
``--log FILE``, or nowhere, never onto the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


@dataclass
class Settings:
    quiet: bool = False  # no progress bars (the summary line stays)
    log: Path | None = None  # where the runtimes' chatter goes (None: nowhere)


SETTINGS = Settings()


@contextlib.contextmanager
def native_output() -> Iterator[None]:
    """For the block, file descriptors 1 and 2 (what C++ libraries and Python's own print and logging
    write to) go to the log; our two consoles keep writing to the real stdout and stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    real = os.dup(1), os.dup(2)
    target = os.open(SETTINGS.log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved: tuple[IO[str] | None, IO[str] | None] = (out._file, err._file)
    streams = [os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="replace") for fd in real]
    out.file, err.file = streams
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for s in streams:
            s.flush()
        os.dup2(real[0], 1)
        os.dup2(real[1], 2)
        for fd in real:
            os.close(fd)
        out._file, err._file = saved  # back to following sys.stdout / sys.stderr
        for s in streams:
            s.close()


def progress() -> Progress:
    """A progress display on stderr: drawn on a terminal unless --quiet, silent otherwise."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=SETTINGS.quiet or not err.is_terminal,
        # Python-level writes go where they were going (stdout stays the result's; libraries' stderr
        # handlers keep their own routing, e.g. to --log), not through the bar's console
        redirect_stdout=False,
        redirect_stderr=False,
    )


class Summary:
    """Times a command; ``done(text)`` prints its one-line summary on stderr (always, even with --quiet)."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.t0 = time.perf_counter()

    def done(self, text: str) -> None:
        err.print(f"{self.command}: {text} ({time.perf_counter() - self.t0:.1f} s)", highlight=False, soft_wrap=True)


Step = Callable[[str, int, int], None]  # (what starts now, how many are done, how many in all)


@contextlib.contextmanager
def steps(description: str) -> Iterator[Step]:
    """A bar for a command made of countable units; the library reports each unit as it starts."""
    with progress() as bar:
        task = bar.add_task(description, total=None, rate="")

        def step(label: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=f"{description}: {label}")

        yield step
        total = bar.tasks[0].total
        bar.update(task, completed=total or 0, description=description)
