"""CoreBackend's data side on real config/index files (no VM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.config.load import load_config
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.streams import MemoryStream
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
