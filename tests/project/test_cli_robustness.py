"""cli, atomic, exporters.pipeline: text from files printed safely, file-system failures as one line,
concurrent exports into one folder, temporary folders of killed exports swept."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from xruntime_emotion.weights import default_onnx_path

EVIL = "[/evil] \x1b]0;pwned\x07\x1b[31mred"  # Rich markup, an OSC title escape and an ANSI colour


def _one_error_line(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode != 0, r.stdout[-1000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _face(tmp_path: Path) -> Path:
    Image.fromarray(np.full((48, 48), 100, np.uint8)).save(tmp_path / "face.png")
    return tmp_path / "face.png"


# ----------------------------------------------------------------------------- 8. text from files
def test_info_prints_names_and_metadata_from_a_file_as_text(tmp_path: Path) -> None:
    """Before: a metadata value `[/evil]` crashed `info` (MarkupError); escapes were printed raw."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(default_onnx_path()))
    onnx.helper.set_model_props(model, {"author": EVIL})
    model.graph.output[0].name = "probabilities[/b]"
    model.graph.node[-1].output[0] = "probabilities[/b]"
    path = tmp_path / "evil.onnx"
    onnx.save(model, str(path))
    r = run_cli("info", str(path))
    assert r.returncode == 0, r.stderr
    assert "[/evil]" in r.stdout and "probabilities[/b]" in r.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout


@pytest.mark.parametrize("command", ["export", "mirror"])
def test_output_paths_that_look_like_markup(command: str, tmp_path: Path) -> None:
    """Before: `-o out[/x]` crashed export and `golden mirror`."""
    out = tmp_path / "out[/x]"
    if command == "export":
        r = run_cli("export", "--format", "onnx", "--via", "ir", "-o", str(out))
    else:
        r = run_cli("golden", "mirror", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "out[/x]" in r.stdout and any(out.iterdir())


# -------------------------------------------------------------------------- 9. file-system failures
def test_output_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    _one_error_line(run_cli("export", "--all", "-o", str(tmp_path / "taken")), "is not a folder")
    _one_error_line(run_cli("export", "-f", "onnx", "-o", str(tmp_path / "taken" / "sub")), "cannot create the folder")


def test_json_into_a_folder_or_through_a_symlink_is_refused(tmp_path: Path) -> None:
    face = _face(tmp_path)
    (tmp_path / "dir").mkdir()
    _one_error_line(run_cli("predict", str(face), "--json", str(tmp_path / "dir")), "is a folder")
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    (tmp_path / "link.json").symlink_to(target)
    _one_error_line(run_cli("predict", str(face), "--json", str(tmp_path / "link.json")), "symbolic link")
    assert target.read_text() == "keep me" and (tmp_path / "link.json").is_symlink()


def test_a_full_disk_during_export_is_one_line_and_leaves_no_unlisted_artifact(tmp_path: Path) -> None:
    """Before: a failed manifest write left the artifact published, the manifest stale, and a traceback."""
    out = tmp_path / "a"

    def small_files() -> None:  # every file this process writes is cut at 1 MiB: a full disk, for it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    cmd = [sys.executable, "-m", "xruntime_emotion.cli", "export", "-f", "onnx", "--via", "ir", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=small_files, cwd=tmp_path)
    _one_error_line(r, "File too large")
    listed = (
        json.loads((out / "export_manifest.json").read_text())["artifacts"]
        if (out / "export_manifest.json").exists()
        else {}
    )
    assert {p.name for p in out.iterdir() if p.suffix == ".onnx"} == {e["file"] for e in listed.values()}


@pytest.mark.parametrize("content", ["[1, 2]", '{"weights_sha256": "x", "artifacts": 3}', "{not json"])
def test_a_malformed_export_manifest_is_one_line(content: str, tmp_path: Path) -> None:
    d = tmp_path / "a"
    d.mkdir()
    (d / "emotion_float32.onnx").write_bytes(default_onnx_path().read_bytes())
    (d / "export_manifest.json").write_text(content)
    _one_error_line(run_cli("verify", "--artifacts", str(d)))
    _one_error_line(run_cli("export", "-f", "onnx", "--via", "ir", "-o", str(d)))
    assert (d / "export_manifest.json").read_text() == content  # never replaced silently


def test_a_golden_manifest_with_wrong_types_is_one_line(tmp_path: Path) -> None:
    from helpers import _copy_golden

    from xruntime_emotion.check import golden as G

    d = _copy_golden(tmp_path)
    gs = G.load(d)
    manifest = json.loads(json.dumps(gs.manifest))
    manifest["tolerances"]["fp32"]["max_abs"] = "tiny"
    G.save(d, manifest, gs.expected, gs.faces)  # sealed, so only the type check can catch it
    a = tmp_path / "a"
    a.mkdir()
    (a / "emotion_float32.onnx").write_bytes(default_onnx_path().read_bytes())
    _one_error_line(run_cli("verify", "--artifacts", str(a), "--golden", str(d)), "malformed golden manifest")


@pytest.mark.parametrize("name", ["XEMOTION_MAX_PIXELS", "XEMOTION_PROBE_TIMEOUT", "XEMOTION_MAX_MODEL_BYTES"])
def test_environment_values_are_validated(name: str, tmp_path: Path) -> None:
    """Before: XEMOTION_MAX_PIXELS=abc raised a ValueError traceback at import."""
    r = run_cli("predict", "--model", str(default_onnx_path()), str(_face(tmp_path)), env={name: "abc"})
    _one_error_line(r, name, "'abc'")


# ------------------------------------------------------------------------ 10. concurrent exports
def test_two_concurrent_exports_into_one_folder_keep_every_entry(tmp_path: Path) -> None:
    """Before: both exited 0, and the manifest listed only one side's files (a lost update)."""
    out = tmp_path / "a"
    cmds = [["-f", "onnx", "--via", "ir"], ["-f", "tflite-fp32"]]
    procs = [
        subprocess.Popen([sys.executable, "-m", "xruntime_emotion.cli", "export", *c, "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for c in cmds
    ]  # fmt: skip
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-2000:]
    listed = json.loads((out / "export_manifest.json").read_text())["artifacts"]
    assert set(listed) == {"onnx-ir", "tflite-fp32"}
    assert {e["file"] for e in listed.values()} == {p.name for p in out.iterdir() if p.name != "export_manifest.json"}


def test_temporary_folders_of_killed_exports_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    """Before: `kill -9` during export left TensorFlow's SavedModel folders (12 MB each) behind for ever."""
    base = Path(tempfile.gettempdir())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = base / f"xemotion-export-{int(dead.stdout)}-test"
    live = base / f"xemotion-export-{os.getpid()}-test"  # this process is alive: not to be touched
    for d in (stale, live):
        d.mkdir(exist_ok=True)
        (d / "saved_model.pb").write_bytes(b"x" * 1000)
    try:
        cmd = [sys.executable, "-m", "xruntime_emotion.cli", "export", "-f", "tflite-fp32", "-o", str(tmp_path / "a")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        assert not stale.exists() and live.exists()
        assert not list(base.glob(f"xemotion-export-{proc.pid}-*"))  # the export's own folder is gone too
    finally:
        for d in (stale, live):
            subprocess.run(["rm", "-rf", str(d)], check=False)
