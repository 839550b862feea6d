"""`xemotion classify` never reports success over lost, foreign or doubled rows, and hostile inputs stay
rows: each test builds its attack by code (small inputs, no FER2013)."""

from __future__ import annotations

import errno
import glob
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from helpers import run_cli
from PIL import Image

from xruntime_emotion.batch import classify, classify_table
from xruntime_emotion.batch.parquet_pages import check_chunk
from xruntime_emotion.batch.sources import open_source
from xruntime_emotion.errors import DataError

N = 40  # inputs per folder


def write_crops(folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` 48x48 grey PNG crops of noise (the model gives each some label)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = [folder / f"{i:04d}.png" for i in range(n)]
    for p in paths:
        Image.fromarray(rng.integers(0, 256, (48, 48), np.uint8)).save(p)
    return paths


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("crops")
    write_crops(root / "a", N, 0)
    write_crops(root / "b", N, 1)
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory, folders: tuple[Path, Path]) -> Path:
    """200 inputs (folder a five times over) in a list: a run long enough to catch mid-way."""
    listing = tmp_path_factory.mktemp("many") / "many.txt"
    listing.write_text("\n".join(sorted(str(p) for p in folders[0].glob("*.png")) * 5) + "\n")
    return listing


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xruntime_emotion.cli", "classify", *args]


def slow(listing: Path, out: Path, *extra: str) -> list[str]:
    """A run that writes a part per input, one input at a time."""
    return cli(
        str(listing), "-o", str(out), "--part-rows", "1", "--batch", "1", "--workers", "0", "--threads", "1", *extra
    )


def has_rows(out: Path) -> bool:
    if out.suffix == ".csv":
        return out.exists() and len(out.read_text().splitlines()) > 1
    return any(out.glob("part-*.parquet"))


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the first run ended before it could be caught mid-way"
    assert condition(), "the first run wrote nothing in time"


def indices(out: Path) -> list[int]:
    if out.suffix == ".csv":
        return sorted(pacsv.read_csv(out).column("index").to_pylist())
    return sorted(pq.read_table(out).column("index").to_pylist())


def one_line_error(r: subprocess.CompletedProcess[str], match: str) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], r.stderr


# ------------------------------------------------------------------------------------ 1. one writer
@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_a_second_run_into_an_output_another_run_writes_is_refused(
    folders: tuple[Path, Path], many: Path, tmp_path: Path, name: str
) -> None:
    """Run B checks the output (nothing there yet), then run A starts and writes; B's first write must be
    refused while A holds the output, and A must end with its own 200 rows only. Before: both succeeded."""
    out = tmp_path / name
    first: list[subprocess.Popen[str]] = []

    def start_a_then_go_on(done: int, total: int, faces: int) -> None:
        if first:
            return
        first.append(subprocess.Popen(slow(many, out), stderr=subprocess.PIPE, text=True, cwd=tmp_path))
        wait_for(lambda: has_rows(out), first[0])
        first[0].send_signal(signal.SIGSTOP)  # A holds the output, mid-way

    try:
        with pytest.raises(DataError, match="another classify is writing it"):
            classify(folders[1], out, part_rows=5, on_progress=start_a_then_go_on)
    finally:
        if first:
            first[0].send_signal(signal.SIGCONT)
    _, err = first[0].communicate(timeout=300)
    assert first[0].returncode == 0, err
    assert "(200 = 200)" in err
    assert indices(out) == list(range(200))  # exactly A's rows: none of B's
    with pytest.raises(DataError, match="the inputs differ"):  # and B cannot resume into it
        classify(folders[1], out, resume=True)


def test_a_resume_while_the_first_run_writes_is_refused_and_kill_9_frees_the_output(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    proc = subprocess.Popen(slow(many, out), stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    wait_for(lambda: has_rows(out), proc)
    r = run_cli("classify", str(many), "-o", str(out), "--resume")  # before: a second writer, rows doubled
    one_line_error(r, "another classify is writing it")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = classify(many, out, resume=True)  # the lock died with its process
    assert again.resumed > 0 and again.present == 200 and indices(out) == list(range(200))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == ["_xemotion.json"]


def test_an_output_that_cannot_be_locked_is_refused(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    for name in ("o.parquet", "o.csv"):
        with pytest.raises(DataError, match="cannot lock"):
            classify(folders[0], tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written, not even a lock file


# ------------------------------------------------------------------ 2. only its own output resumed
def test_resume_refuses_an_output_without_its_record(folders: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = folders
    out = tmp_path / "o.parquet"
    classify(a, out)
    (out / "_xemotion.json").unlink()
    with pytest.raises(DataError, match="holds part files but no _xemotion.json"):  # before: "0 classified"
        classify(b, out, resume=True)
    csv_out = tmp_path / "o.csv"
    classify(a, csv_out)
    with pytest.raises(DataError, match="the inputs differ"):  # before: B "resumed" into A's rows
        classify(b, csv_out, resume=True)
    (tmp_path / ".o.csv.xemotion.json").unlink()
    with pytest.raises(DataError, match="no .o.csv.xemotion.json beside it"):
        classify(a, csv_out, resume=True)


def test_a_folder_that_is_not_a_classify_output_is_refused(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """`-o faces/` (the input folder itself) used to write parts among the images."""
    a = tmp_path / "faces"
    shutil.copytree(folders[0], a)
    before = sorted(os.listdir(a))
    for extra in ((), ("--resume",)):
        r = run_cli("classify", str(a), "-o", str(a), *extra)
        one_line_error(r, "is not empty and not a classify output")
    assert sorted(os.listdir(a)) == before
    (tmp_path / "empty").mkdir()  # an empty folder is fine, and so are names a dataset reader skips
    (tmp_path / "empty" / ".DS_Store").write_text("x")
    assert classify(a, tmp_path / "empty").present == N


# ------------------------------------------------------------------------ 3. every part is checked
def _rewrite(part: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(part)), part)


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


PARQUET_ATTACKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a part twice": (
        lambda o: shutil.copy(o / "part-000001.parquet", o / "part-000007.parquet"),
        r"part-000007.parquet \(row 0\): index 10 is already in part-000001.parquet \(row 0\)",
    ),
    "another model's rows": (
        lambda o: _rewrite(o / "part-000002.parquet", lambda t: _set(t, "model_sha256", pa.array(["f" * 64] * 10))),
        r"part-000002.parquet \(row 0\): a row from another model \(model_sha256 ffffffffffff",
    ),
    "an index of strings": (
        lambda o: _rewrite(
            o / "part-000003.parquet", lambda t: _set(t, "index", pa.array([str(i) for i in range(10)]))
        ),
        r"part-000003.parquet: column index is string, not int64",
    ),
    "a null index": (
        lambda o: _rewrite(
            o / "part-000000.parquet", lambda t: _set(t, "index", pa.array([None, *range(1, 10)], pa.int64()))
        ),
        r"part-000000.parquet \(row 0\): a null index",
    ),
    "an index out of range": (
        lambda o: _rewrite(
            o / "part-000000.parquet", lambda t: _set(t, "index", pa.array(range(1000, 1010), pa.int64()))
        ),
        r"part-000000.parquet \(row 0\): index 1000 is outside this run's inputs \[0, 40\)",
    ),
    "a part missing a column": (
        lambda o: _rewrite(o / "part-000001.parquet", lambda t: t.drop_columns(["error"])),
        r"part-000001.parquet: its columns are not this run's",
    ),
    "a foreign file among the parts": (
        lambda o: (o / "notes.txt").write_text("x"),
        r"holds notes.txt, which classify did not write",
    ),
}


@pytest.mark.parametrize("attack", list(PARQUET_ATTACKS))
def test_resume_checks_every_parquet_part(folders: tuple[Path, Path], tmp_path: Path, attack: str) -> None:
    out = tmp_path / "o.parquet"
    classify(folders[0], out, part_rows=10, batch=10)  # four parts of ten rows
    tamper, message = PARQUET_ATTACKS[attack]
    tamper(out)
    with pytest.raises(DataError, match=message):  # before: passed, or a traceback
        classify(folders[0], out, resume=True)


CSV_ATTACKS: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "a row twice": (lambda lines: [*lines[:8], lines[5], *lines[8:]], r"line 9: index 4 is already in .*line 6"),
    "a row twice at the end": (lambda lines: [*lines, lines[3]], r"line 42: index 2 is already in .*line 4"),
    "an index that is not a number": (
        lambda lines: [*lines[:3], "abc" + lines[3][1:], *lines[4:]],
        r"line 4: index 'abc' is not a whole number",
    ),
    "a fractional index": (
        lambda lines: [*lines[:3], "2.5" + lines[3][1:], *lines[4:]],
        r"line 4: index '2.5' is not a whole number",
    ),
    "an empty index": (lambda lines: [*lines[:3], lines[3][1:], *lines[4:]], r"line 4: index '' is not a whole number"),
    "another model's row": (
        lambda lines: [*lines[:10], lines[10].replace(lines[10].split(",")[-2], "e" * 64), *lines[11:]],
        r"line 11: a row from another model \(model_sha256 eeeeeeeeeeee",
    ),
}


@pytest.mark.parametrize("attack", list(CSV_ATTACKS))
def test_resume_checks_every_csv_row(folders: tuple[Path, Path], tmp_path: Path, attack: str) -> None:
    out = tmp_path / "o.csv"
    classify(folders[0], out)
    tamper, message = CSV_ATTACKS[attack]
    out.write_text("\n".join(tamper(out.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match=message):  # before: passed, or a ValueError traceback
        classify(folders[0], out, resume=True)


def test_tampered_parts_are_one_line_from_the_cli(folders: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    classify(folders[0], out, part_rows=10, batch=10)
    PARQUET_ATTACKS["an index of strings"][0](out)
    one_line_error(run_cli("classify", str(folders[0]), "-o", str(out), "--resume"), "part-000003.parquet")
    csv_out = tmp_path / "o.csv"
    classify(folders[0], csv_out)
    csv_out.write_text("\n".join(CSV_ATTACKS["an index that is not a number"][0](csv_out.read_text().splitlines())))
    one_line_error(run_cli("classify", str(folders[0]), "-o", str(csv_out), "--resume"), "line 4")


def test_the_final_read_back_fails_on_a_row_written_twice(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xruntime_emotion.batch.sinks import CsvSink, ParquetSink

    for kind, name in ((CsvSink, "o.csv"), (ParquetSink, "o.parquet")):
        written = kind.write

        def twice(self: object, rows: dict, written: Callable = written) -> None:
            written(self, rows)
            if 7 in rows["index"]:
                written(self, {k: v[rows["index"].index(7) :][:1] for k, v in rows.items()})

        monkeypatch.setattr(kind, "write", twice)
        with pytest.raises(DataError, match="index 7 is already in"):  # before: "(40 = 40)" over 41 rows
            classify(folders[0], tmp_path / name)
        monkeypatch.undo()


# ----------------------------------------------------------------- 4. settings fail before any input
@pytest.mark.parametrize(
    ("name", "value"),
    [("XEMOTION_MAX_PIXELS", "abc"), ("XEMOTION_MAX_PIXELS", "-5"), ("XEMOTION_MAX_IMAGE_BYTES", "0")],
)
def test_a_bad_limit_is_one_error_before_any_input(
    folders: tuple[Path, Path], tmp_path: Path, name: str, value: str
) -> None:
    """Before: every input became an error row, the run reported success, and --resume kept them."""
    out = tmp_path / "o.csv"
    one_line_error(run_cli("classify", str(folders[0]), "-o", str(out), env={name: value}), f"${name}")
    assert not out.exists()


def test_a_resume_with_other_limits_is_refused(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o.parquet"
    classify(folders[0], out)
    monkeypatch.setenv("XEMOTION_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="limits differ"):
        classify(folders[0], out, resume=True)


# ---------------------------------------------------------------------- 5. names that are not UTF-8
def test_a_file_name_that_is_not_utf8_is_a_row_like_any_other(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(sorted(folders[0].glob("*.png"))[:4]):
        shutil.copy(p, photos / f"{i}.png")
    raw = os.fsdecode(bytes(photos) + b"/caf\xe9.png")  # Latin-1 "café": not UTF-8
    shutil.copy(photos / "0.png", raw)
    want = f"{photos}/caf\\xe9.png"  # each byte that is not UTF-8 as \xNN
    for name in ("o.csv", "o.parquet"):
        out = tmp_path / name
        r = run_cli("classify", str(photos), "-o", str(out))  # before: a UnicodeEncodeError traceback
        assert r.returncode == 0 and "(5 = 5)" in r.stderr, r.stderr
        rows = (pacsv.read_csv(out) if name == "o.csv" else pq.read_table(out)).to_pydict()
        at = rows["path"].index(want)
        same = rows["path"].index(f"{photos}/0.png")
        assert rows["label"][at] == rows["label"][same] and rows["angry"][at] == rows["angry"][same]
    lines = (tmp_path / "o.csv").read_text().splitlines()
    (tmp_path / "o.csv").write_text("\n".join(lines[:3]) + "\n")  # a run killed after two rows ...
    again = classify(photos, tmp_path / "o.csv", resume=True)  # ... goes on past the name
    assert (again.resumed, again.present) == (2, 5)
    assert (tmp_path / "o.csv").read_text().splitlines() == lines
    assert classify_table(f"{photos}/*.png").column("path").to_pylist()[-1] == want  # sorted by bytes
    from xruntime_emotion.batch.sources import file_data, resolve

    assert resolve(file_data(raw)) == raw  # what an engine ships (as text) opens the very file


# ------------------------------------------------------------------------- 6. globs and link loops
def test_a_recursive_glob_does_not_follow_symlink_loops(tmp_path: Path) -> None:
    tree = tmp_path / "d"
    for sub in ("a/b", "c", ".hidden"):
        (tree / sub).mkdir(parents=True)
    for f in ("x.png", "a/y.png", "a/b/z.png", "c/w.PNG", ".hidden/h.png", "a/.dot.png"):
        (tree / f).write_bytes(b"")
    (tree / "a" / "up").symlink_to("..")  # loops: a/up/a/up/..., a/b/back/b/back/...
    (tree / "a" / "b" / "back").symlink_to("../../a")
    code = (
        f"from xruntime_emotion.batch.sources import open_source; print(open_source({str(tree)!r} + '/**/*.png').total)"
    )
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)  # before: ran on
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr
    assert time.monotonic() - t0 < 20
    listed = [item.path for item in open_source(f"{tree}/**/*.png").items()]
    assert listed == [f"{tree}/a/b/z.png", f"{tree}/a/y.png", f"{tree}/x.png"]  # the folder source's rule
    (tree / "a" / "up").unlink()
    (tree / "a" / "b" / "back").unlink()
    for pattern in ("**/*.png", "**", "*/**/*.png", "a/**", "**/b/*", ".hidden/**/*.png", "**/.*.png", "*/*.png"):
        want = sorted(p for p in glob.glob(pattern, root_dir=tree, recursive=True) if (tree / p).is_file())
        got = [os.path.relpath(i.path, tree) for i in open_source(f"{tree}/{pattern}").items()]
        assert got == want, pattern  # where no link loops, the same files as Python's glob


# ------------------------------------------------------------------- 7. decompression bombs, bytes
def _peak_rss_mb(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run `xemotion ARGS` in a fresh process; its peak resident memory (MB) and its stderr."""
    code = (
        "import sys\n"
        "from xruntime_emotion.cli import main\n"
        f"sys.argv = ['xemotion', *{args!r}]\n"
        "try:\n    main()\n"
        "finally:\n"
        "    hwm = [s for s in open('/proc/self/status') if s.startswith('VmHWM:')]\n"  # this program's, since exec
        "    print('peak', hwm[0].split()[1], file=sys.stderr)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    peak = [line for line in r.stderr.splitlines() if line.startswith("peak ")]
    return int(peak[-1].split()[1]) / 1024, r.stderr


def test_a_parquet_decompression_bomb_stays_under_a_gigabyte(tmp_path: Path) -> None:
    """10 KB of Parquet, 6 rows of one 300 MB value of zeros (a dictionary page): before, 6.3 GB."""
    zeros = bytes(300 << 20)
    bomb = pa.DictionaryArray.from_arrays(pa.array([0] * 6, pa.int32()), pa.array([zeros], pa.binary()))
    pq.write_table(pa.table({"png": bomb}), tmp_path / "bomb.parquet", compression="zstd", store_schema=False)
    del zeros, bomb
    assert (tmp_path / "bomb.parquet").stat().st_size < 20_000
    peak, err = _peak_rss_mb(["classify", "bomb.parquet", "--column", "png", "-o", "o.csv"], tmp_path)
    assert peak < 1024, err
    rows = pacsv.read_csv(tmp_path / "o.csv").to_pydict()
    assert rows["index"] == list(range(6)) and all("not read: a page decompresses to" in e for e in rows["error"])


def test_image_bytes_just_under_the_limit_are_read_a_few_at_a_time(tmp_path: Path) -> None:
    """24 values of 24 MB zeros (under the 32 MiB limit, one page each): before, all at once (1.7 GB)."""
    values = pa.array([bytes(24 << 20)] * 24, pa.binary())
    pq.write_table(
        pa.table({"png": values}),
        tmp_path / "many.parquet",
        compression="zstd",
        use_dictionary=False,
        data_page_size=1,
        write_batch_size=1,
    )
    del values
    peak, err = _peak_rss_mb(["classify", "many.parquet", "--column", "png", "-o", "o.csv"], tmp_path)
    assert peak < 1024, err
    rows = pacsv.read_csv(tmp_path / "o.csv").to_pydict()
    assert rows["index"] == list(range(24)) and all("not a readable image" in e for e in rows["error"])


def test_an_image_over_the_byte_limit_is_an_error_row(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = (folders[0] / "0000.png").read_bytes()
    big = np.asarray(Image.open(folders[0] / "0001.png").resize((400, 400)))
    Image.fromarray(big).save(tmp_path / "big.png")
    large = (tmp_path / "big.png").read_bytes()
    pq.write_table(pa.table({"png": [small, large, small]}), tmp_path / "t.parquet")
    monkeypatch.setenv("XEMOTION_MAX_IMAGE_BYTES", str(len(large) - 1))  # one byte over
    rows = classify_table(tmp_path / "t.parquet", column="png").to_pydict()
    assert rows["error"][0] is None and rows["error"][2] is None and rows["label"][0] == rows["label"][2]
    assert (
        rows["error"][1]
        == f"t.parquet#1: {len(large)} bytes, over the limit of {len(large) - 1} ($XEMOTION_MAX_IMAGE_BYTES)"
    )
    monkeypatch.setenv("XEMOTION_MAX_IMAGE_BYTES", str(len(large)))
    assert classify_table(tmp_path / "t.parquet", column="png").column("error").null_count == 3


MIB = 1 << 20


def _photos(n: int, seed: int) -> list[bytes]:
    """``n`` 186x186 RGB PNGs of noise: incompressible, about 104 KB each, like photos to a compressor."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (186, 186, 3), np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _zeros(sizes: list[int]) -> pa.ChunkedArray:
    """Values of zeros of these sizes, each a view of one shared buffer (a GB of them costs nothing here)."""
    zeros = pa.py_buffer(bytes(max(sizes)))
    ends = [pa.array([0, n], pa.int32()).buffers()[1] for n in sizes]
    return pa.chunked_array([pa.Array.from_buffers(pa.binary(), 1, [None, end, zeros]) for end in ends], pa.binary())


@pytest.mark.parametrize("options", [{}, {"use_dictionary": False}], ids=["defaults", "plain"])
def test_photos_that_pyarrow_puts_in_one_page_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, bool]
) -> None:
    """pyarrow puts up to 1024 values in a page: 64 photos of 104 KB are one page of 6.7 MB, over twice a
    1 MiB limit (before: every row an error) and under 64 images at it."""
    photos = _photos(64, 2)
    pq.write_table(pa.table({"png": pa.array(photos, pa.binary())}), tmp_path / "t.parquet", **options)
    with open(tmp_path / "t.parquet", "rb") as f:
        chunk = check_chunk(f, pq.ParquetFile(f).metadata.row_group(0).column(0), MIB)
    assert chunk.largest_page > 6 * MIB  # all 64 in one page (a dictionary page, or a plain data page)
    monkeypatch.setenv("XEMOTION_MAX_IMAGE_BYTES", str(MIB))
    rows = classify_table(tmp_path / "t.parquet", column="png").to_pydict()
    assert rows["error"] == [None] * 64
    (tmp_path / "files").mkdir()
    for i, photo in enumerate(photos):
        (tmp_path / "files" / f"{i:02d}.png").write_bytes(photo)
    assert rows["label"] == classify_table(tmp_path / "files").column("label").to_pylist()  # the very bytes


def test_a_page_whose_images_average_over_the_limit_is_refused_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three photos and 6 MiB of noise in one page of 4 values: over 4 images of 1 MiB, so one is over."""
    blob = np.random.default_rng(4).integers(0, 256, 6 * MIB, np.uint8).tobytes()
    table = pa.table({"png": pa.array([*_photos(3, 3), blob], pa.binary())})
    pq.write_table(table, tmp_path / "one.parquet")
    pq.write_table(table, tmp_path / "each.parquet", row_group_size=1)
    monkeypatch.setenv("XEMOTION_MAX_IMAGE_BYTES", str(MIB))
    errors = classify_table(tmp_path / "one.parquet", column="png").column("error").to_pylist()
    for i, error in enumerate(errors):
        assert error.startswith(f"one.parquet#{i}: row group 0 not read: a page decompresses to "), error
        assert error.endswith(
            " bytes for 4 values, more than 4 images at the limit of 1048576 bytes; raise $XEMOTION_MAX_IMAGE_BYTES,"
            " or rewrite the table with smaller row groups (pyarrow: pq.write_table(table, path, row_group_size=N))"
            " so that fewer rows share the image's error"
        ), error
    # Either thing it says to do works: a row group per row, or a higher limit
    errors = classify_table(tmp_path / "each.parquet", column="png").column("error").to_pylist()
    assert errors[:3] == [None] * 3 and "row group 3 not read: a page decompresses to" in errors[3]
    assert "for 1 value, more than 1 image at the limit" in errors[3]
    monkeypatch.setenv("XEMOTION_MAX_IMAGE_BYTES", str(8 * MIB))
    errors = classify_table(tmp_path / "one.parquet", column="png").column("error").to_pylist()
    assert errors[:3] == [None] * 3 and errors[3].startswith("one.parquet#3: not a readable image"), errors


def test_a_page_at_the_cap_is_read_under_a_gigabyte_and_one_over_it_is_refused(tmp_path: Path) -> None:
    """30 KB of Parquet: a page of 400 x 320 KB of zeros (122 MiB, under the 128 MiB cap: read, values no
    images) and one of 450 (137 MiB: refused, though 320 KB is far under the 32 MiB image limit)."""
    schema = pa.schema([("png", pa.binary())])
    options = {"compression": "zstd", "use_dictionary": False, "data_page_size": 1 << 30, "store_schema": False}
    with pq.ParquetWriter(tmp_path / "t.parquet", schema, **options) as writer:
        for n in (400, 450):
            writer.write_table(pa.table({"png": _zeros([320_000] * n)}))
    assert (tmp_path / "t.parquet").stat().st_size < 40_000
    peak, err = _peak_rss_mb(["classify", "t.parquet", "--column", "png", "-o", "o.csv"], tmp_path)
    assert peak < 1024, err
    errors = pacsv.read_csv(tmp_path / "o.csv").column("error").to_pylist()
    assert all(e.startswith(f"t.parquet#{i}: not a readable image") for i, e in enumerate(errors[:400]))
    refused = (
        " bytes for 450 values, over the 134217728 one page may take; rewrite the table with smaller pages"
        " (pyarrow: pq.write_table(table, path, write_batch_size=128); its default is 1024 values a page,"
        " and data_page_size splits pages only between such batches)"
    )
    assert all(f"#{400 + i}: row group 1 not read: a page decompresses to " in e for i, e in enumerate(errors[400:]))
    assert all(e.endswith(refused) for e in errors[400:]), errors[400]


def test_a_dictionary_that_falls_back_to_plain_pages_stays_under_a_gigabyte(tmp_path: Path) -> None:
    """100 KB of Parquet: a dictionary page of one value, then plain pages of 1000 distinct 1 MB values of
    zeros (a writer's fallback). Read as a dictionary, every plain value joined it: before, 4 GB."""
    pq.write_table(
        pa.table({"png": _zeros([1_000_000 + i for i in range(1000)])}),
        tmp_path / "t.parquet",
        compression="zstd",
        dictionary_pagesize_limit=1,
        store_schema=False,
    )
    assert (tmp_path / "t.parquet").stat().st_size < 100_000
    peak, err = _peak_rss_mb(["classify", "t.parquet", "--column", "png", "-o", "o.csv"], tmp_path)
    assert peak < 1024, err
    errors = pacsv.read_csv(tmp_path / "o.csv").column("error").to_pylist()
    assert len(errors) == 1000 and all(e.startswith(f"t.parquet#{i}: not a readable") for i, e in enumerate(errors))


# ---------------------------------------------------------------------------- 14. parts on a clock
def test_parts_are_written_on_a_clock_so_a_kill_loses_little(many: Path, tmp_path: Path) -> None:
    """A part of 100,000 rows would be written only at the end; --flush-seconds writes one anyway."""
    out = tmp_path / "o.parquet"
    listing = tmp_path / "longer.txt"  # 2,000 inputs
    listing.write_text(many.read_text() * 10)
    cmd = cli(str(listing), "-o", str(out), "--batch", "1", "--workers", "0", "--threads", "1", "--part-rows", "100000")
    proc = subprocess.Popen([*cmd, "--flush-seconds", "0.2"], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    wait_for(lambda: has_rows(out), proc)  # before: "No such option: --flush-seconds"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kept = len(indices(out))
    assert 0 < kept < 2000
    r = run_cli(*cmd[3:], "--resume")
    assert r.returncode == 0 and f"{kept} already there" in r.stderr, r.stderr
    assert indices(out) == list(range(2000))
    one_line_error(run_cli(*cmd[3:], "--resume", "--flush-seconds", "-1"), "flush_seconds")


def test_a_csv_grows_on_the_clock_too(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    seen: list[int] = []

    def watch(done: int, total: int, faces: int) -> None:
        time.sleep(0.01)
        if done < total:
            seen.append(len(out.read_text().splitlines()) if out.exists() else 0)

    report = classify(many, out, batch=4, workers=0, threads=1, part_rows=100_000, flush_seconds=0.1, on_progress=watch)
    assert report.present == 200 and len(out.read_text().splitlines()) == 201
    assert max(seen) > 1, seen  # rows were in the file before the run ended
    assert json.loads((tmp_path / ".o.csv.xemotion.json").read_text())["inputs"] == 200
