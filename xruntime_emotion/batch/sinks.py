"""Where `classify` writes: a Parquet dataset (a folder of part files), a CSV file, or memory.

A Parquet part is written under no name (or a hidden one) and renamed into place when complete, so a
killed run (even by SIGKILL) leaves every finished part readable and no half-written part under a part
name. A CSV file grows by whole parts; a resumed run first cuts a torn tail. A part is written once it
holds ``part_rows`` rows or its oldest row has waited ``flush_seconds``, whichever comes first.

What a run was (source, inputs, model, settings) is recorded beside its rows: ``_xemotion.json`` in the
Parquet folder, a hidden ``.NAME.xemotion.json`` beside a CSV file. ``--resume`` continues only an output
with that record, and only the same run. One writer at a time: an exclusive lock (``flock``) on a hidden
lock file, held from the first look at an existing output (or the first write to a new one) to the final
read-back; the kernel drops it when the process ends, however it ends.

Every row read back, for ``--resume`` and for the final check, is checked (``Check``): the part's
columns and types, an integer index in [0, inputs), this run's model sha256, no (index, face) twice,
and with --detect every face of an input present. What fails names the part (CSV: the line).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xruntime_emotion.atomic import atomic_path, write_text_atomic
from xruntime_emotion.batch.work import Rows, arrow_schema, columns, to_arrow
from xruntime_emotion.errors import DataError, XEmotionError, require

META = "_xemotion.json"  # beside the parts; Parquet readers skip names starting with "_" or "."
LOCK = ".xemotion.lock"
FLUSH_SECONDS = 10.0  # a part is written at least this often while rows arrive
_PART = re.compile(r"part-(\d{6})\.parquet")
_TEMPORARY = (".part-", f".{META}.")  # named temporaries of atomic writes that a killed run may leave
_DIGITS = re.compile(r"[0-9]+")


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

    def release(self) -> None:
        """Let another run write the output (after the final read-back, or on failure)."""
        ...


def _empty() -> np.ndarray:
    return np.empty(0, np.int64)


class OutputLock:
    """An exclusive ``flock`` on a lock file, so that two runs never write one output. The kernel drops it
    when the process ends, even by SIGKILL; the file is removed on release (and a run that locked a file
    just removed tries the new one)."""

    def __init__(self, path: Path, output: Path) -> None:
        self.path, self.output = path, output
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            raise DataError(
                f"{self.output}: cannot be locked on this system; classify writes only where it can"
            ) from None
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(5):
            try:
                try:
                    fd, made = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
                except FileExistsError:
                    fd, made = os.open(self.path, flags), False
            except FileNotFoundError:  # removed between the two opens: try again
                continue
            except OSError as exc:
                raise DataError(f"{self.path}: cannot create the output's lock file ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if made and exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)  # nobody can hold a lock on it: leave nothing behind
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise DataError(
                        f"{self.output}: another classify is writing it (it holds {self.path.name}); "
                        "wait for it to end, or name another output"
                    ) from None
                raise DataError(  # ENOLCK, EOPNOTSUPP, ...: never write unguarded
                    f"{self.output}: its file system cannot lock {self.path.name} ({exc.strerror or exc}); "
                    "classify writes only where it can keep a second run out: write to a local disk"
                ) from None
            held = os.fstat(fd)
            try:
                now = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                self.fd = fd
                return
            os.close(fd)  # its holder removed it as we locked it: lock the file now there
        raise DataError(f"{self.output}: its lock file keeps changing; is another classify starting?")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still held: a run waiting on this file finds it gone and retries
        os.close(self.fd)
        self.fd = None


class Check:
    """The rows of an output, checked as they are read back: each part on its own (an integer index in
    [0, total), every row from model ``sha256``, with --detect a face in [0, faces)), then all of them
    (no (index, face) twice; with --detect every face of an input present)."""

    def __init__(self, total: int, sha256: str | None, detect: bool) -> None:
        self.total, self.sha, self.detect = total, sha256, detect
        self.index: list[np.ndarray] = []
        self.face: list[np.ndarray] = []  # -1 for null
        self.faces: list[np.ndarray] = []  # -1 for null
        self.error: list[np.ndarray] = []
        self.where: list[tuple[str, list[int] | None]] = []  # each part's name, and its rows' line numbers

    def _at(self, part: int, row: int) -> str:
        name, lines = self.where[part]
        return f"{name}, line {lines[row]}" if lines is not None else f"{name} (row {row})"

    def part(
        self,
        name: str,
        index: np.ndarray,
        shas: Sequence[str | None],
        error: np.ndarray,
        face: np.ndarray | None = None,
        faces: np.ndarray | None = None,
        lines: list[int] | None = None,
    ) -> None:
        """One part's rows; DataError naming the first row that fails."""
        self.where.append((name, lines))
        at = len(self.where) - 1
        index = np.asarray(index, np.int64)
        outside = np.flatnonzero((index < 0) | (index >= self.total))
        if outside.size:
            k = int(outside[0])
            raise DataError(f"{self._at(at, k)}: index {index[k]} is outside this run's inputs [0, {self.total})")
        if self.sha is not None:
            for k, s in enumerate(shas):
                if s != self.sha:
                    raise DataError(
                        f"{self._at(at, k)}: a row from another model (model_sha256 {str(s)[:12]}, "
                        f"this run's {self.sha[:12]}); --resume continues the same run only"
                    )
        if self.detect:
            assert face is not None and faces is not None
            fine = ((face == -1) & (faces <= 0)) | ((face >= 0) & (face < faces))
            wrong = np.flatnonzero(~fine)
            if wrong.size:
                k = int(wrong[0])
                raise DataError(f"{self._at(at, k)}: face {face[k]} of {faces[k]} is not a face of its input")
            self.face.append(np.asarray(face, np.int64))
            self.faces.append(np.asarray(faces, np.int64))
        self.index.append(index)
        self.error.append(np.asarray(error, bool))

    def result(self) -> Tally:
        """Everything read: no (index, face) twice and (--detect) every face there; the tally."""
        if not self.index:
            return Tally(0, 0, 0, self.total)
        index = np.concatenate(self.index)
        part = np.concatenate([np.full(len(x), p, np.int64) for p, x in enumerate(self.index)])
        row = np.concatenate([np.arange(len(x)) for x in self.index])
        face = np.concatenate(self.face) if self.detect else np.zeros_like(index)
        key = index * (1 << 32) + face + 1
        order = np.argsort(key, kind="stable")
        twice = np.flatnonzero(key[order][1:] == key[order][:-1])
        if twice.size:
            first, again = order[twice[0]], order[twice[0] + 1]
            what = f"index {index[again]}" + (f", face {face[again]}" if self.detect and face[again] >= 0 else "")
            raise DataError(
                f"{self._at(int(part[again]), int(row[again]))}: {what} is already in "
                f"{self._at(int(part[first]), int(row[first]))}; every input must be there once"
            )
        present, inverse, count = np.unique(index, return_inverse=True, return_counts=True)
        if self.detect:
            faces = np.maximum(np.concatenate(self.faces), 0)
            low = np.full(len(present), np.iinfo(np.int64).max)
            high = np.zeros(len(present), np.int64)
            np.minimum.at(low, inverse, faces)
            np.maximum.at(high, inverse, faces)
            broken = np.flatnonzero((low != high) | (count != np.maximum(high, 1)))
            if broken.size:
                k = int(np.flatnonzero(inverse == broken[0])[0])
                raise DataError(
                    f"{self._at(int(part[k]), int(row[k]))}: input {index[k]} has {count[broken[0]]} rows "
                    f"for {high[broken[0]]} faces; every face of an input must be there once"
                )
        failed = np.unique(index[np.concatenate(self.error)])
        return Tally(len(index), len(present), len(failed), self.total - len(present))


