"""What `classify` reads: a folder (recursive), a glob, a text file of paths, one image, or a Parquet/CSV
table with a column of paths or (Parquet) of image bytes.

Every input gets an ``index``: its position in the source (for a table, its row number), in a fixed
order (folders and globs sorted by path), so a resumed run skips exactly what is done and results join
back to a table by row. Paths are held as strings, never as decoded images.

A folder, and a glob with ``**``, are walked without entering symbolic links to folders (a link back to
a parent would never end). A file name that is not valid UTF-8 is shown (the ``path`` column) with each
undecodable byte as ``\\xNN``, Python's ``backslashreplace``; its ``index`` is the exact key back to it.
A Parquet column of image bytes is read a page at a time, and only after its page headers show that no
page of ``n`` values decompresses to more than ``n`` images at the byte limit (``max_image_bytes``) nor
to more than ``parquet_pages.MAX_PAGE_BYTES``: a decompression bomb becomes error rows, never a read. A
value over the limit is an error row.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xruntime_emotion.batch.parquet_pages import PageError, PageTooLarge, check_chunk
from xruntime_emotion.errors import DataError, ImageError, require
from xruntime_emotion.util import env_number

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LIST_SUFFIXES = (".txt", ".lst")
TABLE_SUFFIXES = (".parquet", ".csv")
_MAGIC = set("*?[")
TABLE_BATCH = 4096  # the most rows read from a table at a time
TABLE_BYTES = 32 << 20  # about this many bytes of values per read from a table
# The most bytes one image of a table's column may take (decompression bombs); $XEMOTION_MAX_IMAGE_BYTES
# overrides it. A page of n values may decompress to at most n times this, and to no more than
# parquet_pages.page_cap(this): 128 MiB, or this where it is more.
MAX_IMAGE_BYTES = 32 << 20


def max_image_bytes() -> int:
    """The per-image byte limit now ($XEMOTION_MAX_IMAGE_BYTES, validated when it is read)."""
    return int(env_number("XEMOTION_MAX_IMAGE_BYTES", MAX_IMAGE_BYTES, 0, 2**40))


_MARK = "\0"  # never in a real path: an Item's data that starts with it is not a path (see Item)
_REFUSED = _MARK + "!"


def file_data(path: str) -> str:
    """What an Item carries for a file: its path, or for a name that is not valid UTF-8 the hex of its
    bytes behind a NUL, so that every engine can ship it as text (Arrow strings are UTF-8)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return _MARK + os.fsencode(path).hex()
    return path


def refused(why: str) -> str:
    """An Item's data for an input refused before it was read: it becomes an error row saying why."""
    return _REFUSED + why


def resolve(data: str | bytes) -> str | bytes:
    """The file to open or the bytes to decode; ImageError for an input refused before it was read."""
    if isinstance(data, str) and data.startswith(_MARK):
        if data.startswith(_REFUSED):
            raise ImageError(data[len(_REFUSED) :])
        return os.fsdecode(bytes.fromhex(data[len(_MARK) :]))
    return data


