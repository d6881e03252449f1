"""Terminals relayed by the supervisor: PTY sessions framed over its UNIX socket, both sides.

Attaching to a running session used to mean a new SSH connection from every vibebox: a key
exchange and a login, which cost about 0.4 s against a guest under TCG before the shell even
started. The session's supervisor keeps one authenticated connection to the guest
(:class:`vibebox_core.supervisor.shared_ssh.SharedSSH`) and opens a PTY session on it for
whoever asks on its UNIX socket, like OpenSSH's ``ControlMaster``. The socket is 0600 in the
user's runtime directory, so only the user who owns the session can ask. This module holds the
framing, the client's stream (:class:`RelayPtyStream`) and the supervisor's side (:func:`serve`).

Protocol, on a supervisor connection:

1. The client sends one JSON line ``{"op": "pty", "cols": C, "rows": R, "token": T}``; ``T``
   is the fresh secret the guest shell signs vibebox commands with in this terminal
   (:mod:`vibebox_core.commandtoken`; only the user can reach the socket).
2. The supervisor answers one JSON line: ``{"ok": true}`` once the shell runs, or
   ``{"ok": false, "error": "...", "hint": "..."}``.
3. From then on both sides send frames: one kind byte, a 4-byte big-endian length, the
   payload. Client to supervisor: ``d`` keyboard input, ``r`` resize (two big-endian
   16-bit numbers: cols, rows). Supervisor to client: ``d`` output, ``x`` the end (JSON
   ``{"status": int | null, "signal": str | null, "reason": str}``), sent once, last.
4. Either side closing the socket ends the PTY session (the shell gets SIGHUP).

This module imports no asyncssh (the shells it relays are any
:class:`~vibebox_core.streams.ByteStream`), so a vibebox that attaches through the supervisor
need not load it for the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from vibebox_core import commandtoken
from vibebox_core.errors import SSHError, SupervisorError, VibeboxError
from vibebox_core.streams import ByteStream
from vibebox_core.supervisor.client import open_socket

OP = "pty"
DATA, RESIZE, END = b"d", b"r", b"x"
_HEADER = struct.Struct("!cI")
_SIZE = struct.Struct("!HH")
#: Largest frame accepted (a read of the PTY is at most 64 KiB; this leaves room).
MAX_FRAME = 1 << 20
#: Most bytes of terminal data in one frame (a larger write is split).
DATA_FRAME = 64 * 1024
#: Seconds to wait for the supervisor's answer to ``pty`` (it may have to connect first).
OPEN_TIMEOUT = 20.0
#: Most output the supervisor queues for one client, in its own buffer and in the socket's
#: (bytes each). Whatever waits there is output a key's echo queues behind while the client's
#: terminal is busy with a flood; the client reads ahead on its side anyway, so a deeper queue
#: here would not make a flood faster, only every echo later (a UNIX socket's default send
#: buffer alone holds about 200 KB).
OUTPUT_QUEUE = 32 * 1024
#: Most bytes the client takes from its socket at once (whole frames are handed on).
READ_CHUNK = 256 * 1024


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame: kind byte, big-endian length, payload."""
    return _HEADER.pack(kind, len(payload)) + payload


def data_frames(data: bytes) -> bytes:
    """``data`` as ``d`` frames of at most :data:`DATA_FRAME` bytes each: a paste or a read of
    any size crosses the relay (one frame may not exceed :data:`MAX_FRAME`)."""
    view = memoryview(data)
    return b"".join(
        frame(DATA, bytes(view[start : start + DATA_FRAME]))
        for start in range(0, len(view), DATA_FRAME)
    )


def resize_frame(cols: int, rows: int) -> bytes:
    """A ``r`` frame for ``cols`` x ``rows`` (clamped to 1..65535)."""
    return frame(RESIZE, _SIZE.pack(_clamp(cols), _clamp(rows)))


