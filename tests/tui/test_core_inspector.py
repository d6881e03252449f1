"""Pilot tests of the inspector on the real CoreBackend: the network log and the policy state.

Everything but the SSH terminal is real: the session index and the project in a temporary
``VIBEBOX_HOME``, lines the proxy and the DNS filter write with
:func:`~vibebox_core.network.log.append`, and a supervisor (in this event loop) answering
``status`` over its socket. VM states come from a
:class:`~vibebox_core.hypervisor.fake.FakeHypervisor`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import wait_for

from vibebox_core import paths
from vibebox_core.config.grants import canonical_policy
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import Config, NetworkConfig, NetworkMode
from vibebox_core.hypervisor.fake import FakeDomain, FakeHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.enforce import SessionNetwork
from vibebox_core.network.enforcer import NetworkEnforcer
from vibebox_core.network.follow import ApprovalFollower, policy_from_canonical
from vibebox_core.network.log import NetEvent, append
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback
from vibebox_core.streams import MemoryStream
from vibebox_core.supervisor.roles import HypervisorVM
from vibebox_core.supervisor.server import Supervisor
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.base import Attachment, SessionRow
from vibebox_tui.backend.core import CoreBackend
from vibebox_tui.widgets import Inspector

SIZE = (120, 60)


pytestmark = pytest.mark.usefixtures("fast_polls")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short path: the supervisor's UNIX socket lives under it (107 bytes at most).
    directory = Path(tempfile.mkdtemp(prefix="vbx-tui-", dir="/tmp"))
    monkeypatch.setenv(paths.HOME_ENV, str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class TerminalStubBackend(CoreBackend):
    """CoreBackend with the SSH terminal replaced by a memory stream (no VM to log into)."""

    async def attach(
        self, directory: Path, cols: int, rows: int, progress: ProgressCallback
    ) -> Attachment:
        entry = SessionIndex().find_by_directory(directory)
        assert entry is not None
        status = SessionRow(entry.id, entry.directory, "running", 1, entry.last_active)
        return Attachment(status, MemoryStream())


@pytest.fixture
def session(home: Path) -> tuple[ProjectPaths, str, FakeHypervisor]:
    """A project with a running VM (in the fake hypervisor) and its guest's address."""
    project = ProjectPaths.for_directory(home / "webshop")
    project.root.mkdir()
    load_config(project)
    project.cache.mkdir(exist_ok=True)
    entry = SessionIndex().ensure(project.root)
    hypervisor = FakeHypervisor()
    hypervisor.domains[entry.id] = FakeDomain(
        entry.id, "vibebox-webshop", "<domain/>", None, None, None, state="running"
    )
    project.ipv4.write_text("192.168.122.57\n")
    return project, entry.id, hypervisor


async def open_inspector(pilot: Pilot[int], app: VibeboxApp) -> Inspector:
    await wait_for(pilot, lambda: app.attachment is not None)
    await pilot.press("ctrl+backslash", "i")
    inspector = app.query_one(Inspector)
    await wait_for(pilot, lambda: inspector.data is not None)
    return inspector


def event(source: Any, host: str, port: int, verdict: Any, reason: str, second: int) -> Any:
    return NetEvent(source, host, port, verdict, reason, f"2026-11-27T10:15:{second:02}Z")


async def test_inspector_shows_the_network_log_live(
    session: tuple[ProjectPaths, str, FakeHypervisor],
) -> None:
    project, _, hypervisor = session
    log = project.network_log
    append(log, event("proxy", "pypi.org", 443, "allowed", "listed: pypi.org", 1))
    append(log, event("proxy", "evil.example", 443, "blocked", "not listed", 2))
    append(log, event("dns", "github.com", 53, "allowed", "listed: github.com", 3))
    append(log, event("dns", "tracker.example", 53, "blocked", "not listed (A)", 4))
    app = VibeboxApp(TerminalStubBackend(project.root, hypervisor=hypervisor), live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        inspector = await open_inspector(pilot, app)
        await wait_for(pilot, lambda: "tracker.example" in inspector.text)
        text = inspector.text
        for line in (
            "10:15:01 allowed proxy pypi.org:443 (listed: pypi.org)",
            "10:15:02 blocked proxy evil.example:443 (not listed)",
            "10:15:03 allowed dns github.com:53 (listed: github.com)",
            "10:15:04 blocked dns tracker.example:53 (not listed (A))",
        ):
            assert line in text
        assert "192.168.122.57" in text and "running" in text
        # A decision logged while the dashboard runs shows up without any key press.
        append(log, event("proxy", "cdn.evil.example", 80, "blocked", "not listed", 5))
        await wait_for(
            pilot, lambda: "10:15:05 blocked proxy cdn.evil.example:80" in inspector.text
        )


def canon(mode: NetworkMode, *entries: str) -> dict[str, Any]:
    """An approved canonical policy, as the session index keeps it."""
    return canonical_policy(Config(Path("vibebox.toml"), network=NetworkConfig(mode, entries)))


async def test_inspector_says_how_an_approved_change_reached_the_running_session(
    session: tuple[ProjectPaths, str, FakeHypervisor],
) -> None:
    project, session_id, hypervisor = session
    start = canon("allowlist", "pypi.org")
    enforcer = NetworkEnforcer(policy_from_canonical(start), project.network_log, "127.0.0.1")
    network = SessionNetwork(enforcer, ApprovalFollower(enforcer, start))

    async def services() -> SessionNetwork:
        return network

    supervisor = Supervisor(
        session_id,
        paths.supervisor_socket_path(session_id),
        project.supervisor_lock,
        HypervisorVM(hypervisor, session_id),
        grace=60.0,
        services=services,
    )
    app = VibeboxApp(TerminalStubBackend(project.root, hypervisor=hypervisor), live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        served = asyncio.create_task(supervisor.run())
        try:
            inspector = await open_inspector(pilot, app)
            await wait_for(pilot, lambda: "approved policy applied live" in inspector.text)
            # A change of mode needs the VM restarted: the inspector says so, and what.
            network.follower.update(canon("blocklist", "evil.example"))
            await wait_for(pilot, lambda: "approved change applies at next start" in inspector.text)
            assert "~ network mode: allowlist → blocklist" in inspector.text
            assert "applied live" not in inspector.text
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(served, 5)
        # No supervisor: nothing is claimed about the policy.
        await wait_for(pilot, lambda: "next start" not in inspector.text)
