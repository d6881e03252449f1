"""Fixtures of the supervisor tests: a short VIBEBOX_HOME and a project in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.paths import ProjectPaths


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short path: UNIX socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="vbx-sup-", dir="/tmp"))
    monkeypatch.setenv(paths.HOME_ENV, str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def project(home: Path) -> ProjectPaths:
    root = home / "proj"
    (root / paths.PROJECT_CACHE).mkdir(parents=True)
    return ProjectPaths.for_directory(root)
