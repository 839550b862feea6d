"""xruntime_emotion.cli: every command's help, and predict and info with JSON output."""

from __future__ import annotations

from pathlib import Path

from helpers import run_cli

from xruntime_emotion import LABELS


def test_cli_help_for_every_command() -> None:
    for cmd in ("export", "predict", "info", "targets", "train", "evaluate"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_predict_and_info_json(tmp_path: Path, happy_jpg: Path) -> None:
    import json

    r = run_cli("predict", str(happy_jpg), "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    assert "Recognized emotion:" in r.stdout
    res = json.loads((tmp_path / "p.json").read_text())["results"][0]
    assert set(res["probabilities"]) == set(LABELS)
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-4
    from xruntime_emotion.weights import default_onnx_path

    r = run_cli("info", str(default_onnx_path()), "--json", str(tmp_path / "i.json"))
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["inputs"][0]["shape"][1:] == [48, 48, 1] and len(info["sha256"]) == 64


def test_export_help_and_its_error_list_every_format_of_the_catalog() -> None:
    from xruntime_emotion.model.catalog import FORMATS

    exportable = [f for f in FORMATS.values() if f.producer]
    assert {"deepface-h5", "onnx-ir", "onnx", "vela"} <= {f.name for f in exportable}
    r = run_cli("export", "--help", env={"COLUMNS": "200"})
    assert r.returncode == 0
    for f in exportable:  # one line each: name, file, what it is
        line = next((s for s in r.stdout.splitlines() if s.strip().startswith(f"{f.name}: ")), None)
        assert line and f.filename in line and f.description.split(":")[0] in line, (f.name, r.stdout[-2000:])
    r = run_cli("export", "--format", "nope", "-o", "out")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert all(f.name in r.stderr for f in exportable), r.stderr


def test_usage_errors_are_one_line_with_the_hint() -> None:
    cases = [("predict",), ("export", "--bogus"), ("nope",), ("predict", "--margin", "3", "x.jpg"), ("golden", "x")]
    for args in cases:
        r = run_cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (args, r.stderr)
        assert lines[0].startswith("error: ") and "--help'" in lines[0] and "Traceback" not in r.stderr, (args, lines)
    r = run_cli()  # bare: the help, not an error
    assert r.returncode == 0 and "Usage: xemotion" in r.stdout + r.stderr
