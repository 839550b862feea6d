"""The README's examples run as written: its Python blocks are executed, its commands are the ones CI runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import IN_CI
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.splitlines()[0][:40])
def test_python_block_runs(code: str, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block runs in a folder holding what the README assumes: artifacts/ and a face.jpg."""
    from xruntime_emotion.check.golden import HAPPY, load

    (tmp_path / "artifacts").symlink_to(artifacts)
    Image.fromarray(load().faces[HAPPY]).save(tmp_path / "face.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    if "probs" in scope:
        assert scope["probs"].shape == (2, 7)  # type: ignore[attr-defined]
        assert scope["p"].label == "happy"  # type: ignore[attr-defined]


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