def _check_meta(output: Path, record: Path, meta: dict[str, Any]) -> None:
    """``record`` must describe this very run (--resume continues the same run only)."""
    try:
        old = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{record}: unreadable ({exc})") from None
    changed = [k for k in meta if old.get(k) != meta[k]] if isinstance(old, dict) else ["all"]
    changed = ["the inputs" if k in ("inputs", "fingerprint") else k for k in changed]
    changed = list(dict.fromkeys(changed))
    if changed:
        raise DataError(
            f"{output}: was made with other settings ({', '.join(changed)} differ); "
            "--resume continues the same run only"
        )


class _Buffered:
    """Rows gathered until a part holds ``part_rows`` or its oldest row is ``flush_seconds`` old, then
    flushed in one piece (checked as rows arrive)."""

    def __init__(self, detect: bool, part_rows: int, flush_seconds: float) -> None:
        self.detect = detect
        self.part_rows = part_rows
        self.flush_seconds = flush_seconds
        self.names = [c.name for c in columns(detect)]
        self.rows: Rows = {n: [] for n in self.names}
        self.since = 0.0  # when the oldest buffered row arrived

    def write(self, rows: Rows) -> None:
        if not self.rows["index"]:
            self.since = time.monotonic()
        for n in self.names:
            self.rows[n].extend(rows[n])
        due = time.monotonic() - self.since >= self.flush_seconds
        if len(self.rows["index"]) >= self.part_rows or (due and self.rows["index"]):
            self.flush()

    def flush(self) -> None:
        if self.rows["index"]:
            self._flush(self.rows)
            self.rows = {n: [] for n in self.names}

    def _flush(self, rows: Rows) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.flush()


