"""`xemotion classify`: many faces in, one table out, every input accounted for."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from helpers import on_a_terminal, run_cli
from PIL import Image

from xruntime_emotion import LABELS, EmotionClassifier
from xruntime_emotion.batch import classify, classify_table
from xruntime_emotion.batch.engines import Settings, run_local
from xruntime_emotion.batch.sinks import MemorySink
from xruntime_emotion.batch.sources import open_source
from xruntime_emotion.errors import DataError, XEmotionError
from xruntime_emotion.model.data import FerData, Split
from xruntime_emotion.runtime.classifier import ModelSpec

BROKEN = 200


def write_faces(folder: Path, faces: np.ndarray, per_folder: int = 1000) -> list[Path]:
    paths = []
    for i, face in enumerate(faces):
        sub = folder / f"{i // per_folder:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        paths.append(sub / f"{i:06d}.png")
        Image.fromarray(face).save(paths[-1])
    return paths


def write_broken(folder: Path, n: int, good: Path) -> list[Path]:
    """Truncated PNGs, random bytes, empty files, text, a FIFO: none of them an image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    data = good.read_bytes()
    kinds = [
        lambda i: data[: 20 + i % (len(data) - 21)],  # truncated
        lambda i: rng.bytes(200 + i),
        lambda i: b"",
        lambda i: b"not an image at all\n",
    ]
    paths = []
    for i in range(n - 1):
        p = folder / f"broken_{i:04d}.{('png', 'jpg', 'webp', 'bmp')[i % 4]}"
        p.write_bytes(kinds[i % len(kinds)](i))
        paths.append(p)
    fifo = folder / "fifo.png"  # a reader that opened it would wait for ever
    os.mkfifo(fifo)
    return [*paths, fifo]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, fer: FerData) -> tuple[Path, np.ndarray]:
    """20,000 FER2013 Training faces as PNG crops, plus 200 broken files mixed in."""
    root = tmp_path_factory.mktemp("corpus")
    faces, _ = fer.split(Split.TRAINING)
    faces = faces[:20_000]
    paths = write_faces(root, faces)
    write_broken(root / "007", BROKEN, paths[0])
    return root, faces


def test_twenty_thousand_faces_and_two_hundred_broken_files(corpus: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    root, faces = corpus
    out = tmp_path / "emotions.parquet"
    r = run_cli("classify", str(root), "-o", str(out), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "20000 = 20200" not in r.stderr and "(20200 = 20200)" in r.stderr, r.stderr
    assert "200 with an error" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["inputs"], report["present"], report["rows"], report["errors"]) == (20_200, 20_200, 20_200, 200)

    table = pq.read_table(out)
    assert table.num_rows == 20_200 and len(set(table.column("index").to_pylist())) == 20_200
    assert table.schema.field("angry").type == pa.float32()
    bad = table.filter(pa.compute.is_valid(table.column("error")))
    assert bad.num_rows == BROKEN and all("broken_" in p or "fifo" in p for p in bad.column("path").to_pylist())
    assert bad.column("label").null_count == BROKEN

    good = table.filter(pa.compute.is_null(table.column("error"))).to_pydict()
    by_name = {Path(p).name: i for i, p in enumerate(good["path"])}
    order = [by_name[f"{i:06d}.png"] for i in range(len(faces))]
    clf = EmotionClassifier.default()
    expected = np.concatenate([clf.predict(faces[i : i + 4096]) for i in range(0, len(faces), 4096)])
    labels = np.array(good["label"], dtype=object)[order]
    assert (labels == np.array(LABELS, dtype=object)[expected.argmax(1)]).all()
    probs = np.array([good[k] for k in LABELS], np.float32).T[order]
    assert np.abs(probs - expected).max() <= 1e-6
    assert set(good["model_sha256"]) == {report["model_sha256"]}


def _sha(table: pa.Table) -> str:
    return table.column("model_sha256")[0].as_py()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, fer: FerData) -> Path:
    root = tmp_path_factory.mktemp("small")
    faces, _ = fer.split(Split.PUBLIC_TEST)
    paths = write_faces(root / "faces", faces[:300], per_folder=100)
    write_broken(root / "faces" / "junk", 5, paths[0])
    return root / "faces"


