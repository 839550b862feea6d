"""cli, console: stdout carries only the result; stderr a progress bar on a terminal and one summary line;
every error one line; `info` on every format; DeepFace's weights file from any weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import on_a_terminal, run_cli
from PIL import Image

from xruntime_emotion.model.catalog import FORMATS
from xruntime_emotion.runtime.inspection import inspect_file
from xruntime_emotion.weights import default_onnx_path, default_weights_path

CHATTER = ("Saved artifact", "Captures", "TensorSpec", "XNNPACK", "oneDNN", "absl", "WARNING", "I0000")


def _face(tmp_path: Path) -> Path:
    Image.fromarray(np.full((48, 48), 90, np.uint8)).save(tmp_path / "face.png")
    return tmp_path / "face.png"


def test_export_all_writes_only_its_result_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "a"
    r = run_cli("export", "--all", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [f for f in FORMATS if FORMATS[f].exported]
    assert all(line.startswith("✓ ") for line in lines[:-1]) and lines[-1].startswith("manifest: ")
    assert not any(word in r.stdout + r.stderr for word in CHATTER), r.stdout + r.stderr
    assert re.fullmatch(r"export: 5 artifact\(s\) written and validated in .* \(\d+\.\d s\)\n", r.stderr), r.stderr


def test_predict_writes_only_its_result(tmp_path: Path, artifacts: Path) -> None:
    face = _face(tmp_path)
    for model in (artifacts / "emotion_uint8_float32.tflite", default_onnx_path()):
        r = run_cli("predict", "--model", str(model), str(face))
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert len(r.stdout.splitlines()) == 2 and "Recognized emotion" in r.stdout


def test_long_commands_say_one_summary_line_when_stderr_is_not_a_terminal(tmp_path: Path, artifacts: Path) -> None:
    r = run_cli("verify", "--artifacts", str(artifacts))
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"verify: \d+ pairs passed, 0 failed, \d+ skipped; .*\n", r.stderr), r.stderr
    r = run_cli("golden", "mirror", "-o", str(tmp_path / "m"))
    assert r.returncode == 0 and re.fullmatch(r"golden mirror: 575 cases \(\d+\.\d s\)\n", r.stderr), r.stderr


def test_a_terminal_sees_the_progress_bar_before_the_first_unit_ends(artifacts: Path) -> None:
    drawn = on_a_terminal(["verify", "--artifacts", str(artifacts)])
    first = re.search(rb"verify: weights \xc3\x97 keras[^\n]*0/\d+", drawn)  # drawn while the first pair runs
    assert first, drawn[-2000:]
    assert b"verify: " in drawn[first.end() :]  # and the summary at the end
    quiet = on_a_terminal(["--quiet", "verify", "--artifacts", str(artifacts), "--format", "onnx"])
    assert not re.search(rb"0/\d+", quiet) and b"1 pairs passed" in quiet


# ------------------------------------------------------------------------------- one line per error
def _bad(tmp_path: Path) -> dict[str, list[list[str]]]:
    """Three bad inputs (not usage errors) for every command."""
    t = str(tmp_path)
    (tmp_path / "file.txt").write_text("not a model, not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "dir.json").mkdir()
    face = str(_face(tmp_path))
    onnx = str(default_onnx_path())
    junk = f"{t}/file.txt"
    return {
        "export": [["-f", "nonsense"], ["-f", "onnx", "-o", junk], ["-f", "onnx", "--weights", junk]],
        "predict": [[f"{t}/missing.png"], [f"{t}/file.txt"], ["--model", f"{t}/file.txt", face]],
        "info": [[f"{t}/missing.onnx"], [f"{t}/file.txt"], [f"{t}/empty"]],
        "targets": [["--json", f"{t}/dir.json"], ["--json", f"{t}/file.txt/x.json"], ["--json", f"{t}/empty"]],
        "train": [["--data", f"{t}/missing.npz"], ["--data", f"{t}/file.txt"], ["--data", f"{t}/empty"]],
        "teacher": [["-m", f"{t}/missing.npz", "--data", f"{t}/missing.npz"], ["-m", junk, "--data", junk],
                    ["-m", str(default_weights_path()), "--data", f"{t}/empty"]],
        "evaluate": [["-m", f"{t}/missing.onnx"], ["-m", onnx, "--split", "Nope"], ["-m", onnx, "--data", junk]],
        "verify": [["--artifacts", f"{t}/empty"], ["--artifacts", f"{t}/missing"], ["--artifacts", t, "--golden", t]],
        "golden regenerate": [["--artifacts", f"{t}/empty", "--data", f"{t}/file.txt"], ["--weights", f"{t}/file.txt"],
                              ["--data", f"{t}/missing.npz"]],
        "golden record": [["--runtime", "nope", "--artifacts", t], ["--runtime", "litert", "--format", "vela"],
                          ["--runtime", "litert", "--artifacts", f"{t}/empty"]],
        "golden mirror": [["-o", f"{t}/m", "--model", f"{t}/missing.onnx"], ["-o", f"{t}/m2", "--golden", f"{t}/empty"],
                          ["-o", f"{t}/file.txt/m3"]],
        "classify": [[f"{t}/missing", "-o", f"{t}/o.parquet"], [t, "-o", f"{t}/file.txt"],
                     [face, "-o", f"{t}/o.csv", "--column", "x"]],
        "bench": [["--runs", "10"], ["-m", f"{t}/missing.onnx"], ["--batch", "x,y", "-m", onnx]],
    }  # fmt: skip


COMMANDS = ["export", "predict", "info", "targets", "train", "teacher", "evaluate", "verify", "golden regenerate",
            "golden record", "golden mirror", "bench", "classify"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_fails_in_one_line(command: str, tmp_path: Path) -> None:
    for args in _bad(tmp_path)[command]:
        r = run_cli(*command.split(), *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode not in (0, 2), (args, r.returncode, r.stdout[-500:])  # 2: a usage error, not these
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, (args, r.stderr)


def test_the_table_covers_every_command() -> None:
    from typer.main import get_command

    from xruntime_emotion.cli import app

    root = get_command(app)
    names = {n for n, c in root.commands.items() if not hasattr(c, "commands")}  # type: ignore[attr-defined]
    names |= {f"golden {n}" for n in root.commands["golden"].commands}  # type: ignore[attr-defined]
    assert names == set(COMMANDS)


# ------------------------------------------------------------------------------------ info, h5 export
def test_info_describes_every_format_from_the_file_itself(artifacts: Path) -> None:
    for row in FORMATS.values():
        path = artifacts / row.filename
        if not row.exported:
            continue
        r = run_cli("info", str(path), "--json", str(artifacts.parent / f"{row.name}.json"))
        assert r.returncode == 0, (row.name, r.stderr)
        d = json.loads((artifacts.parent / f"{row.name}.json").read_text())
        own = inspect_file(path)
        assert d["nodes"] == len(own.operators) and sum(d["ops"].values()) == d["nodes"], row.name
        assert "DELEGATE" not in d["ops"]  # LiteRT's XNNPACK partitions are not the file's operators
    vela = json.loads((artifacts.parent / "vela.json").read_text())
    assert vela["ops"] == {"DEQUANTIZE": 1, "ethos-u": 1} and vela["custom_ops"][0]["op"] == "ethos-u"
    size = (artifacts / FORMATS["vela"].filename).stat().st_size  # Vela's compressed weights are its bulk
    assert vela["inputs"][0]["type"] == "uint8" and 0.9 * size < vela["buffers_bytes"] < size
    assert json.loads((artifacts.parent / "tflite-int8.json").read_text())["metadata"]["min_runtime_version"]


def test_deepface_weights_file_from_any_weights(tmp_path: Path, random_ir) -> None:
    """`export --format deepface-h5` writes DeepFace's own weights file; read back with h5py alone."""
    import h5py

    weights = tmp_path / "random.npz"
    random_ir.save_npz(weights)
    r = run_cli("export", "--format", "deepface-h5", "--weights", str(weights), "-o", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "a" / "facial_expression_model_weights.h5"
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names == [layer.name for layer in random_ir.layers]
        for layer in random_ir.weighted_layers:
            group = f[layer.name]
            kernel, bias = (group[n.decode()][()] for n in group.attrs["weight_names"])
            np.testing.assert_array_equal(kernel, random_ir.weights[layer.name][0])
            np.testing.assert_array_equal(bias, random_ir.weights[layer.name][1])


def test_info_without_a_file_lists_the_shipped_models_with_the_detector(tmp_path: Path) -> None:
    from xruntime_emotion.runtime.detect import BLAZEFACE_SHA256, DETECTORS

    r = run_cli("info", "--json", str(tmp_path / "i.json"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rows = {row["name"]: row for row in json.loads((tmp_path / "i.json").read_text())}
    assert set(rows) == {"emotion", "emotion-weights", *(f"detector {n}" for n in DETECTORS)}
    blaze = rows["detector blazeface"]
    assert blaze["sha256"] == BLAZEFACE_SHA256 and blaze["inputs"][0]["shape"][1:] == ["height", "width", 3]
    assert f"sha256 {BLAZEFACE_SHA256}" in r.stdout and "detector haar (opencv)" in r.stdout
