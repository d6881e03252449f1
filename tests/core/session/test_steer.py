"""Steering the policy from the host (session.steer): the plan, the two writes, the live reload."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from core.supervisor.fakes import RunningVM

from vibebox_core import paths
from vibebox_core.config.approval import review
from vibebox_core.config.load import load_config
from vibebox_core.config.snapshot import (
    default_values,
    read_approved,
    read_snapshot,
    write_snapshot,
)
from vibebox_core.errors import ConfigError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.enforce import start_session_network
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import steer
from vibebox_core.session.approve import sync_index
from vibebox_core.session.steer import plan_steer
from vibebox_core.supervisor.server import Supervisor


def values(mode: str, *entries: str) -> dict[str, Any]:
    base = default_values(ProjectPaths.for_directory("/tmp"))
    base["network"] = {"mode": mode, "entries": sorted(entries), "ports": []}
    return base


def entries_of(planned: steer.SteerPlan) -> list[str]:
    return list(planned.values["network"]["entries"])


def test_allowing_in_an_allowlist_adds_the_normalised_entry_once() -> None:
    planned = plan_steer(values("allowlist", "pypi.org"), ["API.Example.com."], "allow")
    assert entries_of(planned) == ["api.example.com", "pypi.org"]
    (change,) = planned.changes
    assert change.describe() == "added allowlist entry api.example.com"
    assert change.proposal() == "Allow api.example.com? adds allowlist entry api.example.com"
    again = plan_steer(planned.values, ["x.api.example.com"], "allow")
    assert not again.changed and entries_of(again) == entries_of(planned)
    assert again.changes[0].describe() == "already allowed (by allowlist entry api.example.com)"


def test_allowing_in_a_blocklist_removes_every_entry_that_covers_the_host() -> None:
    start = values("blocklist", "example.com", "api.example.com", "other.test")
    planned = plan_steer(start, ["api.example.com"], "allow")
    assert entries_of(planned) == ["other.test"]
    (change,) = planned.changes
    assert change.removed == ("api.example.com", "example.com")
    # The user is told that removing the parent domain unblocks all of it.
    assert change.proposal() == (
        "Allow api.example.com? removes blocklist entries api.example.com, example.com "
        "(unblocks api.example.com and all its subdomains, example.com and all its subdomains)"
    )
    assert plan_steer(start, ["fine.test"], "allow").changes[0].describe() == (
        "already allowed (no blocklist entry covers it)"
    )


def test_blocking_adds_to_a_blocklist_and_removes_from_an_allowlist() -> None:
    blocked = plan_steer(values("blocklist"), ["*.evil.test"], "block")
    assert entries_of(blocked) == ["evil.test"]
    assert blocked.changes[0].describe() == "added blocklist entry evil.test"
    allowlist = values("allowlist", "github.com", "pypi.org")
    narrowed = plan_steer(allowlist, ["api.github.com"], "block")
    assert entries_of(narrowed) == ["pypi.org"]
    assert narrowed.changes[0].describe() == (
        "removed allowlist entry github.com (blocks github.com and all its subdomains)"
    )
    assert plan_steer(values("allowlist"), ["x.test"], "block").changes[0].describe() == (
        "already blocked (not in the allowlist)"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.1", "[::1]", "::1"])
@pytest.mark.parametrize("mode", ["allowlist", "blocklist"])
def test_ip_addresses_are_refused(host: str, mode: str) -> None:
    with pytest.raises(ConfigError, match="IP address"):
        plan_steer(values(mode), [host], "allow")


@pytest.mark.parametrize("host", ["https://x.test", "x.test/path", "a*b.test", "", "-x.test"])
def test_what_is_not_a_domain_name_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="not a domain name"):
        plan_steer(values("blocklist"), [host], "block")


COMMENTED = """\
# my project
[box]
cpus = 2  # small

