"""Where `classify` writes: a Parquet dataset (a folder of part files), a CSV file, or memory.

A Parquet part is written under no name (or a hidden one) and renamed into place when complete, so a
killed run (even by SIGKILL) leaves every finished part readable and no half-written part under a part
name. A CSV file grows by whole parts; a resumed run first cuts a torn tail. ``done()`` says which
inputs are already present, so ``--resume`` skips them; ``tally()`` reads the result back for the
final check that every input appears.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xruntime_emotion.atomic import atomic_path, write_text_atomic
from xruntime_emotion.batch.work import Rows, arrow_schema, columns, to_arrow
from xruntime_emotion.errors import DataError, XEmotionError, require

META = "_xemotion.json"  # beside the parts; Parquet readers skip names starting with "_" or "."
_PART = re.compile(r"part-(\d{6})\.parquet")


@dataclass(frozen=True)
class Tally:
    rows: int
    inputs: int  # distinct input indices present
    errors: int  # inputs whose row carries an error
    missing: int  # indices in [0, total) not present


class Sink(Protocol):
    def done(self) -> np.ndarray:
        """The input indices already written (resume)."""
        ...

    def write(self, rows: Rows) -> None: ...

    def close(self) -> None: ...

    def tally(self, total: int) -> Tally: ...


def _count(index: np.ndarray, error: list[Any], total: int) -> Tally:
    present = np.unique(index)
    in_range = present[(present >= 0) & (present < total)]
    failed = {i for i, e in zip(index.tolist(), error) if e is not None and e != ""}
    return Tally(len(index), len(present), len(failed), total - len(in_range))


def _empty() -> np.ndarray:
    return np.empty(0, np.int64)


class _Buffered:
    """Rows gathered until a part holds ``part_rows``, then flushed in one piece."""

    def __init__(self, detect: bool, part_rows: int) -> None:
        self.detect = detect
        self.part_rows = part_rows
        self.names = [c.name for c in columns(detect)]
        self.rows: Rows = {n: [] for n in self.names}

    def write(self, rows: Rows) -> None:
        for n in self.names:
            self.rows[n].extend(rows[n])
        if len(self.rows["index"]) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows["index"]:
            self._flush(self.rows)
            self.rows = {n: [] for n in self.names}

    def _flush(self, rows: Rows) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.flush()


class ParquetSink(_Buffered):
    """A folder of ``part-NNNNNN.parquet`` files plus ``_xemotion.json`` (what was run, for --resume)."""

    def __init__(self, folder: Path, meta: dict[str, Any], *, detect: bool, part_rows: int, resume: bool) -> None:
        super().__init__(detect, part_rows)
        self.pq = require("pyarrow.parquet", "classify")
        self.folder = folder
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{folder}: exists and is not a folder (a Parquet result is a folder of parts)")
        existing = self._parts()
        if (existing or (folder / META).exists()) and not resume:
            raise DataError(f"{folder}: already holds results; pass --resume to continue them, or name a new folder")
        if resume and (folder / META).exists():
            self._check(meta)
        if folder.is_dir():
            for stale in folder.glob(".part-*"):  # a named temporary a killed run left (no O_TMPFILE there)
                stale.unlink(missing_ok=True)
        self.meta = meta  # written with the first part: a run that fails before any leaves no folder
        self.next = max((int(_PART.fullmatch(p.name)[1]) for p in existing), default=-1) + 1  # type: ignore[index]

    def _parts(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _PART.fullmatch(p.name))

    def _check(self, meta: dict[str, Any]) -> None:
        try:
            old = json.loads((self.folder / META).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.folder / META}: unreadable ({exc})") from None
        changed = [k for k in meta if old.get(k) != meta[k]] if isinstance(old, dict) else ["all"]
        changed = ["the inputs" if k in ("inputs", "fingerprint") else k for k in changed]
        changed = list(dict.fromkeys(changed))
        if changed:
            raise DataError(
                f"{self.folder}: was made with other settings ({', '.join(changed)} differ); "
                "--resume continues the same run only"
            )

    def _read(self, column_names: list[str]) -> list[Any]:
        try:
            return [self.pq.read_table(p, columns=column_names) for p in self._parts()]
        except Exception as exc:  # a part damaged after it was written
            raise DataError(f"{self.folder}: a part file is unreadable ({exc})") from None

    def done(self) -> np.ndarray:
        tables = self._read(["index"])
        if not tables:
            return _empty()
        return np.unique(np.concatenate([t.column("index").to_numpy() for t in tables]))

    def _flush(self, rows: Rows) -> None:
        table = to_arrow(rows, self.detect)
        path = self.folder / f"part-{self.next:06d}.parquet"
        try:
            if not (self.folder / META).exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                write_text_atomic(self.folder / META, json.dumps(self.meta, indent=1) + "\n")
            with atomic_path(path) as tmp:
                self.pq.write_table(table, tmp)
        except OSError as exc:
            raise XEmotionError(f"{path}: cannot write it ({exc.strerror or exc})") from None
        self.next += 1

    def tally(self, total: int) -> Tally:
        tables = self._read(["index", "error"])
        if not tables:
            return _count(_empty(), [], total)
        index = np.concatenate([t.column("index").to_numpy() for t in tables])
        error = [e for t in tables for e in t.column("error").to_pylist()]
        return _count(index, error, total)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.9g}"  # float32 round-trips at 9 significant digits
    return str(value)


class CsvSink(_Buffered):
    """One CSV file with a header; null is an empty cell. It grows by whole parts (one write each)."""

    def __init__(self, path: Path, *, detect: bool, part_rows: int, resume: bool, model_sha256: str) -> None:
        super().__init__(detect, part_rows)
        self.path = path
        if path.is_dir() or path.is_symlink():
            raise DataError(f"{path}: is a folder or a symbolic link; name a file")
        if path.exists() and path.stat().st_size and not resume:
            raise DataError(f"{path}: already exists; pass --resume to continue it, or name a new file")
        self._done = _empty()
        if resume and path.exists() and path.stat().st_size:
            self._done = self._repair(model_sha256)

    def _repair(self, model_sha256: str) -> np.ndarray:
        """Read what a previous run wrote; keep only inputs whose rows are all there (cut a torn tail)."""
        raw = self.path.read_bytes()
        text = raw[: raw.rfind(b"\n") + 1].decode("utf-8", errors="replace")
        records = list(csv.reader(io.StringIO(text)))
        if not records or records[0] != self.names:
            raise DataError(f"{self.path}: its columns are not this run's; --resume continues the same run only")
        at = {n: i for i, n in enumerate(self.names)}
        body = [r for r in records[1:] if len(r) == len(self.names)]
        shas = {r[at["model_sha256"]] for r in body}
        if shas - {model_sha256}:
            raise DataError(f"{self.path}: was made with another model; --resume continues the same run only")
        seen: dict[int, int] = {}
        for r in body:
            seen[int(r[at["index"]])] = seen.get(int(r[at["index"]]), 0) + 1
        complete = set(seen)
        if self.detect:  # an image with faces has one row per face; the last one may be cut short
            want = {int(r[at["index"]]): int(r[at["faces"]]) if r[at["faces"]] else 1 for r in body}
            complete = {i for i, n in seen.items() if n >= max(1, want[i])}
        kept = [r for r in body if int(r[at["index"]]) in complete]
        if len(kept) != len(records) - 1 or len(text) != len(raw):
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows([self.names, *kept])
            write_text_atomic(self.path, buffer.getvalue())
        return np.array(sorted(complete), np.int64)

    def done(self) -> np.ndarray:
        return self._done

    def _flush(self, rows: Rows) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(zip(*([_cell(v) for v in rows[n]] for n in self.names)))
        try:
            if not self.path.exists() or not self.path.stat().st_size:  # the header comes with the first part
                write_text_atomic(self.path, ",".join(self.names) + "\n")
            with open(self.path, "a", encoding="utf-8", newline="") as f:
                f.write(buffer.getvalue())
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise XEmotionError(f"{self.path}: cannot write it ({exc.strerror or exc})") from None

    def tally(self, total: int) -> Tally:
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            at_index, at_error = header.index("index"), header.index("error")
            index, error = [], []
            for r in reader:
                index.append(int(r[at_index]))
                error.append(r[at_error] or None)
        return _count(np.array(index, np.int64), error, total)


class MemorySink:
    """Results kept as Arrow tables, for ``classify_table``."""

    def __init__(self, detect: bool) -> None:
        self.detect = detect
        self.tables: list[Any] = []

    def done(self) -> np.ndarray:
        return _empty()

    def write(self, rows: Rows) -> None:
        self.tables.append(to_arrow(rows, self.detect))

    def close(self) -> None:
        pass

    def table(self) -> Any:
        pa = require("pyarrow", "classify")
        return pa.concat_tables(self.tables) if self.tables else arrow_schema(self.detect).empty_table()

    def tally(self, total: int) -> Tally:
        t = self.table()
        return _count(t.column("index").to_numpy(), t.column("error").to_pylist(), total)