def parse_size(payload: bytes) -> tuple[int, int]:
    """``(cols, rows)`` from a resize payload."""
    if len(payload) != _SIZE.size:
        raise FrameError("a resize frame holds two 16-bit numbers")
    cols, rows = _SIZE.unpack(payload)
    return max(1, cols), max(1, rows)


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next ``(kind, payload)``, or None at a clean end of stream (between frames).

    Raises:
        FrameError: a frame cut short or larger than :data:`MAX_FRAME`.
    """
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame header") from exc
        return None
    kind, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes is larger than {MAX_FRAME}")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("the stream ended inside a frame") from exc
    return kind, payload


def _clamp(value: int) -> int:
    return min(0xFFFF, max(1, int(value)))


def _send_line(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    writer.write((json.dumps(answer) + "\n").encode())


# --------------------------------------------------------------------------- the client side


class RelayPtyStream:
    """A :class:`~vibebox_core.streams.ByteStream`: a login shell opened by the session's
    supervisor.

    Open it with :meth:`open`. At end of stream :attr:`exit_status`, :attr:`exit_signal` and
    :attr:`end_reason` say what happened, as for :class:`~vibebox_core.ssh.pty.SSHPtyStream`.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command_token: str = ""
    ) -> None:
        self._reader = reader
        self.command_token = command_token
        self._writer = writer
        self._ended = False
        self._buffer = bytearray()  # received, not yet a whole frame
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.end_reason = ""

    @classmethod
    async def open(
        cls, socket_path: Path, cols: int, rows: int, *, timeout: float = OPEN_TIMEOUT
    ) -> RelayPtyStream:
        """Ask the supervisor listening on ``socket_path`` for a login shell of ``cols`` x ``rows``.

        Raises:
            SupervisorError: nobody answers, or the answer is not this protocol.
            SSHError: the supervisor could not open the shell on the guest (its message).
        """
        token = commandtoken.new_token()
        reader, writer = await open_socket(socket_path, timeout=timeout)
        try:
            request = {"op": OP, "cols": _clamp(cols), "rows": _clamp(rows), "token": token}
            _send_line(writer, request)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (TimeoutError, OSError) as exc:
            writer.close()
            raise SupervisorError(
                f"the session's supervisor did not open a terminal: {str(exc) or 'timed out'}",
                hint="try again; `vibebox stop` then `vibebox` restarts the session",
            ) from exc
        try:
            answer = json.loads(line) if line else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            writer.close()
            raise SupervisorError(
                "the session's supervisor closed the connection instead of opening a terminal",
                hint="it may be shutting the VM down; run `vibebox` again",
            )
        if not answer.get("ok"):
            writer.close()
            raise SSHError(
                str(answer.get("error") or "the supervisor refused to open a terminal"),
                hint=str(answer.get("hint") or ""),
            )
        return cls(reader, writer, token)

    async def read(self) -> bytes:
        """The output that has come: the payloads of every whole ``d`` frame received so far
        (at least one; a flood's frames queue up while the reader is busy, and are taken in
        one read rather than one each), or ``b""`` at the end.

        Raises:
            SupervisorError: the connection broke, or carried something not of this protocol.
        """
        while not self._ended:
            try:
                data = self._take_frames()
                if data or self._ended:
                    return data
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk and self._buffer:
                    raise FrameError("the stream ended inside a frame")
            except (FrameError, OSError) as exc:
                self._end(f"Connection to the session's supervisor lost: {exc}")
                raise SupervisorError(f"the terminal relay broke: {exc}") from exc
            if not chunk:
                self._end("Connection to the session's supervisor lost (it stopped)")
                return b""
            self._buffer += chunk
        return b""

    def _take_frames(self) -> bytes:
        """The ``d`` payloads of the whole frames in the buffer, joined; an ``x`` frame ends
        the stream (what follows it is ignored), other kinds are skipped.

        Raises:
            FrameError: a frame larger than :data:`MAX_FRAME`.
        """
        buffer = self._buffer
        size = _HEADER.size
        payloads: list[bytearray] = []
        at = 0
        while len(buffer) - at >= size:
            kind, length = _HEADER.unpack_from(buffer, at)
            if length > MAX_FRAME:
                raise FrameError(f"a frame of {length} bytes is larger than {MAX_FRAME}")
            end = at + size + length
            if end > len(buffer):
                break
            payload = buffer[at + size : end]
            at = end
            if kind == DATA:
                payloads.append(payload)
            elif kind == END:
                self._end_from(payload)
                break
        del buffer[:at]
        return b"".join(payloads)

    def _end_from(self, payload: bytes | bytearray) -> None:
        try:
            info = json.loads(payload)
        except ValueError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        status, signal = info.get("status"), info.get("signal")
        self.exit_status = status if isinstance(status, int) else None
        self.exit_signal = signal if isinstance(signal, str) else None
        reason = info.get("reason")
        self._end(reason if isinstance(reason, str) and reason else "Session closed")

    def _end(self, reason: str) -> None:
        self._ended = True
        if not self.end_reason:
            self.end_reason = reason

    async def _send(self, data: bytes) -> None:
        if self._ended or self._writer.is_closing():
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise SupervisorError(f"could not send to the session's supervisor: {exc}") from exc

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(data_frames(bytes(data)))

    async def resize(self, cols: int, rows: int) -> None:
        await self._send(resize_frame(cols, rows))

    async def close(self) -> None:
        self._end("Session closed")
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


