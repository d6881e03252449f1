"""The network log reaches the inspector: CoreBackend reads what the proxy/DNS filter append."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.config import snapshot
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
    rows = backend.inspect(project.root).recent_network
    lines = [row.line for row in rows]
    assert len(lines) == 2
    assert [(row.host, row.verdict) for row in rows] == [
        ("pypi.org", "allowed"),
        ("evil.example", "blocked"),
    ]
    # The log's own line: verdict, source, host:port and the reason.
    assert lines[0].split(" ", 1)[1] == "allowed proxy pypi.org:443 (allowlist entry pypi.org)"
    assert lines[1].split(" ", 1)[1] == "blocked dns evil.example:53 (not in the allowlist (A))"


def test_the_core_backend_plans_and_steers_through_the_core(project: ProjectPaths) -> None:
    backend = CoreBackend(project.root)
    change = backend.plan_steer(project.root, "evil.example", "block")
    assert change.proposal() == "Block evil.example? adds blocklist entry evil.example"
    assert snapshot.read_snapshot(project) is None  # planning writes nothing
    result = backend.steer(project.root, [change.entry], "block")
    assert result.applies == "next start"  # no supervisor runs
    assert backend.inspect(project.root).network_entries == ("evil.example",)
    assert '"evil.example"' in project.config.read_text()
