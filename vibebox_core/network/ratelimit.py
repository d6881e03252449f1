"""Rate-limited recording of network decisions, so a guest's flood cannot drown the log.

The guest decides how many DNS queries and proxy requests there are. Writing every one would
let a flood rotate the earlier decisions away (and fill the disk with noise), so the proxy and
the DNS filter record through a :class:`Recorder`: within each window, the first few
decisions per source, host, verdict and reason are written as they are; repeats are counted
and written once as an honest summary line when the window ends ("41 more blocked DNS
queries for x.example between T1 and T2: not in the allowlist (A)", with ``count`` 41). When
a flood uses many names, the window's overall budget runs out and further names are counted
under their parent domain (``*.flood.example``). Nothing is dropped without being counted.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vibebox_core.network.log import NetEvent, Source, VerdictName, append

WINDOW = 10.0
PER_KEY = 5
PER_WINDOW = 200
MAX_HELD = 1000
_WHAT = {"dns": "DNS queries", "proxy": "proxy requests"}


@dataclass
class _Held:
    port: int | None
    count: int
    first: str
    last: str
    names: set[str]


def _parent(host: str) -> str:
    labels = host.split(".")
    return "*." + ".".join(labels[-2:]) if len(labels) > 2 else host


class Recorder:
    """Writes decisions to one log, summarising repeats per window.

    Args:
        path: the session's network log.
        window: seconds per window.
        per_key: decisions written as they are per (source, host, verdict) and window.
        per_window: decisions written as they are per window in all.
        clock: monotonic seconds (tests).
        write: how a line reaches the log (default :func:`vibebox_core.network.log.append`).
    """

    def __init__(
        self,
        path: Path,
        *,
        window: float = WINDOW,
        per_key: int = PER_KEY,
        per_window: int = PER_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[Path, NetEvent], None] = append,
    ) -> None:
        self.path = path
        self.window = window
        self.per_key = per_key
        self.per_window = per_window
        self._clock = clock
        self._write = write
        self._lock = threading.Lock()
        self._start = clock()
        self._seen: dict[tuple[Source, str, VerdictName, str], int] = {}
        self._written = 0
        self._held: dict[tuple[Source, str, VerdictName, str], _Held] = {}

    def record(self, event: NetEvent) -> None:
        """Write ``event`` now, or count it for the window's summary.

        Decisions are "the same" when source, host, verdict and reason agree: a new reason
        (an approved policy change, another failure) is written at once.
        """
        with self._lock:
            self._roll()
            key = (event.source, event.host, event.verdict, event.reason)
            seen = self._seen.get(key, 0) + 1
            self._seen[key] = seen
            if seen <= self.per_key and self._written < self.per_window:
                self._written += 1
                self._emit(event)
                return
            # Repeats of one decision are counted under it; past the window's budget, new
            # names are counted under their parent domain (or one catch-all past MAX_HELD).
            if seen > self.per_key:
                hold = key
            else:
                hold = (event.source, _parent(event.host), event.verdict, "")
            if hold not in self._held and len(self._held) >= MAX_HELD:
                hold = (event.source, "(other hosts)", event.verdict, "")
            held = self._held.get(hold)
            if held is None:
                self._held[hold] = _Held(event.port, 1, event.time, event.time, {event.host})
            else:
                held.count += 1
                held.last = event.time
                if len(held.names) < 10_000:
                    held.names.add(event.host)
                if held.port != event.port:
                    held.port = None

    def flush(self) -> None:
        """Write the summaries of a window that is over (call now and then, and at the end)."""
        with self._lock:
            self._roll()

    def close(self) -> None:
        """Write every pending summary now, whatever the window."""
        with self._lock:
            self._summarise()

    def _roll(self) -> None:
        if self._clock() - self._start >= self.window:
            self._summarise()

    def _summarise(self) -> None:
        held, self._held = self._held, {}
        self._seen.clear()
        self._written = 0
        self._start = self._clock()
        for (source, group, verdict, why), h in held.items():
            what = _WHAT.get(source, "decisions")
            names = f" ({len(h.names)} names)" if len(h.names) > 1 else ""
            because = f": {why}" if why else ""
            reason = (
                f"{h.count} more {verdict} {what} for {group}{names} between {h.first} "
                f"and {h.last}{because}"
            )
            self._emit(NetEvent(source, group, h.port, verdict, reason, time=h.last, count=h.count))

    def _emit(self, event: NetEvent) -> None:
        # A full disk must not take the proxy or the DNS filter down; the decision holds.
        with contextlib.suppress(OSError):
            self._write(self.path, event)


_recorders: dict[str, Recorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(path: Path) -> Recorder:
    """The one recorder of a log in this process (the proxy and the DNS filter share it)."""
    with _recorders_lock:
        recorder = _recorders.get(str(path))
        if recorder is None:
            recorder = _recorders[str(path)] = Recorder(path)
        return recorder


def record(path: Path, event: NetEvent) -> None:
    """Record one decision in the log at ``path`` (see :class:`Recorder`)."""
    recorder_for(path).record(event)


def flush_all() -> None:
    """Write the summaries of every finished window (the supervisor calls this regularly)."""
    with _recorders_lock:
        recorders = list(_recorders.values())
    for recorder in recorders:
        recorder.flush()


def close(path: Path) -> None:
    """Write the pending summaries of one log and forget its recorder."""
    with _recorders_lock:
        recorder = _recorders.pop(str(path), None)
    if recorder is not None:
        recorder.close()