class _Output(_Buffered):
    """An output on disk guarded by its OutputLock: claimed (locked, then looked at) before it is read
    or written, released after the final read-back."""

    lock: OutputLock
    claimed: bool

    def _claim(self, new: bool) -> None:
        self.lock.acquire()
        try:
            self._inspect(new)
        except BaseException:
            self.lock.release()
            raise
        self.claimed = True

    def _inspect(self, new: bool) -> None:
        raise NotImplementedError

    def release(self) -> None:
        self.lock.release()


def _ignored(name: str) -> bool:
    """Names a Parquet dataset reader skips (and so may sit beside the parts)."""
    return name.startswith((".", "_"))


class ParquetSink(_Output):
    """A folder of ``part-NNNNNN.parquet`` files plus ``_xemotion.json`` (what was run, for --resume)."""

    def __init__(
        self,
        folder: Path,
        meta: dict[str, Any],
        *,
        detect: bool,
        part_rows: int,
        resume: bool,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        super().__init__(detect, part_rows, flush_seconds)
        self.pq = require("pyarrow.parquet", "classify")
        self.folder, self.meta, self.resume = folder, meta, resume
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{folder}: exists and is not a folder (a Parquet result is a folder of parts)")
        self.lock = OutputLock(folder / LOCK, folder)
        self.claimed = False
        self.next = 0
        self._done = _empty()
        if folder.is_dir():  # look at what is there under the lock; a new folder is locked at its first write
            self._claim(new=False)

    def _inspect(self, new: bool) -> None:
        try:
            names = sorted(p.name for p in self.folder.iterdir())
        except OSError as exc:
            raise DataError(f"{self.folder}: cannot list it ({exc.strerror or exc})") from None
        parts = [n for n in names if _PART.fullmatch(n)]
        foreign = [n for n in names if not (_PART.fullmatch(n) or _ignored(n))]
        if new and (parts or META in names):
            raise DataError(f"{self.folder}: another classify wrote to it after this run began; name another output")
        if META not in names:
            if parts:
                raise DataError(
                    f"{self.folder}: holds part files but no {META}, so not a record of what made them; "
                    "--resume continues only classify's own output: name a new folder"
                )
            if foreign:
                raise DataError(
                    f"{self.folder}: is not empty and not a classify output (no {META}; it holds {foreign[0]}); "
                    "name a new or empty folder"
                )
            return  # empty: a fresh run
        if not self.resume:
            raise DataError(
                f"{self.folder}: already holds results; pass --resume to continue them, or name a new folder"
            )
        _check_meta(self.folder, self.folder / META, self.meta)
        if foreign:
            raise DataError(f"{self.folder}: holds {foreign[0]}, which classify did not write; move it out first")
        for stale in names:
            if stale.startswith(_TEMPORARY):  # a named temporary a killed run left (no O_TMPFILE there)
                (self.folder / stale).unlink(missing_ok=True)
        self._done = np.flatnonzero(self._scan(self.meta["inputs"]).present) if parts else _empty()
        self.next = max((int(_PART.fullmatch(n)[1]) for n in parts), default=-1) + 1  # type: ignore[index]

    def _parts(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _PART.fullmatch(p.name))

    def _part(self, path: Path) -> Any:
        """One part's checked columns (the schema must be exactly this run's)."""
        want = arrow_schema(self.detect)
        try:
            schema = self.pq.read_schema(path)
        except Exception as exc:  # a part damaged after it was written; pyarrow raises several types
            raise DataError(f"{path}: unreadable ({exc})") from None
        if schema.names != want.names:
            raise DataError(f"{path}: its columns are not this run's ({', '.join(schema.names)})")
        for field in want:
            if schema.field(field.name).type != field.type:
                raise DataError(f"{path}: column {field.name} is {schema.field(field.name).type}, not {field.type}")
        wanted = ["index", "model_sha256", "error", *(("face", "faces") if self.detect else ())]
        try:
            table = self.pq.read_table(path, columns=wanted)
        except Exception as exc:
            raise DataError(f"{path}: unreadable ({exc})") from None
        if table.column("index").null_count:
            k = table.column("index").is_null().to_pylist().index(True)
            raise DataError(f"{path} (row {k}): a null index")
        return table

    def _scan(self, total: int) -> _Scanned:
        check = Check(total, self.meta["model_sha256"], self.detect)
        for p in self._parts():
            t = self._part(p)
            error = [e is not None and e != "" for e in t.column("error").to_pylist()]
            extra = {}
            if self.detect:
                extra = {k: t.column(k).fill_null(-1).to_numpy().astype(np.int64) for k in ("face", "faces")}
            check.part(p.name, t.column("index").to_numpy(), t.column("model_sha256").to_pylist(), error, **extra)
        return _Scanned(check, total)

    def done(self) -> np.ndarray:
        return self._done

    def _flush(self, rows: Rows) -> None:
        table = to_arrow(rows, self.detect)
        path = self.folder / f"part-{self.next:06d}.parquet"
        try:
            if not self.claimed:
                made = not self.folder.exists()
                self.folder.mkdir(parents=True, exist_ok=True)
                try:
                    self._claim(new=True)
                except DataError:
                    if made:  # refused before writing anything: leave no folder behind
                        with contextlib.suppress(OSError):
                            self.folder.rmdir()
                    raise
            if not (self.folder / META).exists():
                write_text_atomic(self.folder / META, json.dumps(self.meta, indent=1) + "\n")
            with atomic_path(path) as tmp:
                self.pq.write_table(table, tmp)
        except OSError as exc:
            raise XEmotionError(f"{path}: cannot write it ({exc.strerror or exc})") from None
        self.next += 1

    def tally(self, total: int) -> Tally:
        return self._scan(total).tally


class _Scanned:
    """A finished check: its tally, and which indices are present."""

    def __init__(self, check: Check, total: int) -> None:
        self.tally = check.result()
        self.present = np.zeros(total, bool)
        if check.index:
            self.present[np.concatenate(check.index)] = True


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.9g}"  # float32 round-trips at 9 significant digits
    return str(value)


