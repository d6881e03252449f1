"""The supervisor's one SSH connection to the guest, and the login shells it opens on it.

:class:`SharedSSH` is the supervisor's :class:`~vibebox_core.supervisor.roles.Terminals`: the
shells that :mod:`vibebox_core.supervisor.relay` relays to every attached vibebox run on one
authenticated connection, made on the first request and made again after a drop, so attaching
costs no key exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from vibebox_core.errors import SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh.connect import connect
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.streams import ByteStream

if TYPE_CHECKING:
    import asyncssh


class SharedSSH:
    """The supervisor's one SSH connection to the guest: made on first use, again after a drop.

    Args:
        project: the session's project (keys, pinned host key, the guest's address on file).
    """

    def __init__(self, project: ProjectPaths) -> None:
        self.project = project
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

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()
