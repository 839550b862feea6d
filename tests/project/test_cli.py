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
