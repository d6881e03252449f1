"""Fixtures for the vibebox.toml tests: two directories to mount."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Two empty directories, ``data`` and ``data2``, side by side; returns ``data``."""
    for name in ("data", "data2"):
        (tmp_path / name).mkdir()
    return tmp_path / "data"