[network]
mode = "allowlist"   # careful
entries = [
  "pypi.org",  # packages
]
ports = []
"""


@pytest.fixture
def approved(project: ProjectPaths) -> ProjectPaths:
    """A project whose commented file (an allowlist of pypi.org) is approved."""
    project.config.write_text(COMMENTED)
    write_snapshot(project, review(project).file_values or {})
    return project


def test_steer_writes_the_file_with_its_comments_and_the_snapshot(approved: ProjectPaths) -> None:
    result = steer.steer(approved, ["api.example.com"], "allow")
    assert result.applies == "next start"  # no session runs
    assert result.lines() == [
        "api.example.com: added allowlist entry api.example.com; applies at the next start"
    ]
    text = approved.config.read_text()
    assert "# my project" in text and "# careful" in text and "# packages" in text
    assert load_config(approved).network.entries == ("pypi.org", "api.example.com")
    snapshot = read_snapshot(approved)
    assert snapshot is not None
    assert snapshot.values["network"]["entries"] == ["api.example.com", "pypi.org"]
    assert review(approved).status == "approved"


def test_a_guest_edit_in_the_file_stays_pending(approved: ProjectPaths) -> None:
    guest = COMMENTED.replace('"pypi.org",  # packages', '"pypi.org",  # packages\n  "evil.test",')
    approved.config.write_text(guest)
    steer.steer(approved, ["api.example.com"], "allow")
    snapshot = read_snapshot(approved)
    assert snapshot is not None
    assert snapshot.values["network"]["entries"] == ["api.example.com", "pypi.org"]
    assert "evil.test" in approved.config.read_text()
    assert review(approved).diff == ("+ network entry: evil.test",)


def test_before_any_approval_the_defaults_are_the_base(project: ProjectPaths) -> None:
    project.config.write_text(COMMENTED.replace('mode = "allowlist"', 'mode = "blocklist"'))
    steer.steer(project, ["evil.test"], "block")
    snapshot = read_snapshot(project)
    assert snapshot is not None
    # The defaults (a blocklist) plus this change; the file's pypi.org was never approved.
    network = snapshot.values["network"]
    assert network == {"mode": "blocklist", "entries": ["evil.test"], "ports": []}


def test_a_refused_file_is_said_and_nothing_is_written(approved: ProjectPaths) -> None:
    broken = COMMENTED.replace("cpus = 2", "cpus = 0")
    approved.config.write_text(broken)
    before = read_snapshot(approved)
    with pytest.raises(ConfigError, match="refused, so nothing was changed"):
        steer.steer(approved, ["api.example.com"], "allow")
    assert approved.config.read_text() == broken
    assert read_snapshot(approved) == before


async def test_a_running_supervisor_applies_the_change_at_once(approved: ProjectPaths) -> None:
    entry = SessionIndex().ensure(approved.root)
    steer.steer(approved, ["seed.test"], "allow")  # copies the approval into the index

    def read() -> dict[str, Any] | None:
        return read_approved(SessionIndex().get(entry.id).extra)

    network = await start_session_network(
        approved.network_log, "127.0.0.0/24", read, interval=3600.0, proxy_port=0, dns_port=0
    )

    async def services() -> Any:
        return network

    supervisor = Supervisor(
        entry.id,
        paths.supervisor_socket_path(entry.id),
        approved.supervisor_lock,
        RunningVM(),
        grace=60.0,
        services=services,
    )
    served = asyncio.create_task(supervisor.run())
    try:
        while supervisor._services is None:  # the services are up once run() got them
            await asyncio.sleep(0.01)
        assert not network.enforcer.policy.decide("api.example.com").allowed
        result = await asyncio.to_thread(steer.steer, approved, ["api.example.com"], "allow")
        # Applied before steer returned, not at the next poll (an hour away here).
        assert result.applies == "live"
        assert network.enforcer.policy.decide("api.example.com").allowed
        assert result.lines()[0].endswith("; applied to the running session")
        # A mode change approved since waits for the next start, and the entries with it.
        changed = steer.approved_values(approved)
        changed["network"] = {**changed["network"], "mode": "blocklist", "entries": []}
        sync_index(approved, write_snapshot(approved, changed).values, entry.id)
        later = await asyncio.to_thread(steer.steer, approved, ["evil.test"], "block")
        assert later.applies == "next start"
        line = "evil.test: added blocklist entry evil.test; applies at the next start"
        assert later.lines() == [line]
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(served, 5)
