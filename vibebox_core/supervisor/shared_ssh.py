"""The supervisor's one SSH connection to the guest, and what it opens on it.

:class:`SharedSSH` is the supervisor's :class:`~vibebox_core.supervisor.roles.Terminals`: the
shells that :mod:`vibebox_core.supervisor.relay` relays to every attached vibebox, and the
approved port forwards, run on one authenticated connection, made on the first request (or by
the wait for a boot's SSH, ``ssh`` requests) and made again after a drop, so attaching costs no
key exchange, and the dashboard loads no SSH library at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from vibebox_core.config.approval import enforced_config
from vibebox_core.errors import SSHError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.ssh import forward, wait
from vibebox_core.ssh.connect import connect
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.streams import ByteStream

if TYPE_CHECKING:
    import asyncssh


class SharedSSH:
    """The supervisor's one SSH connection to the guest: made on first use, again after a drop.

    Args:
        project: the session's project (keys, pinned host key, the guest's address on file).
        session_id: the session.
        hypervisor: where a booting VM's lease, state and console come from.
    """

    def __init__(self, project: ProjectPaths, session_id: str, hypervisor: Hypervisor) -> None:
        self.project = project
        self.session_id = session_id
        self.hypervisor = hypervisor
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection, connecting when there is none (or it dropped).

        Raises:
            SSHError: the guest cannot be reached (translated by :mod:`vibebox_core.ssh.connect`).
        """
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                ipv4 = self.project.recorded_ipv4()
                if ipv4 is None:
                    raise SSHError(
                        "the guest's address is not on file yet",
                        hint="the session is still starting; try again",
                    )
                self._conn = await connect(self.project, ipv4)
            return self._conn

    async def wait_for_ssh(self, *, booted: bool, accel: str, progress: ProgressCallback) -> str:
        """Wait for the lease, then for SSH with the pinned key, within the boot timeout
        (:func:`vibebox_core.ssh.wait.wait_for_ssh`); that connection is then the shared one.
        Shells asked for meanwhile wait for it. A connection already open (the shells of
        other vibebox run on it) is kept: its address is the answer."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                peer = self._conn.get_extra_info("peername")
                if peer:
                    return str(peer[0])
            clock = ProgressClock(progress)
            ipv4, self._conn = await wait.wait_for_ssh(
                self.project, self.session_id, self.hypervisor, clock, accel, booted
            )
        return ipv4

    async def open_shell(
        self, cols: int, rows: int, command_token: str | None = None
    ) -> ByteStream:
        """A login shell in a PTY on the shared connection (retried once on a fresh one).

        ``command_token`` is the client's secret for this terminal's vibebox commands.
        """
        token = command_token
        try:
            return await SSHPtyStream.open(await self.connection(), cols, rows, command_token=token)
        except SSHError:
            await self.close()  # a connection the guest dropped: try once more on a new one
            return await SSHPtyStream.open(await self.connection(), cols, rows, command_token=token)

    async def open_forwards(self) -> forward.PortForwards:
        """Forward the approved ``[network] ports`` on the shared connection: the approval in
        the session index and the approved snapshot decide, never ``vibebox.toml`` itself."""
        extra = await asyncio.to_thread(lambda: SessionIndex().get(self.session_id).extra)
        config = await asyncio.to_thread(enforced_config, self.project)
        ports = forward.approved_ports(extra, config.network.ports)
        if not ports:
            return forward.PortForwards()
        return await forward.open_port_forwards(await self.connection(), ports)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()
