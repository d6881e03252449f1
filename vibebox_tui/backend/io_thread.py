"""The dashboard's IO thread: an event loop of its own, and the stream that crosses from it.

``vibebox`` starts connecting before Textual is imported, so the early SSH connection (and the
terminal on it) belongs to the loop in :class:`IOThread`; :class:`ThreadedStream` hands its
output to the app's loop in batches. Both are about the app's threads, not about sessions:
what the session is and how its terminal is opened are the core's
(:func:`vibebox_core.session.start.open_shell`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from vibebox_core.streams import ByteStream, command_token

GIL_SWITCH = 0.001
"""Seconds a thread waits for the GIL at most while another one runs Python (CPython: 5 ms)."""

T = TypeVar("T")


class IOThread:
    """An event loop in a daemon thread that owns an early SSH connection.

    ``vibebox`` starts connecting before Textual is imported (the connect and the UI's start-up
    overlap); asyncssh objects belong to the loop that made them, so that connection lives
    here and the app talks to it through :meth:`call`.
    """

    def __init__(self) -> None:
        # This thread relays the terminal's bytes while the app's thread parses and paints a
        # flood: every key and its echo cross between them twice. Hand the GIL over within
        # 1 ms, not 5, so no crossing waits a whole switch interval.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="vibebox-io", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the IO loop and await its result from the caller's loop."""
        return await asyncio.wrap_future(self.submit(coro))


READ_AHEAD = 1 << 20
"""Bytes the IO thread reads ahead of the terminal before it waits for the terminal to catch up.
During a flood the terminal takes its output once a frame (``take_ready``, a tenth of a second
at most), so this holds a frame's worth of output at several MB/s; a key typed meanwhile has
the terminal take and parse what is here at once, so it is not output the echo waits behind
for longer than that parse."""


def _retrieve(future: concurrent.futures.Future[None]) -> None:
    """Take a write's error off its future (else it is logged as never retrieved)."""
    if not future.cancelled():
        future.exception()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ThreadedStream:
    """A :class:`~vibebox_core.streams.ByteStream` on the IO loop, usable from the app's loop.

    Output is read ahead on the IO loop (up to :data:`READ_AHEAD` bytes) and handed over in one
    piece: a flood arrives as hundreds of small relay frames a second, and a trip between the
    two loops (and the two threads' GIL hand-over) for each of them cost more than parsing it.
    A read the terminal gives up (its worker cancelled) loses nothing: the bytes stay here for
    the next read, and the IO side never abandons a frame half read.
    """

    def __init__(self, io: IOThread, stream: ByteStream) -> None:
        self._io = io
        self._stream = stream
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._size = 0
        self._ended = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._room = asyncio.Event()  # waited for on the IO loop, set from there too
        self._reader: concurrent.futures.Future[None] | None = None

    @property
    def end_reason(self) -> str:
        reason = getattr(self._stream, "end_reason", "")
        return reason if isinstance(reason, str) else ""

    @property
    def command_token(self) -> str:
        """The wrapped stream's token: without it every vibebox command would be ignored."""
        return command_token(self._stream)

    async def read(self) -> bytes:
        loop = asyncio.get_running_loop()
        if self._reader is None:
            self._reader = self._io.submit(self._read_ahead(loop))
        while True:
            with self._lock:
                data = self._take()
                if data is None:
                    if self._ended:
                        if self._error is not None:
                            raise self._error
                        return b""
                    waiter = self._waiter = loop.create_future()
            if data is not None:
                return data
            await waiter

    def take_ready(self) -> bytes:
        """What was read ahead and not yet taken, without waiting (``b""`` if nothing): the
        terminal collects a flood's output this way once a frame, instead of being woken
        for every read (:class:`~vibebox_core.streams.ReadsAhead`)."""
        if self._reader is None:
            return b""
        with self._lock:
            data = self._take()
        return data or b""

    def _take(self) -> bytes | None:
        """The chunks read ahead, joined (None if there are none); the lock is held."""
        if not self._chunks:
            return None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            self._io.loop.call_soon_threadsafe(self._room.set)
        return data

    async def _read_ahead(self, app_loop: asyncio.AbstractEventLoop) -> None:
        """On the IO loop: read until the end, waking the app's read when it waits."""
        while True:
            error: Exception | None = None
            try:
                data = await self._stream.read()
            except Exception as exc:  # the app's read raises it
                data, error = b"", exc
            with self._lock:
                if data:
                    self._chunks.append(data)
                    self._size += len(data)
                else:
                    self._ended, self._error = True, error
                waiter, self._waiter = self._waiter, None
                pause = self._paused = bool(data) and self._size >= READ_AHEAD
                if pause:
                    self._room.clear()
            if waiter is not None:
                try:
                    app_loop.call_soon_threadsafe(_wake, waiter)
                except RuntimeError:  # the app's loop is closed: the dashboard is exiting
                    return
            if not data:
                return
            if pause:
                await self._room.wait()

    async def write(self, data: bytes) -> None:
        await self._io.call(self._stream.write(data))

    def write_soon(self, data: bytes) -> None:
        """Write ``data`` on the IO loop without waiting, from any thread, in order with
        :meth:`write` (:class:`~vibebox_core.streams.WritesSoon`): the dashboard's input
        thread sends typed keys so. A failed write is not raised here: the connection is
        lost, and the read side ends with the reason."""
        self._io.submit(self._stream.write(data)).add_done_callback(_retrieve)

    async def resize(self, cols: int, rows: int) -> None:
        await self._io.call(self._stream.resize(cols, rows))

    async def close(self) -> None:
        await self._io.call(self._stream.close())