def shown(path: str) -> str:
    """A path as the results show it: itself, or with each byte that is not UTF-8 as \\xNN."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


@dataclass(frozen=True)
class Item:
    """One input: its index in the source, the path shown in results, and what to decode (a file or bytes)."""

    index: int
    path: str  # as shown in the results (valid UTF-8)
    # a file to open, image bytes, or None (a table row without a value); a str that starts with NUL is a
    # file name that is not UTF-8 or a refusal (``file_data``, ``refused``): ``resolve`` reads it
    data: str | bytes | None


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
                full = str(base / p) if base is not None and not os.path.isabs(p) else p
                yield Item(i, shown(p), file_data(full))

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


def _one_name(pattern: str, name: str) -> bool:
    """One path component against one pattern component, as glob matches them (a wildcard does not match
    a hidden name unless the pattern starts with a dot)."""
    if not _MAGIC & set(pattern):
        return pattern == name
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _matches(pattern: list[str], names: list[str]) -> bool:
    """Path components against pattern components; ``**`` matches any number of them (none hidden)."""

    @functools.cache
    def at(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(names)
        if pattern[i] == "**":
            return at(i + 1, j) or (j < len(names) and not names[j].startswith(".") and at(i, j + 1))
        return j < len(names) and _one_name(pattern[i], names[j]) and at(i + 1, j + 1)

    return at(0, 0)


def _glob(pattern: str) -> list[str]:
    """Files matching ``pattern``, sorted. A recursive pattern walks the folders as the folder source
    does, so symbolic links to folders are listed, never entered: a link loop cannot run for ever."""
    if "**" not in pattern:  # every wildcard stands for one level: glob's walk is bounded by the pattern
        return sorted(p for p in glob.iglob(pattern) if os.path.isfile(p))
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not _MAGIC & set(parts[fixed]):
        fixed += 1
    root = os.sep.join(parts[:fixed]) if fixed else ""
    if fixed == 1 and parts[0] == "":  # "/**/x": the root folder
        root = os.sep
    rest = parts[fixed:]
    top = root or os.curdir
    found: list[str] = []
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        inner = os.path.relpath(folder, top)
        names = [] if inner == os.curdir else inner.split(os.sep)
        for f in sorted(files):
            if _matches(rest, [*names, f]):
                found.append(os.path.join(root, *names, f) if root else os.path.join(*names, f))
    return sorted(p for p in found if os.path.isfile(p))


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

    def chunk_of(metadata: Any) -> int:
        found = [c for c in range(metadata.num_columns) if metadata.schema.column(c).path == column]
        if len(found) != 1:
            raise DataError(f"{path}: column {column!r} is not one flat column")
        return found[0]

    chunk_of(meta.metadata)
    total = meta.metadata.num_rows
    base = path.parent

    def item(i: int, value: Any, size: int | None, limit: int) -> Item:
        name = f"{path.name}#{i}"
        if size is not None and size > limit:
            return Item(
                i, name, refused(f"{name}: {size} bytes, over the limit of {limit} ($XEMOTION_MAX_IMAGE_BYTES)")
            )
        if as_bytes:
            return Item(i, name, value.as_py())
        text = value.as_py()
        return Item(i, shown(text or ""), None if not text else file_data(str(base / text)))

    def items(skip: Skip) -> Iterator[Item]:
        limit = max_image_bytes()
        i = 0
        with open(path, "rb") as f:  # one open file: the pages checked are the pages read
            try:
                reader = pq.ParquetFile(f, buffer_size=1 << 20, pre_buffer=False)
                same = column in reader.schema_arrow.names and reader.schema_arrow.field(column).type == kind
            except Exception as exc:
                raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
            at = chunk_of(reader.metadata)
            if not same:  # read plain, as listed: never as an Arrow dictionary (see parquet_pages)
                raise DataError(f"{path}: changed since it was listed (column {column!r} is no longer {kind})")
            groups = [reader.metadata.row_group(g) for g in range(reader.metadata.num_row_groups)]
            if reader.metadata.num_rows != total or sum(g.num_rows for g in groups) != total:
                raise DataError(f"{path}: changed since it was listed, or its row groups do not add up to its rows")
            for g, group in enumerate(groups):
                try:
                    chunk = check_chunk(f, group.column(at), limit)
                except PageError as exc:  # not read: each of its rows is an error row saying why
                    why = _with_advice(exc)
                    for j in range(i, i + group.num_rows):
                        if not skip(j):
                            yield Item(
                                j, f"{path.name}#{j}", refused(f"{path.name}#{j}: row group {g} not read: {why}")
                            )
                    i += group.num_rows
                    continue
                # No value is larger than the largest page: a batch holds at most max(TABLE_BYTES, that page)
                rows = min(TABLE_BATCH, max(1, TABLE_BYTES // max(1, chunk.largest_page)))
                try:
                    for batch in reader.iter_batches(batch_size=rows, row_groups=[g], columns=[column]):
                        values = batch.column(0)
                        for value, size in zip(values, _sizes(values)):
                            if not skip(i):
                                yield item(i, value, size, limit)
                            i += 1
                except (OSError, ValueError, pa.ArrowException) as exc:  # damaged after its header was read
                    raise DataError(f"{path}: row group {g} is unreadable ({exc})") from None

    return Source(f"{path}:{column}", total, items, _stamp(path))


def _with_advice(exc: PageError) -> str:
    """A refused chunk's reason and what to do about it."""
    if not isinstance(exc, PageTooLarge):
        return str(exc)
    if exc.per_value:  # an image in it is over the limit: the row group is refused whole
        return (
            f"{exc}; raise $XEMOTION_MAX_IMAGE_BYTES, or rewrite the table with smaller row groups (pyarrow: "
            "pq.write_table(table, path, row_group_size=N)) so that fewer rows share the image's error"
        )
    fits = max(1, exc.values * exc.cap // max(1, exc.size) // 2)  # values a page of this one's average may hold
    return (
        f"{exc}; rewrite the table with smaller pages (pyarrow: pq.write_table(table, path, "
        f"write_batch_size={1 << (fits.bit_length() - 1)}); its default is 1024 values a page, and "
        "data_page_size splits pages only between such batches)"
    )


def _sizes(values: Any) -> list[int | None]:
    """The byte length of each value, read from the column's offsets (values are read plain, never as a
    dictionary)."""
    pc = require("pyarrow.compute", "classify")
    return pc.binary_length(values).to_pylist()  # type: ignore[no-any-return]


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
                yield Item(i, p, file_data(str(base / p)) if p else None)

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
        return _listed(text, _glob(text), None)
    raise DataError(f"{text}: no such file or folder, and not a glob pattern")
