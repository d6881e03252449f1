"""Fixtures for every test: each one gets its own empty VIBEBOX_HOME.

Kept minimal on purpose; area-specific fixtures live in the conftest.py of their folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
    monkeypatch.setenv("VIBEBOX_HOME", str(home))
    return home
