"""The network log reaches the inspector: CoreBackend reads what the proxy/DNS filter append."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.config.load import load_config
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network import log
from vibebox_core.paths import ProjectPaths
from vibebox_tui.backend.core import CoreBackend


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    monkeypatch.setenv("VIBEBOX_HOME", str(tmp_path / "home"))
    directory = tmp_path / "webshop"
    directory.mkdir()
    project = ProjectPaths.for_directory(directory)
    load_config(project)
    SessionIndex().ensure(directory)
    return project


def test_inspector_shows_the_latest_decisions_and_notices_new_ones(project: ProjectPaths) -> None:
    backend = CoreBackend(project.root)
    log.append(
        project.network_log,
        log.NetEvent("proxy", "pypi.org", 443, "allowed", "allowlist entry pypi.org"),
    )
    before = backend.fingerprint(project.root)
    log.append(
        project.network_log,
        log.NetEvent("dns", "evil.example", 53, "blocked", "not in the allowlist (A)"),
    )
    assert backend.fingerprint(project.root) != before  # the inspector refreshes on it
    lines = backend.inspect(project.root).recent_network
    assert len(lines) == 2
    # The log's own line: verdict, source, host:port and the reason.
    assert lines[0].split(" ", 1)[1] == "allowed proxy pypi.org:443 (allowlist entry pypi.org)"
    assert lines[1].split(" ", 1)[1] == "blocked dns evil.example:53 (not in the allowlist (A))"
