"""Fixtures for the CLI tests: a project directory with a hostile name."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.cli_run import HOSTILE_DIR, TEST_CONFIG


@pytest.fixture
def hostile_project(tmp_path: Path) -> Path:
    root = tmp_path / HOSTILE_DIR
    root.mkdir()
    (root / "vibebox.toml").write_text(TEST_CONFIG)
    return root
