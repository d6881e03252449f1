"""Fixtures of the supervisor tests: a project in the short VIBEBOX_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.paths import ProjectPaths


@pytest.fixture
def project(short_home: Path) -> ProjectPaths:
    """A project in the short VIBEBOX_HOME (tests/conftest.py), its .vibebox made."""
    root = short_home / "proj"
    (root / paths.PROJECT_CACHE).mkdir(parents=True)
    return ProjectPaths.for_directory(root)
