"""What `classify` reads: a folder (recursive), a glob, a text file of paths, one image, or a Parquet/CSV
table with a column of paths or (Parquet) of image bytes.

Every input gets an ``index``: its position in the source (for a table, its row number), in a fixed
order (folders and globs sorted by path), so a resumed run skips exactly what is done and results join
back to a table by row. Paths are held as strings, never as decoded images.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xruntime_emotion.errors import DataError, require

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LIST_SUFFIXES = (".txt", ".lst")
TABLE_SUFFIXES = (".parquet", ".csv")
_MAGIC = set("*?[")
TABLE_BATCH = 4096  # rows read from a table at a time


@dataclass(frozen=True)
class Item:
    """One input: its index in the source, the path shown in results, and what to decode (a file or bytes)."""

    index: int
    path: str
    data: str | bytes | None  # a file to open, image bytes, or None (a table row without a value)


Skip = Callable[[int], bool]


@dataclass
class Source:
    """An ordered, countable stream of inputs."""

    description: str  # what the user named, as stored with the results
    total: int
    _items: Callable[[Skip], Iterator[Item]] = field(repr=False)
    fingerprint: str = ""  # changes when the inputs or their order change (--resume refuses then)

    def items(self, skip: Skip | None = None) -> Iterator[Item]:
        """The inputs in order, less those ``skip`` names (resume)."""
        return self._items(skip or (lambda _i: False))


def _listed(description: str, paths: list[str], base: Path | None) -> Source:
    def items(skip: Skip) -> Iterator[Item]:
        for i, p in enumerate(paths):
            if not skip(i):
                yield Item(i, p, str(base / p) if base is not None and not os.path.isabs(p) else p)

    return Source(description, len(paths), items, _digest(paths))


def _digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _stamp(path: Path) -> str:
    """A table file's identity: rewriting it changes its size or time."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _walk(folder: Path) -> list[str]:
    """Image files under ``folder``, recursively, sorted (folders entered in name order)."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES))
    return found


def _path_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the list of paths ({exc})") from None
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def _parquet(path: Path, column: str) -> Source:
    pq = require("pyarrow.parquet", "classify")
    pa = require("pyarrow", "classify")
    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types on damaged files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = meta.schema_arrow
    if column not in schema.names:
        raise DataError(f"{path}: no column {column!r} (it has: {', '.join(schema.names)}); name one with --column")
    kind = schema.field(column).type
    as_bytes = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    if not (as_bytes or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{path}: column {column!r} is {kind}; it must hold paths (string) or image bytes (binary)")
    base = path.parent

    def items(skip: Skip) -> Iterator[Item]:
        i = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=TABLE_BATCH, columns=[column]):
            for value in batch.column(0).to_pylist():
                if not skip(i):
                    if as_bytes:
                        yield Item(i, f"{path.name}#{i}", value)
                    else:
                        yield Item(i, value or "", None if not value else str(base / value))
                i += 1

    return Source(f"{path}:{column}", meta.metadata.num_rows, items, _stamp(path))


def _csv_table(path: Path, column: str) -> Source:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if column not in header:
                raise DataError(f"{path}: no column {column!r} (it has: {', '.join(header)}); name one with --column")
            at = header.index(column)
            paths = [row[at] if at < len(row) else "" for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it as CSV ({exc})") from None
    base = path.parent

    def items(skip: Skip) -> Iterator[Item]:
        for i, p in enumerate(paths):
            if not skip(i):
                yield Item(i, p, str(base / p) if p else None)

    return Source(f"{path}:{column}", len(paths), items, _digest(paths))


def open_source(source: str | os.PathLike[str], column: str | None = None) -> Source:
    """The inputs ``source`` names (see the module docstring); ``column`` names a table's column."""
    text = os.fspath(source)
    path = Path(text)
    suffix = path.suffix.lower()
    if column is not None and suffix not in TABLE_SUFFIXES:
        raise DataError(f"--column applies to a table (.parquet or .csv), not to {text}")
    if path.is_dir():
        return _listed(text, _walk(path), None)
    if path.is_file():
        if suffix == ".parquet":
            return _parquet(path, column or "path")
        if suffix == ".csv":
            return _csv_table(path, column or "path")
        if suffix in LIST_SUFFIXES:
            return _listed(text, _path_list(path), path.parent)
        return _listed(text, [text], None)  # one image (or one bad input: it becomes an error row)
    if _MAGIC & set(text):
        return _listed(text, sorted(p for p in glob.iglob(text, recursive=True) if os.path.isfile(p)), None)
    raise DataError(f"{text}: no such file or folder, and not a glob pattern")
