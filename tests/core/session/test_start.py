"""The dashboard's terminal, decided in the core: this process's SSH PTY or the supervisor's relay.

:func:`~vibebox_core.session.start.ensure_running` is replaced by a stand-in that returns a
session with or without its own SSH connection; the two streams are memory streams.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, cast

import pytest

from vibebox_core.config.schema import Config, NetworkConfig, PortForward
from vibebox_core.errors import NetworkPolicyError, SupervisorError
from vibebox_core.hypervisor.fake import FakeHypervisor
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


class _Attachment:
    """A supervisor connection whose supervisor waits for the guest's SSH (or is killed
    meanwhile, with ``lost``)."""

    def __init__(self, waits: list[tuple[bool, str]], lost: bool = False) -> None:
        self.waits = waits
        self.lost = lost
        self.closed = False

    async def wait_for_ssh(self, *, booted: bool, accel: str, progress: Any = None) -> str:
        self.waits.append((booted, accel))
        if self.lost:
            raise SupervisorError("the supervisor closed the connection (during 'ssh')")
        if progress is not None:
            progress(ProgressEvent("waiting for SSH", "10.0.0.9", 0.5))
        return "10.0.0.9"

    async def close(self) -> None:
        self.closed = True


async def test_a_dashboard_that_boots_the_vm_has_the_supervisor_wait_for_its_ssh(
    monkeypatch: pytest.MonkeyPatch, project: ProjectPaths
) -> None:
    """``connect=False`` (the dashboard): the boot's SSH is waited for by the supervisor, so
    this process holds no SSH connection (nor loads an SSH library); the address is on file."""
    waits: list[tuple[bool, str]] = []
    attachment = _Attachment(waits)

    async def booted(*args: Any) -> Any:
        return SimpleNamespace(accel="tcg", config=None)

    async def attach(*args: Any, **kwargs: Any) -> _Attachment:
        return attachment

    async def own_ssh(*args: Any) -> Any:
        raise AssertionError("the dashboard waited for SSH itself")

    monkeypatch.setattr(start, "probe", lambda *args: ("none", None))
    monkeypatch.setattr(start, "_start_unsupervised", booted)
    monkeypatch.setattr(start, "_attach", attach)
    monkeypatch.setattr(start, "wait_for_ssh", own_ssh)
    events: list[ProgressEvent] = []
    running = await start.ensure_running(
        project, events.append, hypervisor=FakeHypervisor(), connect=False
    )
    assert waits == [(True, "tcg")]
    assert running.connection is None and running.booted and running.ipv4 == "10.0.0.9"
    assert project.recorded_ipv4() == "10.0.0.9"
    assert [e.step for e in events][-2:] == ["waiting for SSH", "connected"]
    await running.close()
    assert attachment.closed


class _Forwarding:
    """A supervisor connection that forwards ports; one is taken on this machine."""

    def __init__(self) -> None:
        self.asked = 0

    async def forward_ports(self) -> list[NetworkPolicyError]:
        self.asked += 1
        return [NetworkPolicyError("127.0.0.1:8080 is already in use", hint="stop it")]

    async def close(self) -> None:
        return None


async def test_without_ssh_of_its_own_the_forwards_come_from_the_supervisor(
    project: ProjectPaths,
) -> None:
    entry = SessionIndex().ensure(project.root)
    ports = (PortForward(8080, 80),)
    config = dataclasses.replace(Config(path=project.config), network=NetworkConfig(ports=ports))
    supervisor = _Forwarding()
    running = RunningSession(project, entry, config, "10.0.0.2", None, cast(Any, supervisor))
    events: list[ProgressEvent] = []
    await running.open_forwards(events.append)
    assert supervisor.asked == 1 and running.connection is None
    assert [(e.step, e.detail) for e in events] == [
        ("port forwarding", "127.0.0.1:8080 is already in use (stop it)")
    ]


async def test_a_supervisor_killed_while_it_waits_for_the_boot_is_replaced_and_waits_again(
    monkeypatch: pytest.MonkeyPatch, project: ProjectPaths
) -> None:
    """Nothing is lost when the supervisor dies during the boot's wait: a new one is started
    (the VM runs on, so it is not booted again) and waits for the same boot's SSH."""
    waits: list[tuple[bool, str]] = []
    attachments = [_Attachment(waits, lost=True), _Attachment(waits)]
    starts: list[str] = []

    async def start_unsupervised(*args: Any) -> Any:
        starts.append("boot" if not starts else "supervisor only")
        return SimpleNamespace(accel="tcg", config=None) if len(starts) == 1 else None

    async def attach(*args: Any, **kwargs: Any) -> _Attachment:
        return attachments[len(starts) - 1]

    monkeypatch.setattr(start, "probe", lambda *args: ("stale", None))
    monkeypatch.setattr(start, "_start_unsupervised", start_unsupervised)
    monkeypatch.setattr(start, "_attach", attach)
    running = await start.ensure_running(project, hypervisor=FakeHypervisor(), connect=False)
    assert starts == ["boot", "supervisor only"]
    assert waits[0] == (True, "tcg") and waits[1][0] is True  # the second waits for the boot
    assert attachments[0].closed and not attachments[1].closed
    assert running.ipv4 == "10.0.0.9" and running.booted
    await running.close()