def test_every_source_kind_gives_the_same_rows(small: Path, tmp_path: Path) -> None:
    reference = classify_table(small).to_pydict()
    by_path = {p: i for i, p in enumerate(reference["path"])}
    files = [p for p in reference["path"] if "junk" not in p]
    assert files == sorted(files) and reference["index"] == list(range(len(reference["path"])))

    listing = tmp_path / "list.txt"  # relative to the list's folder; comments and blank lines skipped
    listing.write_text("# faces\n\n" + "\n".join(os.path.relpath(p, tmp_path) for p in files) + "\n")
    pq.write_table(pa.table({"id": list(range(len(files))), "file": files}), tmp_path / "paths.parquet")
    pq.write_table(pa.table({"png": [Path(p).read_bytes() for p in files]}), tmp_path / "bytes.parquet")
    pacsv.write_csv(pa.table({"path": files}), tmp_path / "paths.csv")
    sources = {
        "glob": (f"{small}/0*/*.png", None),
        "list": (str(listing), None),
        "parquet paths": (str(tmp_path / "paths.parquet"), "file"),
        "parquet bytes": (str(tmp_path / "bytes.parquet"), "png"),
        "csv": (str(tmp_path / "paths.csv"), None),
    }
    for name, (source, column) in sources.items():
        got = classify_table(source, column=column).to_pydict()
        assert len(got["index"]) == len(files) and got["index"] == list(range(len(files))), name
        for k in ("label", *LABELS):
            want = [reference[k][by_path[p]] for p in files]
            assert got[k] == want, (name, k)
    assert classify_table(sources["parquet bytes"][0], column="png").column("path")[3].as_py() == "bytes.parquet#3"
    inline = classify_table(small, workers=0, batch=7).to_pydict()  # decoded between model calls, odd batches
    assert {k: inline[k] for k in ("index", "label", *LABELS)} == {k: reference[k] for k in ("index", "label", *LABELS)}


def test_bad_sources_and_columns_are_one_clear_error(small: Path, tmp_path: Path) -> None:
    pq.write_table(pa.table({"n": [1, 2]}), tmp_path / "t.parquet")
    (tmp_path / "empty").mkdir()
    cases = {
        (str(tmp_path / "nothing-here"), None): "no such file or folder",
        (str(tmp_path / "t.parquet"), None): "no column 'path'",
        (str(tmp_path / "t.parquet"), "n"): r"must hold paths \(string\) or image bytes",
        (str(small), "path"): "--column applies to a table",
        (str(tmp_path / "empty"), None): "no images found",
    }
    for (source, column), message in cases.items():
        with pytest.raises(XEmotionError, match=message):
            classify(source, tmp_path / "out.parquet", column=column)
    assert not (tmp_path / "out.parquet").exists()  # nothing written for a bad source
    with pytest.raises(XEmotionError, match="no images found"):  # in memory too: never an empty "result"
        classify_table(tmp_path / "empty")


