"""The asyncssh PTY stream: a login shell (or command) in a PTY on the guest, as a ByteStream.

:class:`SSHPtyStream` is the :class:`~vibebox_core.streams.ByteStream` the terminal widget
reads when it talks to the guest over its own SSH connection (the supervisor opens the same
stream for the shells it relays). Bytes, never text: the terminal decodes UTF-8 itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from vibebox_core import commandtoken
from vibebox_core.errors import SSHError

if TYPE_CHECKING:
    import asyncssh

TERM_TYPE = "xterm-256color"
"""The terminal type announced to the guest; the widget emulates this terminal."""

READ_SIZE = 65536
"""Most bytes one :meth:`SSHPtyStream.read` returns; larger reads mean fewer, bigger batches."""

PTY_WINDOW = 256 * 1024
"""The SSH receive window of a PTY session (asyncssh's default is 2 MiB). During a flood the
guest sends as far ahead as the window lets it, and what it sent queues in front of the echo of
a key typed meanwhile (and of the prompt after a ``ctrl+c``) when the terminal takes output
slower than the guest makes it: up to twice the window (asyncssh buffers one window for the
reader, then stops reading and lets the channel fill another). A small window costs the guest,
though: at 64 KiB its sshd waits for a window adjust every 32 KiB, and a 4 MB ``cat`` took the
guest (QEMU) about 0.2-0.4 CPU-seconds more than at 2 MiB, on a machine where the guest and the
terminal share two cores. Side by side in one run of ``tests/bench/bench_flood.py`` (two
dashboards, one window each): 64 KiB against 2 MiB, the ``cat`` 1.21x against 1.15x tmux +
OpenSSH, the echo during a flood p50 45 against 47 ms; 256 KiB against 2 MiB, 1.12x against
1.08x, p50 46 against 50 ms. So 256 KiB: most of the big window's speed, an eighth of its
queue."""

EXIT_WAIT = 5.0
"""Seconds to wait, after the output ended, for the session's exit status."""


class SSHPtyStream:
    """A login shell (or command) in a PTY over an asyncssh client connection.

    Open it with :meth:`open`. The PTY announces ``xterm-256color``; data flows as bytes
    (``encoding=None``). At end of stream :attr:`exit_status` / :attr:`exit_signal` and
    :attr:`end_reason` tell what happened.
    """

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], command_token: str = "") -> None:
        self._process = process
        self.command_token = command_token
        self._closed = False
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.end_reason = ""

    @classmethod
    async def open(
        cls,
        conn: asyncssh.SSHClientConnection,
        cols: int,
        rows: int,
        *,
        command: str | None = None,
        env: dict[str, str] | None = None,
        command_token: str | None = None,
    ) -> SSHPtyStream:
        """Start a PTY session on ``conn`` of ``cols`` x ``rows``.

        Args:
            conn: an open asyncssh client connection to the guest.
            cols: terminal width in cells.
            rows: terminal height in cells.
            command: run this instead of the login shell.
            env: extra environment for the session (the server may refuse some names).
            command_token: the secret the shell signs vibebox commands with (a fresh one
                when None); sent as :data:`~vibebox_core.commandtoken.ENV_NAME`.

        Raises:
            SSHError: the server refused the session or the connection is gone.
        """
        import asyncssh

        token = command_token if commandtoken.is_token(command_token) else None
        token = token or commandtoken.new_token()
        try:
            process: asyncssh.SSHClientProcess[bytes] = await conn.create_process(
                command,
                term_type=TERM_TYPE,
                term_size=(max(1, cols), max(1, rows)),
                encoding=None,
                window=PTY_WINDOW,
                env={**(env or {}), commandtoken.ENV_NAME: token},
            )
        except (asyncssh.Error, OSError) as exc:
            raise SSHError(
                f"Could not open a terminal session on the guest: {exc}",
                hint="Check that the VM is running (`vibebox list`) and try again.",
            ) from exc
        return cls(process, token)

    async def read(self) -> bytes:
        import asyncssh

        if self._closed:
            return b""
        try:
            data = await self._process.stdout.read(READ_SIZE)
        except (asyncssh.Error, OSError) as exc:
            self._note_end(f"Connection lost: {exc}")
            raise SSHError(f"The SSH connection to the guest was lost: {exc}") from exc
        if not data:
            # The output's end can arrive before the exit status (both are SSH messages of
            # their own): wait for the channel to close so the status is known.
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(self._process.wait_closed(), EXIT_WAIT)
            self._note_end()
        return data

    def _note_end(self, reason: str = "") -> None:
        self.exit_status = self._process.exit_status
        signal = self._process.exit_signal
        self.exit_signal = signal[0] if signal else None
        if reason:
            self.end_reason = reason
        elif self.exit_signal:
            self.end_reason = f"Session ended by signal {self.exit_signal}"
        elif self.exit_status is not None:
            self.end_reason = f"Session exited with status {self.exit_status}"
        else:
            self.end_reason = "Connection lost (the guest did not report an exit status)"

    async def write(self, data: bytes) -> None:
        import asyncssh

        if self._closed:
            return
        try:
            self._process.stdin.write(data)
        except (asyncssh.Error, OSError, BrokenPipeError) as exc:
            raise SSHError(f"Could not send input to the guest: {exc}") from exc

    async def resize(self, cols: int, rows: int) -> None:
        import asyncssh

        if self._closed:
            return
        try:
            self._process.change_terminal_size(max(1, cols), max(1, rows))
        except (asyncssh.Error, OSError) as exc:
            raise SSHError(f"Could not resize the guest terminal: {exc}") from exc

    async def close(self) -> None:
        import asyncssh

        if self._closed:
            return
        self._closed = True
        self._process.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._process.wait_closed()
        if not self.end_reason:
            self.end_reason = "Session closed"
