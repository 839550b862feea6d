"""The probe's verdict cache (``xruntime_emotion.runtime.safety``): a pass is remembered across processes,
keyed on the file's bytes and all the verdict depends on; anything odd about the cache means probe again.

A "new process" here is ``safety._passed`` emptied (the in-memory verdicts); one test starts a real one.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.runtime import safety
from xruntime_emotion.runtime.backends import RUNTIMES
from xruntime_emotion.weights import default_onnx_path

FACE = np.full((1, 48, 48), 128, np.uint8)


class Helper:
    """Counts the requests that reach the probe process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.monkeypatch = monkeypatch
        real = safety._ask_server if hasattr(os, "fork") else safety._ask_once

        def counted(request: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            return real(request)

        monkeypatch.setattr(safety, "_ask_server", counted)
        monkeypatch.setattr(safety, "_ask_once", counted)

    def open(self, path: Path) -> EmotionClassifier:
        """``from_onnx`` as a fresh process would run it: nothing remembered in memory."""
        safety._passed.clear()
        clf = EmotionClassifier.from_onnx(path, threads=1)
        clf.predict(FACE)
        return clf

    def probes(self, path: Path) -> int:
        """How many probes opening ``path`` (as a fresh process) took: 0 (cached) or 1."""
        before = self.calls
        self.open(path)
        return self.calls - before


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Helper]:
    monkeypatch.setenv(safety.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(safety, "_passed", set())
    yield Helper(monkeypatch)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """An exported-looking copy of the shipped ONNX model (so it is probed, unlike ``default()``)."""
    return Path(shutil.copy(default_onnx_path(), tmp_path / "model.onnx"))


def verdicts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if len(p.name) == 64) if folder.is_dir() else []


def recorded_key(entry: Path) -> dict[str, Any]:
    """An entry's key, item by item: its first line says it passed, each other line is ``name: literal``."""
    head, *lines = entry.read_text().splitlines()
    assert head == "xemotion probe verdict: passed"
    return {name: ast.literal_eval(value) for name, value in (line.split(": ", 1) for line in lines)}


def other_weights(path: Path, out: Path, offset: int = 0) -> Path:
    """``path`` with one byte inside a weight tensor changed: still a valid model, other bytes."""
    onnx = pytest.importorskip("onnx")
    raw = max((t.raw_data for t in onnx.load(str(path)).graph.initializer), key=len)
    data = bytearray(path.read_bytes())
    at = data.find(raw) + len(raw) // 2 + offset
    data[at] ^= 0x01  # a float's lowest mantissa bit
    out.write_bytes(bytes(data))
    return out


