"""The dashboard's terminal, decided in the core: this process's SSH PTY or the supervisor's relay.

:func:`~vibebox_core.session.start.ensure_running` is replaced by a stand-in that returns a
session with or without its own SSH connection; the two streams are memory streams.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from vibebox_core.config.schema import Config
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressEvent
from vibebox_core.session import start
from vibebox_core.session.running import RunningSession
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.streams import ByteStream, MemoryStream


class _Connection:
    """What :meth:`RunningSession.close` needs of an SSH connection."""

    closed = False

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


class _Streams:
    """The two ways to a shell, recording which one was taken."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def own(self, connection: Any, cols: int, rows: int) -> ByteStream:
        self.taken.append("own connection")
        return MemoryStream()

    async def relay(self, session: RunningSession, cols: int, rows: int) -> ByteStream:
        self.taken.append("supervisor relay")
        return MemoryStream()


def _stand_in(
    monkeypatch: pytest.MonkeyPatch, project: ProjectPaths, connection: _Connection | None
) -> _Streams:
    entry = SessionIndex().ensure(project.root)
    config = Config(path=project.config)
    running = RunningSession(project, entry, config, "10.0.0.2", cast(Any, connection), None)

    async def ensure_running(*args: Any, **kwargs: Any) -> RunningSession:
        assert kwargs["connect"] is False  # a running session's shell comes from its supervisor
        return running

    streams = _Streams()
    monkeypatch.setattr(start, "ensure_running", ensure_running)
    monkeypatch.setattr(SSHPtyStream, "open", streams.own)
    monkeypatch.setattr(start, "open_terminal", streams.relay)
    return streams


@pytest.mark.parametrize(
    ("connection", "taken"),
    [(_Connection(), ["own connection"]), (None, ["supervisor relay"])],
    ids=["booted here", "already running"],
)
async def test_open_shell_picks_the_way_to_the_shell(
    monkeypatch: pytest.MonkeyPatch,
    project: ProjectPaths,
    connection: _Connection | None,
    taken: list[str],
) -> None:
    streams = _stand_in(monkeypatch, project, connection)
    events: list[ProgressEvent] = []
    shell = await start.open_shell(project, 80, 24, events.append, client="test")
    assert streams.taken == taken
    assert shell.attached is None  # no supervisor answers here
    assert shell.forwards is not None
    await shell.forwards  # nothing to forward: no [network] ports approved
    await shell.discard()
    assert shell.running.connection is None and events == []
