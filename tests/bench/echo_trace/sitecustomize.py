"""Where a key's echo spends its time: timestamps at every hop, for ``bench_flood.py --trace``.

``bench_flood.py --trace`` puts this directory first on ``PYTHONPATH`` and names a file in
:data:`ENV`, so Python imports this module at start-up in every process of the run: the
dashboard and the session's supervisor (which it starts with its own environment). Nothing
of vibebox changes: once one of the modules below is imported, its class or function is
wrapped so that each hop writes the time (``CLOCK_MONOTONIC``, the same clock in every
process) it handles a typed ``x`` or the echo program's ``ECHO-nnnnn`` marker:

* ``key``: the dashboard's input thread sends the key (``ThreadedStream.write_soon``);
* ``sup-in``: the supervisor has it from the relay and writes it to the guest's channel;
* ``sup-out``: the supervisor reads the echo from the guest (what the guest took is here);
* ``io``: the dashboard's IO thread reads it from the relay;
* ``parse0`` / ``parse1``: the emulator starts and ends the slice holding it;
* ``flush``: Textual's writer thread has written and flushed the frame that draws it.

The supervisor's hops also say how much output it had read by then, so the flood that was
ahead of an echo is known in bytes. The benchmark adds its own ``send`` and ``seen`` (tmux's
control mode showed the echo), and :func:`echoes` gives each hop's delay after ``send``.
Without :data:`ENV` this module does nothing at all.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

ENV = "VIBEBOX_ECHO_TRACE"
"""The file the hops append their lines to (``seconds pid hop what``)."""
MARKER = b"ECHO-"
KEY = b"x"
HOPS = ("key", "sup-in", "sup-out", "io", "parse0", "parse1", "flush", "seen")
"""The hops in the order an echo passes them (``send`` is where each is timed from)."""

_fd: int | None = None


def mark(hop: str, data: bytes | bytearray | str, offset: int | None = None) -> None:
    """Note that ``hop`` handles ``data`` now: the last echo marker in it, or a typed key.

    ``offset``: where ``data`` starts in the output this hop has read so far; the line then
    says where the marker is (for a key: how much output was read when it was sent)."""
    if _fd is None:
        return
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    at = data.rfind(MARKER)
    if at >= 0:
        where = None if offset is None else offset + at
        note(hop, bytes(data[at : at + len(MARKER) + 5]), where)
    elif data == KEY:
        note(hop, KEY, offset)


def note(hop: str, what: bytes, where: int | None = None) -> None:
    """Write one line: ``hop`` handles ``what`` (one word) now, at output byte ``where``."""
    if _fd is not None:
        line = b"%.6f %d %s %s" % (time.monotonic(), os.getpid(), hop.encode(), what)
        os.write(_fd, line + (b"" if where is None else b" %d" % where) + b"\n")


def open_trace(path: str) -> None:
    """Append this process's hops to ``path``."""
    global _fd
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


# -- the wrappers -----------------------------------------------------------------------


class _Traced:
    """A :class:`~vibebox_core.streams.ByteStream` whose reads and writes are marked."""

    def __init__(self, stream: Any, read_hop: str, write_hop: str) -> None:
        self._stream = stream
        self._read_hop, self._write_hop = read_hop, write_hop
        self._read = 0  # bytes of output read so far

    async def read(self) -> bytes:
        data: bytes = await self._stream.read()
        mark(self._read_hop, data, self._read)
        self._read += len(data)
        return data

    async def write(self, data: bytes) -> None:
        mark(self._write_hop, data, self._read)
        await self._stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _patch_relay(module: types.ModuleType) -> None:
    serve = module.serve

    @functools.wraps(serve)
    async def traced_serve(reader: Any, writer: Any, request: Any, open_shell: Any) -> None:
        async def traced_open(*args: Any) -> Any:
            return _Traced(await open_shell(*args), "sup-out", "sup-in")

        await serve(reader, writer, request, traced_open)

    module.__dict__["serve"] = traced_serve