class CsvSink(_Output):
    """One CSV file with a header; null is an empty cell. It grows by whole parts (one write each). What
    made it is recorded in a hidden ``.NAME.xemotion.json`` beside it."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        *,
        detect: bool,
        part_rows: int,
        resume: bool,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        super().__init__(detect, part_rows, flush_seconds)
        self.path, self.meta, self.resume = path, meta, resume
        self.record = path.parent / f".{path.name}.xemotion.json"
        self.lock = OutputLock(path.parent / f".{path.name}.xemotion.lock", path)
        if path.is_dir() or path.is_symlink():
            raise DataError(f"{path}: is a folder or a symbolic link; name a file")
        self.claimed = False
        self._done = _empty()
        if self._size():  # an existing output is looked at under the lock; a new one is locked at its first write
            self._claim(new=False)

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def _inspect(self, new: bool) -> None:
        if not self._size():
            return
        if new:
            raise DataError(f"{self.path}: another classify wrote to it after this run began; name another output")
        if not self.resume:
            raise DataError(f"{self.path}: already exists; pass --resume to continue it, or name a new file")
        if not self.record.exists():
            raise DataError(
                f"{self.path}: no {self.record.name} beside it, so not a record of what made it; "
                "--resume continues only classify's own output: name a new file"
            )
        _check_meta(self.path, self.record, self.meta)
        scanned, keep = self._scan(self.meta["inputs"], torn=True)
        if keep is not None:
            self._cut(keep)
        self._done = np.flatnonzero(scanned.present)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) of each record after the header, which must be this run's."""
        with open(self.path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            reader = csv.reader(f)
            try:
                header = next(reader, [])
                if header != self.names:
                    raise DataError(
                        f"{self.path}: its columns are not this run's; --resume continues the same run only"
                    )
                for cells in reader:
                    yield reader.line_num, cells
            except csv.Error as exc:
                raise DataError(f"{self.path}, line {reader.line_num}: not CSV ({exc})") from None

    def _scan(self, total: int, torn: bool) -> tuple[_Scanned, int | None]:
        """Read the file back, checking every row. With ``torn`` (resume), a tail a killed run left (a last
        line cut short; with --detect the faces of the last input cut off) is dropped: the records to keep
        are returned with the check, else None."""
        at = {n: i for i, n in enumerate(self.names)}
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            ends = f.tell()
            f.seek(max(0, ends - 1))
            clean = f.read(1) == b"\n"  # whole lines only: nothing was cut mid-line
        lines: list[int] = []
        index: list[int] = []
        face: list[int] = []
        faces: list[int] = []
        shas: list[str] = []
        error: list[bool] = []
        records = 0
        for last, (line, cells) in _with_last(self._records()):
            records += 1
            if torn and last and (not clean or len(cells) != len(self.names)):
                break  # the line a killed run was writing
            if len(cells) != len(self.names):
                raise DataError(f"{self.path}, line {line}: {len(cells)} cells, not {len(self.names)}")
            try:
                "".join(cells).encode("utf-8")  # read with surrogateescape: a byte that is not UTF-8 fails here
            except UnicodeEncodeError:
                raise DataError(f"{self.path}, line {line}: not UTF-8 text") from None
            lines.append(line)
            index.append(_number(self.path, line, "index", cells[at["index"]], null=False))
            if self.detect:
                face.append(_number(self.path, line, "face", cells[at["face"]]))
                faces.append(_number(self.path, line, "faces", cells[at["faces"]]))
            shas.append(cells[at["model_sha256"]])
            error.append(cells[at["error"]] != "")
        keep = len(index)
        if torn and self.detect and index:  # the faces of the last input may be cut off
            first = keep
            while first and index[first - 1] == index[-1]:
                first -= 1
            if keep - first < max(1, faces[-1]):
                keep = first
        check = Check(total, self.meta["model_sha256"], self.detect)
        if keep:
            extra = {}
            if self.detect:
                extra = {"face": np.array(face[:keep], np.int64), "faces": np.array(faces[:keep], np.int64)}
            check.part(
                str(self.path),
                np.array(index[:keep], np.int64),
                shas[:keep],
                np.array(error[:keep]),
                **extra,
                lines=lines,
            )
        return _Scanned(check, total), keep if keep != records else None

    def _cut(self, keep: int) -> None:
        """Keep the header and the first ``keep`` records (a torn tail dropped), atomically."""
        try:
            with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(self.names)
                for n, (_line, cells) in enumerate(self._records()):
                    if n == keep:
                        break
                    writer.writerow(cells)
        except OSError as exc:
            raise XEmotionError(f"{self.path}: cannot rewrite it ({exc.strerror or exc})") from None

    def done(self) -> np.ndarray:
        return self._done

    def _flush(self, rows: Rows) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(zip(*([_cell(v) for v in rows[n]] for n in self.names)))
        try:
            if not self.claimed:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._claim(new=True)
            if not self._size():  # the record and the header come with the first part
                write_text_atomic(self.record, json.dumps(self.meta, indent=1) + "\n")
                write_text_atomic(self.path, ",".join(self.names) + "\n")
            with open(self.path, "a", encoding="utf-8", newline="") as f:
                f.write(buffer.getvalue())
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise XEmotionError(f"{self.path}: cannot write it ({exc.strerror or exc})") from None

    def tally(self, total: int) -> Tally:
        return self._scan(total, torn=False)[0].tally


def _with_last(items: Iterator[Any]) -> Iterator[tuple[bool, Any]]:
    """(is it the last one, item) for each item."""
    pending = _NOTHING = object()
    for item in items:
        if pending is not _NOTHING:
            yield False, pending
        pending = item
    if pending is not _NOTHING:
        yield True, pending


def _number(path: Path, line: int, column: str, cell: str, null: bool = True) -> int:
    """A CSV cell that must hold a whole number (or, where ``null``, nothing: -1)."""
    if null and cell == "":
        return -1
    if not _DIGITS.fullmatch(cell):
        raise DataError(f"{path}, line {line}: {column} {cell[:40]!r} is not a whole number")
    return int(cell)


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

    def release(self) -> None:
        pass

    def table(self) -> Any:
        pa = require("pyarrow", "classify")
        return pa.concat_tables(self.tables) if self.tables else arrow_schema(self.detect).empty_table()

    def tally(self, total: int) -> Tally:
        t = self.table()
        check = Check(total, None, self.detect)
        extra = {}
        if self.detect:
            extra = {k: t.column(k).fill_null(-1).to_numpy().astype(np.int64) for k in ("face", "faces")}
        error = [e is not None and e != "" for e in t.column("error").to_pylist()]
        check.part("the result", t.column("index").to_numpy(), [], error, **extra)
        return check.result()
