"""CoreBackend's data side on real config/index files, and its tabs on a real supervisor (no VM
needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from core.supervisor.fakes import RunningVM, Terminals

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import PROJECT_CACHE, ProjectPaths
from vibebox_core.session import start
from vibebox_core.session.running import RunningSession
from vibebox_core.streams import MemoryStream
from vibebox_core.supervisor.client import SupervisorConnection
from vibebox_core.supervisor.server import Supervisor
from vibebox_tui.backend.core import CoreBackend
from vibebox_tui.backend.io_thread import IOThread, ThreadedStream


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIBEBOX_HOME", str(tmp_path / "home"))
    directory = tmp_path / "webshop"
    directory.mkdir()
    load_config(ProjectPaths.for_directory(directory))
    return directory


def test_inspect_without_a_session(project: Path) -> None:
    data = CoreBackend(project).inspect(project)
    assert data.session_id is None and data.vm_state == "missing"
    assert [(m.guest, m.read_only, m.default) for m in data.mounts] == [
        ("/home/vibecoder/webshop", False, True)
    ]
    assert data.network_mode == "blocklist" and data.cpus == 2 and data.memory_mb == 2048
    labels = dict(data.storage)
    assert labels["config"] == "vibebox.toml"
    assert ".vibebox/" in labels.values()


def test_config_edit_changes_the_fingerprint_and_the_data(project: Path) -> None:
    backend = CoreBackend(project)
    before = backend.fingerprint(project)
    config = project / "vibebox.toml"
    text = config.read_text().replace('mode = "blocklist"', 'mode = "allowlist"')
    text = text.replace("entries = []", 'entries = ["pypi.org"]', 1)
    config.write_text(text)
    assert backend.fingerprint(project) != before
    data = backend.inspect(project)
    # Shown apart until approved: the inspector shows what is enforced (issue 12).
    assert data.network_mode == "blocklist" and data.network_entries == ()
    assert "~ network mode: blocklist → allowlist" in data.unapproved
    edited = backend.fingerprint(project)
    backend.approve(project)
    assert backend.fingerprint(project) != edited
    data = backend.inspect(project)
    assert data.network_mode == "allowlist" and data.network_entries == ("pypi.org",)
    assert data.unapproved == ()


def test_a_broken_config_is_shown_not_raised(project: Path) -> None:
    (project / "vibebox.toml").write_text("[box]\ncpus = -1\n")
    data = CoreBackend(project).inspect(project)
    assert "vibebox.toml" in data.problem and "cpus" in data.problem


def test_list_sessions_never_raises_for_a_broken_session(project: Path) -> None:
    entry = SessionIndex().ensure(project)
    sessions = CoreBackend(project).list_sessions()
    assert [s.id for s in sessions] == [entry.id]
    assert sessions[0].directory == project.resolve()
    # No libvirt here (or no domain): some state with a reason, never an exception.
    assert sessions[0].state in ("shut off", "broken")


def test_console_tail_reads_the_last_lines(project: Path) -> None:
    paths = ProjectPaths.for_directory(project)
    paths.cache.mkdir(exist_ok=True)
    paths.console_log.write_text("".join(f"line {i}\r\n" for i in range(100)))
    assert CoreBackend(project).console_tail(project, 3) == ["line 97", "line 98", "line 99"]
    assert CoreBackend(project).console_tail(project / "nowhere") == []


async def test_threaded_stream_crosses_loops() -> None:
    io = IOThread()
    stream = MemoryStream()
    io.loop.call_soon_threadsafe(stream.feed, b"hello")
    threaded = ThreadedStream(io, stream)
    assert await threaded.read() == b"hello"
    await threaded.write(b"ls\r")
    await threaded.resize(90, 30)
    assert bytes(stream.written) == b"ls\r" and stream.resizes == [(90, 30)]
    await threaded.close()
    assert stream.closed and await threaded.read() == b""
    io.loop.call_soon_threadsafe(io.loop.stop)


def test_prestart_without_a_project_does_nothing() -> None:
    backend = CoreBackend(None)
    backend.prestart(80, 24)
    assert backend._early is None


async def test_tabs_come_from_the_supervisors_relay_and_count_once(
    short_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real backend's tabs: each a PTY of the session's supervisor, the count unchanged."""
    directory = short_home / "webshop"
    (directory / PROJECT_CACHE).mkdir(parents=True)
    entry = SessionIndex().ensure(directory)
    shells = Terminals()
    sup = Supervisor(
        entry.id,
        paths.supervisor_socket_path(entry.id),
        directory / PROJECT_CACHE / "supervisor.lock",
        RunningVM(),
        grace=30.0,
        terminals=shells,
    )
    task = asyncio.create_task(sup.run())
    while sup.phase != "running":
        await asyncio.sleep(0.01)
    attachment = await SupervisorConnection.open(sup.socket_path)
    await attachment.attach("vibebox dashboard")
    running = SimpleNamespace(
        session_id=entry.id,
        project=ProjectPaths.for_directory(directory),
        entry=entry,
        close=attachment.close,
    )
    first = MemoryStream()

    async def open_shell(*args: object, **kwargs: object) -> start.Shell:
        return start.Shell(cast(RunningSession, running), first, 1)

    monkeypatch.setattr(start, "open_shell", open_shell)
    try:
        attached = await CoreBackend(None).attach(directory, 80, 24, lambda event: None)
        tabs = [await attached.open_terminal(100, 30) for _ in range(2)]
        assert len(shells.shells) == 2 and sup.attached == 1
        await tabs[0].write(b"pwd\r")
        await shells.shells[0].wait_for(lambda: bytes(shells.shells[0].written) == b"pwd\r")
        await attached.close()  # every tab and the first terminal closed, detached once
        assert first.closed
        while sup.attached or not all(shell.closed for shell in shells.shells):
            await asyncio.sleep(0.01)
    finally:
        sup.request_stop("test over")
        await asyncio.wait_for(task, 10)
