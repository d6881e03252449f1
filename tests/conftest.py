"""Fixtures for every test: each one gets its own empty VIBEBOX_HOME; a short home and an
environment without VIBEBOX_ACCEL for the tests that ask.

Also an empty project directory (``project``). Area-specific fixtures live in the conftest.py
of their folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.config.schema import ACCEL_ENV
from vibebox_core.paths import ProjectPaths


@pytest.fixture(autouse=True)
def vibebox_home(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Point VIBEBOX_HOME at a fresh directory so no test touches ~/.vibebox.

    Tests on the e2e session-wide home (``e2e_home_shared``) keep that one.
    """
    if "e2e_home_shared" in request.fixturenames:
        return Path(os.environ["VIBEBOX_HOME"])
    home = tmp_path_factory.mktemp("vibebox-home")
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    return home


@pytest.fixture
def short_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A VIBEBOX_HOME with a short path under /tmp, removed afterwards: supervisor sockets live
    in it, and a UNIX socket path is limited to 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="vbx-home-", dir="/tmp"))
    monkeypatch.setenv(paths.HOME_ENV, str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def no_accel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIBEBOX_ACCEL from the caller (.ci/test exports ``tcg``): the config's accel counts."""
    monkeypatch.delenv(ACCEL_ENV, raising=False)


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    """An empty project directory ``proj`` (no vibebox.toml yet)."""
    root = tmp_path / "proj"
    root.mkdir()
    return ProjectPaths.for_directory(root)