def test_a_pass_is_kept_across_processes_in_a_private_folder(helper: Helper, model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert helper.probes(model) == 1
    [entry] = verdicts(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and cache.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    key = recorded_key(entry)
    assert key["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    import onnxruntime

    version, (file, size, mtime) = key["versions"]["onnxruntime"]
    assert version == onnxruntime.__version__ and file == onnxruntime.__file__ and size > 0
    assert key["timeout"] == safety.PROBE_TIMEOUT_S
    assert key["memory"] == safety.PROBE_MEMORY_BYTES
    assert helper.probes(model) == 0
    assert helper.probes(Path(shutil.copy(model, tmp_path / "renamed.onnx"))) == 0  # the bytes count, not the name
    # a real new process: no probe process is started for it
    code = (
        "import sys, numpy as np; from xruntime_emotion import EmotionClassifier; from xruntime_emotion.runtime "
        "import safety; EmotionClassifier.from_onnx(sys.argv[1]).predict(np.zeros((48, 48), np.uint8)); "
        "print(safety._server is None)"
    )
    env = {**os.environ, safety.CACHE_ENV: str(cache)}
    r = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["True"], r.stderr[-2000:]


def test_the_default_location_is_the_users_cache_folder(
    helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(safety.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert safety.cache_folder() == str(tmp_path / "xdg" / "xemotion" / "probe")
    assert helper.probes(model) == 1 and helper.probes(model) == 0
    assert len(verdicts(tmp_path / "xdg" / "xemotion" / "probe")) == 1
    for folder in (tmp_path / "xdg", tmp_path / "xdg" / "xemotion", tmp_path / "xdg" / "xemotion" / "probe"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_changed_byte_is_probed_again(helper: Helper, model: Path, tmp_path: Path) -> None:
    assert helper.probes(model) == 1
    changed = other_weights(model, tmp_path / "changed.onnx")
    assert helper.probes(changed) == 1
    model.write_bytes(changed.read_bytes())  # the same path, new bytes
    assert helper.probes(model) == 0  # ...which passed just before, as changed.onnx
    assert helper.probes(other_weights(changed, model, offset=4)) == 1
    assert len(verdicts(tmp_path / "cache")) == 3


def test_another_runtime_version_or_limit_is_probed_again(
    helper: Helper, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert helper.probes(model) == 1
    real = safety.runtime_versions
    monkeypatch.setattr(safety, "runtime_versions", lambda spec: {**real(spec), "onnxruntime": ["0.0.1-other"]})
    assert helper.probes(model) == 1 and helper.probes(model) == 0
    monkeypatch.setattr(safety, "runtime_versions", real)
    assert helper.probes(model) == 0  # the first runtime's verdict is still there
    identity = safety._file_identity
    monkeypatch.setattr(safety, "_file_identity", lambda path: [*identity(path), "reinstalled"])
    assert helper.probes(model) == 1  # the same version, installed again
    monkeypatch.setattr(safety, "_file_identity", identity)
    monkeypatch.setenv("XEMOTION_PROBE_TIMEOUT", "30")
    assert helper.probes(model) == 1
    monkeypatch.setattr(safety, "PROBE_MEMORY_BYTES", 2 << 30)
    assert helper.probes(model) == 1
    monkeypatch.setattr(safety, "__version__", "0.0.0-other")
    assert helper.probes(model) == 1


def _foreign(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``path`` owned by another user: chown where this is root, else this process pretends to be another."""
    if os.geteuid() == 0:
        os.chown(path, 12345, -1, follow_symlinks=False)
    else:
        monkeypatch.setattr(safety, "_euid", lambda: os.geteuid() + 1)


def test_a_foreign_owned_cache_folder_is_ignored(
    helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert helper.probes(model) == 1
    _foreign(tmp_path / "cache", monkeypatch)
    assert helper.probes(model) == 1 and helper.probes(model) == 1  # neither read nor written


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_a_foreign_owned_entry_is_ignored(helper: Helper, model: Path, tmp_path: Path) -> None:
    assert helper.probes(model) == 1
    [entry] = verdicts(tmp_path / "cache")
    os.chown(entry, 12345, -1)
    assert helper.probes(model) == 1
    assert entry.stat().st_uid == os.geteuid()  # replaced by this user's own


def test_a_group_or_world_writable_cache_folder_is_ignored(helper: Helper, model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert helper.probes(model) == 1
    for mode in (0o770, 0o702):
        cache.chmod(mode)
        assert helper.probes(model) == 1
    cache.chmod(0o700)
    assert helper.probes(model) == 0
    [entry] = verdicts(cache)
    entry.chmod(0o620)
    assert helper.probes(model) == 1
    tmp_path.chmod(0o777)  # a folder above it that anyone may write to (and rename the cache in)
    try:
        assert helper.probes(model) == 1
    finally:
        tmp_path.chmod(0o700)


def test_a_link_on_the_cache_path_is_ignored(
    helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "cache"
    assert helper.probes(model) == 1
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv(safety.CACHE_ENV, str(tmp_path / "link"))
    assert helper.probes(model) == 1  # the folder is a link
    (tmp_path / "up").symlink_to(tmp_path)
    monkeypatch.setenv(safety.CACHE_ENV, str(tmp_path / "up" / "cache"))
    assert helper.probes(model) == 1  # a folder above it is a link
    assert len(verdicts(real)) == 1
    monkeypatch.setenv(safety.CACHE_ENV, str(real))
    [entry] = verdicts(real)
    kept = entry.rename(tmp_path / "entry")
    entry.symlink_to(kept)
    assert helper.probes(model) == 1  # the entry is a link
    assert not entry.is_symlink() and helper.probes(model) == 0  # replaced by a file


@pytest.mark.parametrize(
    "change",
    ["EMPTY", "TRUNCATED", "NO-KEY", "NOT-PASSED", "REORDERED", "HUGE", "PADDED"],
)
def test_a_malformed_entry_is_ignored(change: str, helper: Helper, model: Path, tmp_path: Path) -> None:
    assert helper.probes(model) == 1
    [entry] = verdicts(tmp_path / "cache")
    good = entry.read_text()
    head, *lines = good.splitlines(keepends=True)
    text = {
        "EMPTY": "",
        "TRUNCATED": good[:-1],
        "NO-KEY": head,
        "NOT-PASSED": head.replace("passed", "failed") + "".join(lines),  # the right key, but not a pass
        "REORDERED": head + "".join(lines[::-1]),  # the same items, not the canonical text
        "HUGE": "x" * 70000,
        "PADDED": good + " " * 70000,  # the right entry, in a file larger than any entry
    }[change]
    assert recorded_key(entry) and text != good
    entry.write_text(text)
    assert helper.probes(model) == 1 and helper.probes(model) == 0


def test_an_entry_for_another_key_is_ignored(helper: Helper, model: Path, tmp_path: Path) -> None:
    """An entry copied under another file's name: its recorded key is not the one asked for."""
    other = other_weights(model, tmp_path / "other.onnx")
    assert helper.probes(other) == 1
    [entry] = verdicts(tmp_path / "cache")
    name = safety._entry_name(
        safety._key(
            hashlib.sha256(model.read_bytes()).hexdigest(),
            "onnxruntime",
            {"providers": None},
            RUNTIMES["onnxruntime"]._asdict(),
            safety.probe_timeout(),
        )
    )
    shutil.copy(entry, entry.with_name(name))
    assert helper.probes(model) == 1


def test_the_off_switch(helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(safety.CACHE_ENV, "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert safety.cache_folder() is None
    assert helper.probes(model) == 1 and helper.probes(model) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # nothing written anywhere


def test_a_failed_probe_is_never_cached(helper: Helper, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(default_onnx_path().read_bytes()[:-1000])  # cut short
    for _ in range(2):
        before = helper.calls
        with pytest.raises(ModelFileError):
            helper.open(bad)
        assert helper.calls == before + 1
    assert verdicts(tmp_path / "cache") == []


def test_the_cache_keeps_the_most_recently_used(
    helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "CACHE_ENTRIES", 2)
    files = [model, other_weights(model, tmp_path / "b.onnx"), other_weights(model, tmp_path / "c.onnx", offset=4)]
    for i, f in enumerate(files[:2]):
        assert helper.probes(f) == 1
        os.utime(verdicts(tmp_path / "cache")[0], (1000 + i, 1000 + i))  # a clear order, whatever the clock
    assert helper.probes(model) == 0  # used again: the newest
    assert helper.probes(files[2]) == 1
    assert len(verdicts(tmp_path / "cache")) == 2
    assert helper.probes(model) == 0 and helper.probes(files[2]) == 0 and helper.probes(files[1]) == 1


def test_the_host_loads_the_bytes_that_were_checked(
    helper: Helper, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is swapped right after its check: the host still runs what was checked, never the path again."""
    expected = EmotionClassifier.default().predict(FACE)
    real = safety.probe

    def swapped(path: str | Path, runtime: str, **kw: Any) -> bytes:
        data = real(path, runtime, **kw)
        Path(path).write_bytes(b"\x08not a model at all")
        return data

    monkeypatch.setattr(safety, "probe", swapped)
    for _ in range(2):  # probed, then cached
        model.write_bytes(default_onnx_path().read_bytes())
        np.testing.assert_array_equal(helper.open(model).predict(FACE), expected)


def test_onnx_with_external_data_is_probed_at_every_open(helper: Helper, model: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ext = tmp_path / "ext" / "model.onnx"
    ext.parent.mkdir()
    onnx.save_model(onnx.load(str(model)), str(ext), save_as_external_data=True, location="w.bin")
    assert safety.has_external_data(ext.read_bytes()) and not safety.has_external_data(model.read_bytes())
    assert safety.has_external_data(b"\x08" + b"\xff" * 12)  # not ONNX's protobuf: treated alike
    assert helper.probes(ext) == 1
    EmotionClassifier.from_onnx(ext)  # not even remembered within the process
    assert helper.calls == 2
    assert verdicts(tmp_path / "cache") == []
    np.testing.assert_allclose(helper.open(ext).predict(FACE), helper.open(model).predict(FACE), atol=1e-6)


def test_default_never_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_helper(request: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("default() asked the probe process")

    monkeypatch.setattr(safety, "_ask_server", no_helper)
    monkeypatch.setattr(safety, "_ask_once", no_helper)
    monkeypatch.setattr(safety, "_cached", lambda name, key: pytest.fail("default() looked in the probe cache"))
    clf = EmotionClassifier.default()
    assert clf.predict(FACE).shape == (1, 7) and clf.backend.path.name == default_onnx_path().name
