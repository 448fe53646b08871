"""The build step pyproject.toml cannot declare: the wheel carries the bundled content.

The repository keeps the shipped FHIR content in codesystems/ at the top (the design card
layout); the wheel carries a copy as package data, terminology/codesystems/, which
terminology.settings.BUNDLED_CONTENT finds when the package runs installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONTENT = Path(__file__).resolve().parent / "codesystems"


class BuildWithContent(build_py):
    """build_py, then codesystems/*.json (and its README) into the built package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "terminology" / "codesystems"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(CONTENT.glob("*.json")) + [CONTENT / "README.md"]:
            if source.is_file():
                shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildWithContent})