def _patch_io_thread(module: types.ModuleType) -> None:
    cls = module.ThreadedStream
    init, write_soon = cls.__init__, cls.write_soon

    def traced_init(self: Any, io: Any, stream: Any) -> None:
        init(self, io, _Traced(stream, "io", "write"))

    def traced_write_soon(self: Any, data: bytes) -> None:
        mark("key", data)
        write_soon(self, data)

    cls.__init__, cls.write_soon = traced_init, traced_write_soon


def _patch_emulator(module: types.ModuleType) -> None:
    cls = module.Emulator
    feed = cls.feed

    def traced_feed(self: Any, data: bytes) -> None:
        mark("parse0", data)
        feed(self, data)
        mark("parse1", data)

    cls.feed = traced_feed


class _File:
    """The writer thread's file: a frame drawing an echo is marked once it is flushed."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._held = ""

    def write(self, text: str) -> None:
        self._file.write(text)
        if MARKER.decode() in text:
            self._held = text

    def flush(self) -> None:
        self._file.flush()
        if self._held:
            mark("flush", self._held)
            self._held = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _patch_writer(module: types.ModuleType) -> None:
    cls = module.WriterThread
    init = cls.__init__

    def traced_init(self: Any, file: Any) -> None:
        init(self, _File(file))

    cls.__init__ = traced_init


PATCHES: dict[str, Callable[[types.ModuleType], None]] = {
    "vibebox_core.supervisor.relay": _patch_relay,
    "vibebox_tui.backend.io_thread": _patch_io_thread,
    "vibebox_tui.terminal.vt.emulator": _patch_emulator,
    "textual.drivers._writer_thread": _patch_writer,
}


class _Patcher(importlib.abc.MetaPathFinder):
    """Wraps what :data:`PATCHES` names right after its module is first executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if spec is None or not isinstance(loader, importlib.machinery.SourceFileLoader):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module: types.ModuleType) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


# -- the report ---------------------------------------------------------------------------


class Echo(NamedTuple):
    """One echo a side's window showed: each hop's delay after its key (ms), and the output
    the supervisor read between writing the key to the guest and reading its echo (bytes:
    the flood that was ahead of the echo; None without the supervisor's hops)."""

    delays: dict[str, float]
    ahead: int | None


def echoes(path: str, side: str) -> list[Echo]:
    """The echoes of ``side`` in the trace at ``path`` that its window showed.

    An echo is followed by its marker from its ``send`` on; a typed key (``key``,
    ``sup-in``) is the first one after ``send``. The benchmark notes ``side NAME`` before a
    side's block of keys."""
    current: dict[str, tuple[float, int | None]] | None = None
    number = ""
    found: list[dict[str, tuple[float, int | None]]] = []
    on_side = False
    with open(path, encoding="ascii", errors="replace") as trace:
        for line in trace:
            fields = line.split()
            if len(fields) not in (4, 5):
                continue
            at, hop, what = float(fields[0]), fields[2], fields[3]
            where = int(fields[4]) if len(fields) == 5 else None
            if hop == "side":
                on_side, current = what == side, None
            elif hop == "send" and on_side:
                number, current = what, {"send": (at, None)}
                found.append(current)
            elif current is not None and (what == number or what == KEY.decode()):
                current.setdefault(hop, (at, where))
    result = []
    for times in found:
        if "seen" not in times:
            continue
        sent = times["send"][0]
        delays = {hop: (times[hop][0] - sent) * 1000 for hop in HOPS if hop in times}
        key_at, echo_at = times.get("sup-in", (0, None))[1], times.get("sup-out", (0, None))[1]
        ahead = echo_at - key_at if key_at is not None and echo_at is not None else None
        result.append(Echo(delays, ahead))
    return result


if os.environ.get(ENV):
    open_trace(os.environ[ENV])
    sys.meta_path.insert(0, _Patcher())
