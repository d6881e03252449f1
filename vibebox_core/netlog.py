"""The session's network log: every proxy and DNS decision, one JSON object per line.

The supervisor's proxy and DNS filter append to ``.vibebox/network.log``; ``vibebox explain``
and the dashboard's inspector read its tail. Lines are written with a single ``write`` on a
file opened for appending, so concurrent writers never interleave; a reader that races a
writer (or a crash mid-line) may see a torn last line, which :func:`tail` skips.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Source = Literal["proxy", "dns"]
VerdictName = Literal["allowed", "blocked"]

# The log is rotated to ``network.log.1`` when it grows past this, so it cannot fill the disk.
MAX_LOG_BYTES = 4 * 1024 * 1024
_TAIL_CHUNK = 64 * 1024


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class NetEvent:
    """One decision about one connection or DNS query.

    Attributes:
        time: when, ISO 8601 UTC (``2026-11-27T10:15:00.123Z``).
        source: ``"proxy"`` or ``"dns"``.
        host: the host name (or address) the guest asked for.
        port: the TCP port for the proxy, 53 for DNS; None when unknown.
        verdict: ``"allowed"`` or ``"blocked"``.
        reason: why, in a few words.
    """

    source: Source
    host: str
    port: int | None
    verdict: VerdictName
    reason: str
    time: str = field(default_factory=utc_now)

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"

    def to_dict(self) -> dict[str, Any]:
        """Return the event as the JSON object written to the log (time first)."""
        return {
            "time": self.time,
            "source": self.source,
            "host": self.host,
            "port": self.port,
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Any) -> NetEvent:
        """Read one log object; raises ValueError when it is not a well-formed event."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        source, verdict, port = data.get("source"), data.get("verdict"), data.get("port")
        if source not in ("proxy", "dns") or verdict not in ("allowed", "blocked"):
            raise ValueError("unknown source or verdict")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
            raise ValueError("port is not an integer")
        host, reason, time = data.get("host"), data.get("reason", ""), data.get("time")
        if not isinstance(host, str) or not isinstance(reason, str) or not isinstance(time, str):
            raise ValueError("host, reason and time must be strings")
        return cls(source=source, host=host, port=port, verdict=verdict, reason=reason, time=time)

    def describe(self) -> str:
        """One line for people, e.g. ``10:15:00 blocked proxy evil.example:443 (reason)``."""
        clock = self.time[11:19] if len(self.time) >= 19 else self.time
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{clock} {self.verdict} {self.source} {where} ({self.reason})"


def append(path: Path, event: NetEvent) -> None:
    """Append one event to the log (creating it), rotating a log that grew too big."""
    line = (json.dumps(event.to_dict(), ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    try:
        if path.stat().st_size + len(line) > MAX_LOG_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _parse(line: bytes) -> NetEvent | None:
    try:
        return NetEvent.from_dict(json.loads(line))
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return None


def _complete_lines(path: Path, n: int) -> list[bytes]:
    """Return up to ``n`` last complete (newline-terminated) lines, reading from the end."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            chunk = _TAIL_CHUNK
            while True:
                start = max(0, size - chunk)
                f.seek(start)
                data = f.read(size - start)
                lines = data.split(b"\n")
                # The part after the last newline is a torn line (or empty): never an event.
                lines.pop()
                if start > 0:
                    lines = lines[1:]  # the first piece may start mid-line
                if len(lines) >= n or start == 0:
                    return lines[-n:] if n > 0 else []
                chunk *= 4
    except FileNotFoundError:
        return []


def tail(path: Path, n: int = 50) -> list[NetEvent]:
    """Return the last ``n`` events of the log, oldest first.

    A missing log is empty; a torn last line and any line that is not an event are skipped.
    """
    if n <= 0:
        return []
    events: list[NetEvent] = []
    want = n
    # Skipped lines make us ask for a few more; bounded so a garbage file ends quickly.
    for _ in range(4):
        lines = _complete_lines(path, want)
        events = [e for e in (_parse(line) for line in lines) if e is not None]
        if len(events) >= n or len(lines) < want:
            break
        want *= 2
    return events[-n:]


def iter_events(path: Path) -> Iterator[NetEvent]:
    """Yield every well-formed event in the log, oldest first."""
    try:
        with path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                event = _parse(line)
                if event is not None:
                    yield event
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class NetSummary:
    """Counts over the whole log, for ``vibebox explain``.

    Attributes:
        total, allowed, blocked: decision counts.
        top_blocked: most often blocked hosts with their counts, most frequent first.
        top_allowed: most often allowed hosts with their counts.
        first, last: time of the first and last event (None when the log is empty).
    """

    total: int = 0
    allowed: int = 0
    blocked: int = 0
    top_blocked: tuple[tuple[str, int], ...] = ()
    top_allowed: tuple[tuple[str, int], ...] = ()
    first: str | None = None
    last: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["top_blocked"] = [list(item) for item in self.top_blocked]
        data["top_allowed"] = [list(item) for item in self.top_allowed]
        return data

    def lines(self) -> list[str]:
        """Human-readable lines (empty log: one line saying so)."""
        if self.total == 0:
            return ["no network decisions logged yet"]
        out = [
            f"{self.total} decisions since {self.first}: "
            f"{self.allowed} allowed, {self.blocked} blocked"
        ]
        if self.top_blocked:
            out.append("most blocked: " + ", ".join(f"{h} ({c})" for h, c in self.top_blocked))
        if self.top_allowed:
            out.append("most allowed: " + ", ".join(f"{h} ({c})" for h, c in self.top_allowed))
        return out


def summary(path: Path, top: int = 5) -> NetSummary:
    """Summarise the log at ``path`` (a missing log gives an empty summary)."""
    allowed: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    for event in iter_events(path):
        first = first or event.time
        last = event.time
        (allowed if event.allowed else blocked)[event.host] += 1
    return NetSummary(
        total=sum(allowed.values()) + sum(blocked.values()),
        allowed=sum(allowed.values()),
        blocked=sum(blocked.values()),
        top_blocked=tuple(blocked.most_common(top)),
        top_allowed=tuple(allowed.most_common(top)),
        first=first,
        last=last,
    )
