"""Fakes of the supervisor's roles (``vibebox_core.supervisor.roles``) shared by tests, and a
real :class:`~vibebox_core.supervisor.server.Supervisor` serving on them (:func:`serving`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from vibebox_core import paths
from vibebox_core.errors import SSHError, VibeboxError
from vibebox_core.progress import ProgressCallback, ProgressEvent
from vibebox_core.streams import MemoryStream
from vibebox_core.supervisor.server import Supervisor

SID = "019bf290-dddd-7c23-ba1d-dce7e6d40693"


class RunningVM:
    """A :class:`~vibebox_core.supervisor.roles.VMControl` whose VM runs and stops cleanly."""

    def state(self) -> str:
        return "running"

    def start(self) -> None:
        pass

    def stop(self, timeout: float) -> bool:
        return True


class Forwards:
    """Port forwards held open: closed once, by the supervisor."""

    def __init__(self, problems: list[VibeboxError]) -> None:
        self.problems = problems
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Terminals:
    """The supervisor's SSH: shells for ``pty`` requests are MemoryStreams the test drives; a
    boot's wait sends ``steps`` and answers ``ipv4`` (or raises ``boot_error``); the forwards
    are :class:`Forwards` with ``problems``."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.shells: list[MemoryStream] = []
        self.sizes: list[tuple[int, int]] = []
        self.tokens: list[str | None] = []
        self.closed = False
        self.ipv4 = "10.0.0.5"
        self.steps = [ProgressEvent("waiting for SSH", "10.0.0.5", 1.5, False)]
        self.boot_error: VibeboxError | None = None
        self.waits: list[tuple[bool, str]] = []
        self.problems: list[VibeboxError] = []
        self.forwards: list[Forwards] = []

    async def wait_for_ssh(self, *, booted: bool, accel: str, progress: ProgressCallback) -> str:
        self.waits.append((booted, accel))
        for step in self.steps:
            progress(step)
        if self.boot_error is not None:
            raise self.boot_error
        return self.ipv4

    async def open_forwards(self) -> Forwards:
        if self.fail:
            raise SSHError(self.fail, hint="a hint")
        self.forwards.append(Forwards(self.problems))
        return self.forwards[-1]

    async def open_shell(
        self, cols: int, rows: int, command_token: str | None = None
    ) -> MemoryStream:
        if self.fail:
            raise SSHError(self.fail, hint="a hint")
        self.sizes.append((cols, rows))
        self.tokens.append(command_token)
        shell = MemoryStream()
        self.shells.append(shell)
        return shell

    async def close(self) -> None:
        self.closed = True
        for shell in self.shells:
            shell.feed_eof("Connection lost: closed by the supervisor")


class FakeVM:
    running = True

    def state(self) -> str:
        return "running" if self.running else "shut off"

    def start(self) -> None:
        self.running = True

    def stop(self, timeout: float) -> bool:
        self.running = False
        return True


async def serving(short_home: Path, terminals: Terminals | None) -> AsyncIterator[Supervisor]:
    root = short_home / "proj" / paths.PROJECT_CACHE
    root.mkdir(parents=True)
    sup = Supervisor(
        SID,
        paths.supervisor_socket_path(SID),
        root / "supervisor.lock",
        FakeVM(),
        grace=30.0,
        startup_grace=30.0,
        shutdown_timeout=1.0,
        terminals=terminals,
    )
    task = asyncio.create_task(sup.run())
    while sup.phase != "running":
        await asyncio.sleep(0.01)
    try:
        yield sup
    finally:
        sup.request_stop("test over")
        await asyncio.wait_for(task, 10)


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)
