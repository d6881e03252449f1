"""Byte streams to a program behind a PTY: the ByteStream protocol and MemoryStream.

The terminal widget in ``vibebox_tui`` talks to exactly one small interface,
:class:`ByteStream`: read bytes, write bytes, resize, close. The implementations are
:class:`~vibebox_core.ssh.pty.SSHPtyStream` (a PTY session on an asyncssh connection to a
guest), :class:`~vibebox_core.supervisor.relay.RelayPtyStream` (a shell relayed by the
session's supervisor) and :class:`MemoryStream` here, an in-memory stand-in that tests and
demos feed by hand. Bytes, never text: the terminal decodes UTF-8 itself, incrementally,
because a character may be split across two reads. This module imports no asyncssh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from vibebox_core import commandtoken


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


@runtime_checkable
class ReadsAhead(Protocol):
    """A :class:`ByteStream` that keeps reading while nobody awaits :meth:`ByteStream.read`
    (into a buffer of its own), and hands over what it has without waiting."""

    def take_ready(self) -> bytes:
        """The output read so far and not yet taken (``b""`` if none; never waits)."""
        ...


@runtime_checkable
class WritesSoon(Protocol):
    """A :class:`ByteStream` that can be written from any thread without waiting (the write
    is queued behind the ones already asked for, in order)."""

    def write_soon(self, data: bytes) -> None:
        """Queue ``data`` to be written; never waits, callable from any thread."""
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
