"""Byte streams between the terminal widget and a pseudo-terminal.

The terminal widget in ``vibebox_tui`` talks to exactly one small interface,
:class:`ByteStream`: read bytes, write bytes, resize, close. Two implementations live here:
:class:`SSHPtyStream`, a PTY session on an asyncssh connection to a guest, and
:class:`MemoryStream`, an in-memory stand-in that tests and demos feed by hand. Bytes, never
text: the terminal decodes UTF-8 itself, incrementally, because a character may be split across
two reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import asyncssh

from vibebox_core import commandtoken
from vibebox_core.errors import SSHError

TERM_TYPE = "xterm-256color"
"""The terminal type announced to the guest; the widget emulates this terminal."""

READ_SIZE = 65536
"""Most bytes one :meth:`SSHPtyStream.read` returns; larger reads mean fewer, bigger batches."""

PTY_WINDOW = 256 * 1024
"""The SSH receive window of a PTY session (asyncssh's default is 2 MiB). During a flood the
guest sends as far ahead as the window lets it, and what it sent queues in front of the echo of
a key typed meanwhile -- up to twice the window (asyncssh buffers one window for the reader,
then stops reading and lets the channel fill another). A quarter of a MiB still covers the
round trip of a window adjust many times over: a ``cat`` is not slower for it."""

EXIT_WAIT = 5.0
"""Seconds to wait, after the output ended, for the session's exit status."""


@runtime_checkable
class ByteStream(Protocol):
    """A bidirectional byte pipe to a program running behind a PTY.

    ``read`` returns ``b""`` once at end of stream (the program exited or the connection
    closed); after that :attr:`end_reason` says why, in words a user understands.
    Streams to a guest shell also carry ``command_token: str``, the secret its vibebox
    commands must show (:mod:`vibebox_core.commandtoken`); see :func:`command_token`.
    A dropped connection may also raise :class:`~vibebox_core.errors.VibeboxError` from
    ``read`` or ``write``.
    """

    async def read(self) -> bytes:
        """Wait for output and return what is available (``b""`` at end of stream)."""
        ...

    async def write(self, data: bytes) -> None:
        """Send input (keys, pasted text, answers to terminal queries) to the program."""
        ...

    async def resize(self, cols: int, rows: int) -> None:
        """Tell the PTY its new size (the program gets SIGWINCH)."""
        ...

    async def close(self) -> None:
        """Close the stream; further reads return ``b""``."""
        ...


def command_token(stream: ByteStream) -> str:
    """The token ``stream``'s shell signs vibebox commands with ("" when it has none)."""
    token = getattr(stream, "command_token", "")
    return token if isinstance(token, str) else ""


def end_reason(stream: ByteStream) -> str:
    """Why ``stream`` ended, if it says so (streams may expose ``end_reason: str``)."""
    reason = getattr(stream, "end_reason", "")
    return reason if isinstance(reason, str) and reason else "Connection closed"


class MemoryStream:
    """An in-memory :class:`ByteStream` for tests and demos.

    Output for the terminal is queued with :meth:`feed` (and ended with :meth:`feed_eof`);
    everything the terminal writes collects in :attr:`written`; every resize is recorded in
    :attr:`resizes`. :meth:`wait_for` awaits a condition instead of sleeping.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._changed: asyncio.Condition | None = None
        self.written = bytearray()
        self.resizes: list[tuple[int, int]] = []
        self.closed = False
        self.eof = False
        self.end_reason = ""
        #: The token a test's fake shell signs its vibebox commands with.
        self.command_token = commandtoken.new_token()

    def feed(self, data: bytes) -> None:
        """Queue ``data`` as program output."""
        if data:
            self._queue.put_nowait(bytes(data))

    def feed_eof(self, reason: str = "Connection closed") -> None:
        """End the stream after the queued output, with ``reason`` as :attr:`end_reason`."""
        self.end_reason = reason
        self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        if self.eof or self.closed:
            return b""
        data = [await self._queue.get()]
        # Batch everything already queued into one read, as a busy PTY would.
        while data[-1] and not self._queue.empty():
            data.append(self._queue.get_nowait())
        if not data[-1]:
            self.eof = True
        return b"".join(data)

    async def write(self, data: bytes) -> None:
        self.written.extend(data)
        await self._notify()

    async def resize(self, cols: int, rows: int) -> None:
        self.resizes.append((cols, rows))
        await self._notify()

    async def close(self) -> None:
        self.closed = True
        self._queue.put_nowait(b"")
        await self._notify()

    async def _notify(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds after a write/resize/close (TimeoutError otherwise)."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        changed = self._changed

        async def waiter() -> None:
            async with changed:
                await changed.wait_for(condition)

        await asyncio.wait_for(waiter(), timeout)


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
        if self._closed:
            return
        try:
            self._process.stdin.write(data)
        except (asyncssh.Error, OSError, BrokenPipeError) as exc:
            raise SSHError(f"Could not send input to the guest: {exc}") from exc

    async def resize(self, cols: int, rows: int) -> None:
        if self._closed:
            return
        try:
            self._process.change_terminal_size(max(1, cols), max(1, rows))
        except (asyncssh.Error, OSError) as exc:
            raise SSHError(f"Could not resize the guest terminal: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._process.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._process.wait_closed()
        if not self.end_reason:
            self.end_reason = "Session closed"
