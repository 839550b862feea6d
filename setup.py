"""Build hook (everything else is in pyproject.toml): the wheel carries golden/manifest.json.

The golden set lives at the repository root; its manifest is copied into the package as
``xruntime_emotion/golden_manifest.json`` when the checkout (or sdist) has one.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GOLDEN_MANIFEST = Path(__file__).resolve().parent / "golden" / "manifest.json"
PACKAGED_AS = Path("xruntime_emotion") / "golden_manifest.json"


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        # Editable installs read golden/ from the checkout itself.
        if GOLDEN_MANIFEST.is_file() and not self.editable_mode:
            self.copy_file(str(GOLDEN_MANIFEST), str(Path(self.build_lib) / PACKAGED_AS))


setup(cmdclass={"build_py": BuildPy})
