"""A provisioning step's output: kept whole in a bounded log, shown a few lines at a time.

The guest chooses every byte of it, so both ends are bounded: ``.vibebox/provision.log``
(:class:`BoundedLog`) keeps the last MiB, and the progress callback gets at most
:data:`BATCH_LINES` lines every :data:`BATCH_SECONDS` (:class:`OutputLines`; a flood is counted,
not shown line by line), each line cut at :data:`MAX_LINE` bytes. The lines are raw text:
each front end escapes them before it shows them.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path

from vibebox_core.fileio import ProjectFileError, read_bounded, write_atomic
from vibebox_core.progress import ProgressClock
from vibebox_core.sanitize import clean

#: ``.vibebox/provision.log`` stays under this many bytes ...
LOG_LIMIT = 1024 * 1024
#: ... by keeping the last this many when it would grow past it.
LOG_KEEP = 768 * 1024
#: Output lines reach the progress callback at most this often ...
BATCH_SECONDS = 0.1
#: ... at most this many at a time (a flood is counted, and kept whole in the log).
BATCH_LINES = 40
#: A line longer than this is cut into pieces (a guest may print without a newline).
MAX_LINE = 4096


def escaped(chunk: bytes) -> bytes:
    """A chunk of a step's output as it goes into the log: line breaks kept, every other control
    character, escape sequence or invalid byte written as its escape (``\\x1b``), so ``cat`` of
    the log in a host terminal shows what the guest printed instead of running it."""
    text = chunk.decode("utf-8", errors="surrogateescape").replace("\r\n", "\n")
    return "\n".join(clean(line, None) for line in text.split("\n")).encode()


class BoundedLog:
    """``.vibebox/provision.log``, appended to and kept to its last :data:`LOG_LIMIT` bytes.

    When a write would take the file past ``limit``, it is rewritten with its last ``keep``
    bytes (from a line start) after a ``[… earlier output trimmed …]`` line, so the newest
    output is always there and the file never grows without bound.
    """

    TRIMMED = b"[... earlier output trimmed: provision.log keeps its last MiB ...]\n"

    def __init__(self, path: Path, *, limit: int = LOG_LIMIT, keep: int = LOG_KEEP) -> None:
        self.path = path
        self.limit = limit
        self.keep = min(keep, limit - len(self.TRIMMED) - 1)
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def write(self, data: bytes) -> None:
        """Append ``data``, trimming the file first when it would pass the limit."""
        fd = self._open()
        if self._size + len(data) > self.limit:
            self._trim(data)
            return
        os.write(fd, data)
        self._size += len(data)

    def _trim(self, data: bytes) -> None:
        self.close()
        try:
            old = read_bounded(self.path, limit=self.limit * 2, what="provision log")
        except (OSError, ProjectFileError):
            old = b""
        tail = (old + data)[-self.keep :]
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1 :]
        write_atomic(self.path, self.TRIMMED + tail, mode=0o600)
        self._open()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class OutputLines:
    """Splits a step's output into lines for the progress callback, in bounded batches.

    :meth:`feed` takes the bytes as they come; :meth:`flush` sends what was collected (the
    caller runs :meth:`flush_every` beside the step, and flushes with ``end`` after it).
    """

    def __init__(self, clock: ProgressClock, step: str, detail: str) -> None:
        self._clock = clock
        self._step = step
        self._detail = detail
        self._partial = b""
        self._batch: deque[str] = deque(maxlen=BATCH_LINES)
        self._skipped = 0

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        while len(self._partial) > MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        for line in lines:
            self._add(line)

    def _add(self, raw: bytes) -> None:
        # What a terminal would show of it: the text after the last carriage return.
        text = raw.rstrip(b"\r").rsplit(b"\r", 1)[-1].decode("utf-8", "replace")
        if len(self._batch) == self._batch.maxlen:
            self._skipped += 1
        self._batch.append(text)

    def flush(self, *, end: bool = False) -> None:
        if end and self._partial:
            self._add(self._partial)
            self._partial = b""
        if not self._batch:
            return
        lines = list(self._batch)
        if self._skipped:
            lines.insert(0, f"[{self._skipped} more lines: see .vibebox/provision.log]")
        self._batch.clear()
        self._skipped = 0
        self._clock(self._step, self._detail, output=tuple(lines))

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()