# --------------------------------------------------------------------------- the supervisor side

#: Opens the guest shell for a request: ``(cols, rows, command_token) -> stream``.
ShellOpener = Callable[[int, int, str | None], Awaitable[ByteStream]]


async def serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: dict[str, Any],
    open_shell: ShellOpener,
) -> None:
    """Answer a ``pty`` request on a supervisor connection and relay until either side ends."""
    try:
        cols, rows = _clamp(request.get("cols", 80)), _clamp(request.get("rows", 24))
    except (TypeError, ValueError):
        cols, rows = 80, 24
    token = request.get("token")
    try:
        stream = await open_shell(cols, rows, token if commandtoken.is_token(token) else None)
    except VibeboxError as exc:
        _send_line(writer, {"ok": False, "error": exc.message, "hint": exc.hint})
        with contextlib.suppress(OSError):
            await writer.drain()
        return
    _send_line(writer, {"ok": True})
    _limit_output_queue(writer)
    output = asyncio.create_task(_pump_output(stream, writer))
    try:
        with contextlib.suppress(OSError, FrameError, VibeboxError):
            while not output.done():
                got = await read_frame(reader)
                if got is None:
                    break
                kind, payload = got
                if kind == DATA:
                    await stream.write(payload)
                elif kind == RESIZE:
                    await stream.resize(*parse_size(payload))
    finally:
        await stream.close()
        if not output.done():
            output.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await output


def _limit_output_queue(writer: asyncio.StreamWriter) -> None:
    """Keep at most about :data:`OUTPUT_QUEUE` bytes of output waiting in each of the
    transport's buffer and the socket's (see there why)."""
    writer.transport.set_write_buffer_limits(high=OUTPUT_QUEUE)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, OUTPUT_QUEUE)


async def _pump_output(stream: ByteStream, writer: asyncio.StreamWriter) -> None:
    """Guest output to the client, then the end frame."""
    with contextlib.suppress(OSError):
        lost = ""
        try:
            while data := await stream.read():
                writer.write(data_frames(data))
                await writer.drain()
        except VibeboxError as exc:
            lost = exc.message
        end = {
            "status": getattr(stream, "exit_status", None),
            "signal": getattr(stream, "exit_signal", None),
            "reason": getattr(stream, "end_reason", "") or lost or "Session closed",
        }
        writer.write(frame(END, json.dumps(end).encode()))
        await writer.drain()
        writer.close()  # the client sees EOF after the end frame; the input loop stops