def test_an_existing_output_is_continued_only_with_resume_and_the_same_run(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    first = classify(small, out, part_rows=50)
    assert (first.inputs, first.present, first.errors) == (305, 305, 5)
    with pytest.raises(DataError, match="pass --resume"):
        classify(small, out)
    again = classify(small, out, resume=True)
    assert (again.resumed, again.present, again.rows) == (305, 305, 305)
    with pytest.raises(DataError, match=r"other settings \(columns, detect differ\)"):
        classify(small, out, resume=True, detect=True)
    listing = tmp_path / "list.txt"
    files = sorted(str(p) for p in small.glob("0*/*.png"))
    listing.write_text("\n".join(files))
    classify(listing, tmp_path / "l.parquet")
    listing.write_text("\n".join(files[1:] + files[:1]))  # the same inputs in another order: indices differ
    with pytest.raises(DataError, match="other settings \\(the inputs differ\\)"):
        classify(listing, tmp_path / "l.parquet", resume=True)
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        classify(small, tmp_path / "file.parquet")


def test_the_final_check_fails_when_an_input_is_missing(small: Path) -> None:
    """A sink that loses one row: the run must not report success."""

    class Lossy(MemorySink):
        def write(self, rows: dict) -> None:
            if 7 in rows["index"]:
                at = rows["index"].index(7)
                rows = {k: v[:at] + v[at + 1 :] for k, v in rows.items()}
            super().write(rows)

    from xruntime_emotion.batch import _run

    with pytest.raises(XEmotionError, match="holds 304 of 305 inputs"):
        _run(open_source(small), lambda _sha: Lossy(False), ModelSpec(), Settings(), "local", None)


def test_the_local_engine_reads_only_a_bounded_window_ahead(small: Path) -> None:
    """Memory stays bounded: inputs are pulled from the source at most (2 x workers + 3) batches ahead."""
    source = open_source(small)
    pulled, written, ahead = [0], [0], [0]
    items = source._items

    def counting(skip):  # noqa: ANN001, ANN202
        for item in items(skip):
            pulled[0] += 1
            ahead[0] = max(ahead[0], pulled[0] - written[0])
            yield item

    source._items = counting

    class Counting(MemorySink):
        def write(self, rows: dict) -> None:
            written[0] += len(set(rows["index"]))
            super().write(rows)

    run_local(source, lambda _i: False, Counting(False), ModelSpec(), Settings(batch=8, workers=1), lambda *_: None)
    assert written[0] == 305 and 8 < ahead[0] <= (2 * 1 + 3) * 8, ahead


def _parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def test_kill_9_mid_run_then_resume_has_every_input_exactly_once(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.parquet"
    listing = tmp_path / "many.txt"  # 3,050 inputs: the small set ten times over
    files = sorted(str(p) for p in small.rglob("*") if p.is_file() and p.suffix != "" and "fifo" not in p.name)
    listing.write_text("\n".join(files * 10) + "\n")
    cmd = [sys.executable, "-m", "xruntime_emotion.cli", "classify", str(listing), "-o", str(out)]
    proc = subprocess.Popen([*cmd, "--part-rows", "40", "--batch", "8", "--threads", "1"], cwd=tmp_path)
    deadline = time.monotonic() + 120
    while len(_parts(out)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    parts = _parts(out)
    assert len(parts) >= 5
    done = [pq.read_table(p).num_rows for p in parts]  # every finished part is readable ...
    assert sum(done) < len(files) * 10
    assert all(p.name.startswith(("part-", "_xemotion", ".")) for p in out.iterdir())  # ... and nothing else named

    r = subprocess.run([*cmd, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{sum(done)} already there" in r.stderr
    table = pq.read_table(out)
    index = table.column("index").to_numpy()
    assert len(index) == len(files) * 10 and (np.sort(index) == np.arange(len(files) * 10)).all()  # exactly once
    fresh = classify_table(listing)
    assert table.sort_by("index").column("label").to_pylist() == fresh.column("label").to_pylist()


def test_a_torn_csv_is_cut_back_to_whole_inputs_on_resume(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    classify(small, out, part_rows=30)
    whole = out.read_text().splitlines()
    torn = "\n".join(whole[:101]) + "\n" + whole[101][:17]  # 100 rows, and a row cut mid-way
    out.write_text(torn)
    again = classify(small, out, resume=True)
    assert (again.resumed, again.present, again.rows) == (100, 305, 305)
    assert out.read_text().splitlines() == whole  # the same rows, in the same order
    other = tmp_path / "other.onnx"
    other.write_bytes(Path(EmotionClassifier.default().backend.path).read_bytes())
    (tmp_path / "o2.csv").write_text(out.read_text().replace(again.model_sha256, "0" * 64))
    (tmp_path / ".o2.csv.xemotion.json").write_text((tmp_path / ".o.csv.xemotion.json").read_text())  # its record
    with pytest.raises(DataError, match="another model"):
        classify(small, tmp_path / "o2.csv", resume=True)


def test_detect_gives_a_row_per_face_and_one_for_a_photo_without(happy_jpg: Path, tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    face = np.asarray(Image.open(happy_jpg).convert("L"))
    photo = np.full((400, 700), 200, np.uint8)
    big = np.asarray(Image.fromarray(face).resize((150, 150)))
    photo[100:250, 80:230] = big
    photo[120:270, 450:600] = big
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo).save(photos / "two.png")
    Image.fromarray(np.full((300, 300), 90, np.uint8)).save(photos / "none.png")
    (photos / "bad.jpg").write_bytes(b"nope")
    out = tmp_path / "faces.csv"
    r = run_cli("classify", str(photos), "-o", str(out), "--detect")
    assert r.returncode == 0, r.stderr
    rows = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)).to_pydict()
    by = {}
    for i, p in enumerate(rows["path"]):
        by.setdefault(Path(p).name, []).append(i)
    assert len(by["two.png"]) == 2 and [rows["face"][i] for i in by["two.png"]] == [0, 1]
    assert all(rows["faces"][i] == 2 and rows["label"][i] == "happy" for i in by["two.png"])
    assert rows["x"][by["two.png"][0]] < 230 < rows["x"][by["two.png"][1]]
    (none,) = by["none.png"]
    assert rows["face"][none] is None and rows["faces"][none] == 0 and rows["error"][none] is None
    (bad,) = by["bad.jpg"]
    assert rows["error"][bad] and rows["faces"][bad] is None
    expected = EmotionClassifier.default().analyze(photos / "two.png")
    assert [rows["probability"][i] for i in by["two.png"]] == pytest.approx([f.probability for f in expected], abs=1e-6)


def test_ray_engine_matches_the_local_engine(small: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        got = classify(small, tmp_path / "ray.parquet", engine="ray", workers=2, threads=1, part_rows=100)
    finally:
        ray.shutdown()
    local = classify_table(small)
    remote = pq.read_table(tmp_path / "ray.parquet")
    assert (got.present, got.errors) == (305, 5) and remote.schema == local.schema
    assert remote.column("index").to_pylist() == list(range(305))
    assert remote.column("label").to_pylist() == local.column("label").to_pylist()
    a = np.array([remote.column(k).to_numpy(zero_copy_only=False) for k in LABELS], np.float64)
    b = np.array([local.column(k).to_numpy(zero_copy_only=False) for k in LABELS], np.float64)
    assert np.allclose(a, b, atol=1e-6, rtol=0, equal_nan=True) and np.isnan(a).sum() == 5 * len(LABELS)
    assert remote.column("error").to_pylist() == local.column("error").to_pylist()
    assert _sha(remote) == _sha(local)


def test_a_terminal_sees_progress_with_faces_per_second(small: Path) -> None:
    drawn = on_a_terminal(["classify", str(small), "-o", str(small.parent / "tty.csv"), "--batch", "8"])
    assert re.search(rb"classify [^\n]*\d+/305[^\n]*faces/s", drawn), drawn[-2000:]
    assert b"every input is in" in drawn and b"305 rows for 305 of 305 inputs" in drawn


def test_a_run_that_fails_before_its_first_part_leaves_nothing(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing half-made under the output's name, so the same command can simply be run again."""
    from xruntime_emotion.batch import engines

    def broken(*args: object, **kwargs: object) -> None:
        raise XEmotionError("the model failed")

    monkeypatch.setattr(engines, "classify_decoded", broken)
    for out in (tmp_path / "o.parquet", tmp_path / "o.csv"):
        with pytest.raises(XEmotionError, match="the model failed"):
            classify(small, out)
        assert not out.exists()
    monkeypatch.undo()
    assert classify(small, tmp_path / "o.csv").present == 305  # no --resume needed
