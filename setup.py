"""Build hook (everything else is in pyproject.toml): the wheel carries the golden set.

The golden set lives at the repository root (``golden/``); the wheel carries it whole as
``xruntime_emotion/golden_set/``, where ``xruntime_emotion.golden.golden_dir`` finds it through
importlib.resources. Editable installs read ``golden/`` from the checkout itself.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GOLDEN = Path(__file__).resolve().parent / "golden"
PACKAGED_AS = Path("xruntime_emotion") / "golden_set"


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if GOLDEN.is_dir() and not self.editable_mode:
            for src in sorted(p for p in GOLDEN.rglob("*") if p.is_file()):
                dst = Path(self.build_lib) / PACKAGED_AS / src.relative_to(GOLDEN)
                self.mkpath(str(dst.parent))
                self.copy_file(str(src), str(dst))


setup(cmdclass={"build_py": BuildPy})
