"""Fixtures of the core tests: an empty project directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.paths import ProjectPaths


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    """An empty project directory ``proj`` (no vibebox.toml yet)."""
    root = tmp_path / "proj"
    root.mkdir()
    return ProjectPaths.for_directory(root)
