"""A running session this process is attached to: its SSH connection, forwards and detach.

:func:`vibebox_core.session.start.ensure_running` returns one; closing it closes this process's
SSH connection and port forwards and detaches from the supervisor (the VM stays up for the
grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vibebox_core import paths
from vibebox_core.config.schema import Config
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.session import boot
from vibebox_core.ssh import forward
from vibebox_core.ssh.connect import connect
from vibebox_core.supervisor import client

if TYPE_CHECKING:
    import asyncssh


@dataclass
class RunningSession:
    """A running session this process is attached to, with an open SSH connection.

    Close it (or use it as ``async with``) to detach; the VM stays up for the grace period.

    Attributes:
        project: the project's paths.
        entry: the session's index entry.
        config: the project's config as loaded at start.
        ipv4: the guest's address.
        connection: asyncssh connection as ``vibecoder`` (client key, pinned host key); None
            when :func:`~vibebox_core.session.start.ensure_running` was asked not to connect
            and the session already ran (terminals then come from the supervisor,
            :func:`~vibebox_core.session.start.open_terminal`).
        attachment: the supervisor connection that counts this process as attached.
        booted: True when this call started the VM (a cold start).
    """

    project: ProjectPaths
    entry: SessionEntry
    config: Config
    ipv4: str
    connection: asyncssh.SSHClientConnection | None
    attachment: client.SupervisorConnection | None
    booted: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: ``[network] ports`` forwarded while attached; ``forwards.problems`` says which not.
    forwards: forward.PortForwards | None = None

    @property
    def session_id(self) -> str:
        return self.entry.id

    @property
    def guest_project_path(self) -> str:
        """Where the project is mounted in the guest (the shell's starting directory)."""
        return boot.guest_json(self.config, self.project)["project_guest_path"]  # type: ignore[no-any-return]

    async def attached_count(self) -> int | None:
        """The supervisor's count, or None when it cannot be asked."""
        answer = await asyncio.to_thread(
            client.status_sync, paths.supervisor_socket_path(self.session_id)
        )
        return int(answer["attached"]) if answer else None

    async def ssh(self) -> asyncssh.SSHClientConnection:
        """This process's own SSH connection to the guest, made now if there is none.

        Raises:
            SSHError: the guest cannot be reached.
        """
        if self.connection is None:
            self.connection = await connect(self.project, self.ipv4)
        return self.connection

    async def open_forwards(self, progress: ProgressCallback | None = None) -> None:
        """Forward the approved ``[network] ports`` (host loopback -> guest) while attached.

        Without an SSH connection of this process's own, the supervisor forwards them on its
        connection, while this process stays attached (and shares them with every other one
        that asked); else they ride this process's connection. Each port that cannot be
        forwarded is reported to ``progress`` (step ``port forwarding``).
        """
        extra = await asyncio.to_thread(lambda: SessionIndex().get(self.session_id).extra)
        ports = forward.approved_ports(extra, self.config.network.ports)
        if not ports:
            return
        problems: list[NetworkPolicyError]
        if self.connection is None and self.attachment is not None:
            problems = await self.attachment.forward_ports()
        else:
            self.forwards = await forward.open_port_forwards(await self.ssh(), ports)
            problems = self.forwards.problems
        clock = ProgressClock(progress)
        for problem in problems:
            clock("port forwarding", f"{problem.message} ({problem.hint})", done=True)

    async def close(self) -> None:
        """Close SSH and detach from the supervisor (idempotent)."""
        if self.forwards is not None:
            self.forwards.close()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()
        if self.attachment is not None:
            await self.attachment.close()
            self.attachment = None

    async def __aenter__(self) -> RunningSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
