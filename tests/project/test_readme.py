"""The README's examples run as written: its Python blocks are executed, its commands are the ones CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


# The user's blocks: they run verbatim, from the checkout's root, after the README's install.
USER_SECTIONS = ("## The main job", "## Embedding", "## Whole photos", "## Many faces")
EXPORT = "xemotion export --all -o artifacts"  # the session's `artifacts` fixture is this very export


def section_blocks(language: str) -> list[str]:
    """The ``language`` blocks of the user's sections, in README order."""
    found = []
    for title in USER_SECTIONS:
        body = README[README.index(title) + len(title) :]
        body = body[: body.find("\n## ")] if "\n## " in body else body
        found += re.findall(rf"```{language}\n(.*?)```", body, re.S)
    return found


def commands() -> list[str]:
    lines = [ln.strip() for block in section_blocks("bash") for ln in block.splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.startswith("pip install ")]  # the install is this test's environment


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Path:
    """A copy of what a checkout's root holds for the README (examples/), plus the export's artifacts/."""
    import shutil

    root = tmp_path_factory.mktemp("readme") / "checkout"
    shutil.copytree(ROOT / "examples", root / "examples")
    (root / "artifacts").symlink_to(artifacts)
    return root


def test_user_blocks_hold_the_commands_a_new_user_needs() -> None:
    cmds = commands()
    assert EXPORT in [c.split("  #")[0].strip() for c in cmds]
    assert any(c.startswith("xemotion predict examples/face.png") for c in cmds)
    assert sum(c.startswith("xemotion classify ") for c in cmds) >= 4
    assert len(section_blocks("python")) >= 2  # embedding and the batch API


def test_bash_blocks_run_verbatim(checkout: Path, tmp_path: Path) -> None:
    """Every command of the user's bash blocks, in order, in a fresh folder: no data set, an empty HOME."""
    env = {k: v for k, v in os.environ.items() if k != "XEMOTION_DATA"}
    env.update(HOME=str(tmp_path), PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    for cmd in commands():
        line = cmd.split("  #")[0].strip()
        if line == EXPORT:
            continue  # done once for the session by the `artifacts` fixture, with the same defaults
        r = subprocess.run(["bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (line, r.stderr[-2000:])
        said = re.search(r"(Recognized emotion: \w+ \([\d.]+\))", cmd)
        if said:  # the comment quotes the answer
            assert said.group(1) in r.stdout, (line, r.stdout)


@pytest.mark.parametrize("code", section_blocks("python"), ids=lambda c: c.strip().splitlines()[-1][:40])
def test_python_block_runs(code: str, checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block runs as written, from the checkout's root."""
    monkeypatch.chdir(checkout)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    if "probs" in scope:
        assert scope["probs"].shape == (2, 7)  # type: ignore[attr-defined]
        assert scope["p"].label == "happy"  # type: ignore[attr-defined]
    if "report" in scope:
        assert scope["report"].inputs == 16  # type: ignore[attr-defined]


def test_ci_installs_and_tests_as_the_readme_says() -> None:
    tests = README[README.index("## Tests") :]
    command = re.search(r"```bash\n(.*?)\n```", tests, re.S).group(1).strip()  # type: ignore[union-attr]
    install, run = (part.strip() for part in command.split("&&"))
    ci = (ROOT / ".ci" / "run").read_text()
    pip, spec = install.rsplit(" ", 1)
    assert re.search(rf"^python -m {re.escape(pip)} (-\S+ )*{re.escape(spec)}$", ci, re.M), install
    assert re.search(rf"^{re.escape(run)}$", ci, re.M), run
    assert " -e " not in ci and "--editable" not in ci


def test_tests_run_against_the_installed_package() -> None:
    """In CI the package under test is the installed copy, never the checkout's source tree."""
    import exporters
    import xruntime_emotion

    where = [Path(m.__file__).resolve() for m in (xruntime_emotion, exporters)]  # type: ignore[arg-type]
    installed = all("site-packages" in p.parts for p in where)
    if not IN_CI and not installed:
        pytest.skip(f"an editable install ({where[0].parent}); CI installs the wheel way")
    source = (ROOT / "xruntime_emotion", ROOT / "exporters")  # the checkout's own packages (a venv may sit in it)
    assert installed and not any(p.is_relative_to(s) for p in where for s in source), where
    assert str(ROOT) not in os.environ.get("PYTHONPATH", "")
