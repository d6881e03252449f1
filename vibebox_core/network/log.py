"""The session's network log: every proxy and DNS decision, one JSON object per line.

The supervisor's proxy and DNS filter append to ``.vibebox/network.log``; ``vibebox explain``
and the dashboard's inspector read its tail. Lines are written with a single ``write`` on a
file opened for appending, so concurrent writers never interleave; a reader that races a
writer (or a crash mid-line) may see a torn last line, which :func:`tail` skips.

The guest decides how many decisions there are, so the log must survive a flood without
losing the audit trail: it rotates by size *and* line count to ``network.log.1``, and the
generation that rotation would drop is folded into ``network.log.summary`` instead — one
record per source, host and verdict with its count and first/last time (many names under one
domain are counted together as ``*.domain`` when there are too many), so the oldest decisions
are summarised, never silently lost. Repeated entries are also rate-limited before they are
written (:mod:`vibebox_core.network.ratelimit`); :mod:`vibebox_core.network.logsummary` counts
every decision kept, for ``vibebox explain``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vibebox_core.fileio import write_atomic

Source = Literal["proxy", "dns"]
VerdictName = Literal["allowed", "blocked"]

# The log is rotated to ``network.log.1`` when it grows past either bound, so it cannot fill
# the disk; the generation before is folded into the summary file (at most MAX_SUMMARY records).
MAX_LOG_BYTES = 4 * 1024 * 1024
MAX_LOG_LINES = 20_000
MAX_SUMMARY_RECORDS = 500
_TAIL_CHUNK = 64 * 1024
_line_counts: dict[str, tuple[int, int]] = {}  # path -> (inode, complete lines)


def timestamp() -> str:
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
        count: how many decisions this line stands for (more than 1: a summary of repeated
            decisions, its reason says which and over which time).
    """

    source: Source
    host: str
    port: int | None
    verdict: VerdictName
    reason: str
    time: str = field(default_factory=timestamp)
    count: int = 1

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"

    def to_dict(self) -> dict[str, Any]:
        """Return the event as the JSON object written to the log (time first)."""
        data: dict[str, Any] = {
            "time": self.time,
            "source": self.source,
            "host": self.host,
            "port": self.port,
            "verdict": self.verdict,
            "reason": self.reason,
        }
        if self.count != 1:
            data["count"] = self.count
        return data

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
        count = data.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count is not a positive integer")
        return cls(
            source=source,
            host=host,
            port=port,
            verdict=verdict,
            reason=reason,
            time=time,
            count=count,
        )

    def describe(self) -> str:
        """One line for people, e.g. ``10:15:00 blocked proxy evil.example:443 (reason)``."""
        clock = self.time[11:19] if len(self.time) >= 19 else self.time
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{clock} {self.verdict} {self.source} {where} ({self.reason})"


def append(path: Path, event: NetEvent) -> None:
    """Append one event to the log (creating it), rotating a log that grew too big.

    Rotation folds the generation it would drop into the summary file (:func:`earlier`).
    """
    line = (json.dumps(event.to_dict(), ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    try:
        st = path.stat()
    except FileNotFoundError:
        pass
    else:
        lines = _count_lines(path, st.st_ino)
        if st.st_size + len(line) > MAX_LOG_BYTES or lines + 1 > MAX_LOG_LINES:
            rotate(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        ino = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    known = _line_counts.get(str(path))
    if known is not None and known[0] == ino:
        _line_counts[str(path)] = (ino, known[1] + 1)


def _count_lines(path: Path, ino: int) -> int:
    known = _line_counts.get(str(path))
    if known is not None and known[0] == ino:
        return known[1]
    try:
        with path.open("rb") as f:
            count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except FileNotFoundError:
        count = 0
    _line_counts[str(path)] = (ino, count)
    return count


def rotated(path: Path) -> Path:
    """The previous generation of the log: ``network.log.1``."""
    return path.with_name(path.name + ".1")


def summary_path(path: Path) -> Path:
    """Where rotated-out generations are summarised: ``network.log.summary``."""
    return path.with_name(path.name + ".summary")


def rotate(path: Path) -> None:
    """Move the log to ``.1``; the old ``.1`` is folded into the summary file first."""
    older = rotated(path)
    if older.exists():
        records = {r.key: r for r in earlier(path)}
        for event in iter_events(older):
            _add(records, EarlierRecord.of(event))
        _write_records(summary_path(path), _bounded(list(records.values())))
    os.replace(path, older)
    _line_counts.pop(str(path), None)


@dataclass(frozen=True)
class EarlierRecord:
    """Decisions of rotated-out generations, counted by source, host (or ``*.domain``) and verdict.

    Attributes:
        source, host, verdict: what was decided (``host`` may be ``*.example.com`` for many
            names under one domain, or ``(other hosts)``).
        count: how many decisions.
        hosts: how many distinct host names the record covers.
        first, last: the time of the first and the last of them.
    """

    source: str
    host: str
    verdict: str
    count: int
    hosts: int
    first: str
    last: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.host, self.verdict)

    @classmethod
    def of(cls, event: NetEvent) -> EarlierRecord:
        return cls(event.source, event.host, event.verdict, event.count, 1, event.time, event.time)

    def merged(self, other: EarlierRecord, host: str | None = None) -> EarlierRecord:
        """Both records in one; under a new ``host`` (a coarser name) their names add up,
        under the same one they may overlap, so the larger count of names is kept."""
        return EarlierRecord(
            self.source,
            host or self.host,
            self.verdict,
            self.count + other.count,
            max(self.hosts, other.hosts) if host is None else self.hosts + other.hosts,
            min(self.first, other.first),
            max(self.last, other.last),
        )

    def describe(self) -> str:
        """One honest line, e.g. ``41 blocked dns decisions for x.example between T1 and T2``."""
        names = f" (at least {self.hosts} names)" if self.hosts > 1 else ""
        return (
            f"{self.count} {self.verdict} {self.source} decisions for {self.host}{names} "
            f"between {self.first} and {self.last}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _add(records: dict[tuple[str, str, str], EarlierRecord], record: EarlierRecord) -> None:
    known = records.get(record.key)
    records[record.key] = record if known is None else known.merged(record)


def _parent(host: str) -> str:
    labels = host.lstrip("*.").split(".")
    return "*." + ".".join(labels[-2:]) if len(labels) > 2 else host


def _bounded(records: list[EarlierRecord], limit: int | None = None) -> list[EarlierRecord]:
    """At most ``limit`` records: many names under one domain first become ``*.domain``, then
    the rarest records become one ``(other hosts)`` per source and verdict. Counts and times
    are kept exactly; only the names are coarser."""
    limit = MAX_SUMMARY_RECORDS if limit is None else limit
    if len(records) > limit:
        groups: dict[tuple[str, str, str], list[EarlierRecord]] = {}
        for r in records:
            groups.setdefault((r.source, _parent(r.host), r.verdict), []).append(r)
        records = []
        for (_, parent, _), members in groups.items():
            if len(members) == 1:
                records.append(members[0])
                continue
            total = members[0]
            for m in members[1:]:
                total = total.merged(m, host=parent)
            records.append(total)
    if len(records) > limit:
        records.sort(key=lambda r: (-r.count, r.last))
        kept, rest = records[: max(0, limit - 4)], records[max(0, limit - 4) :]
        others: dict[tuple[str, str], EarlierRecord] = {}
        for r in rest:
            known = others.get((r.source, r.verdict))
            others[(r.source, r.verdict)] = (
                replace(r, host="(other hosts)")
                if known is None
                else known.merged(r, host="(other hosts)")
            )
        records = kept + list(others.values())
    return sorted(records, key=lambda r: r.first)


def _write_records(path: Path, records: list[EarlierRecord]) -> None:
    data = "".join(
        json.dumps(r.to_dict(), ensure_ascii=True, separators=(",", ":")) + "\n" for r in records
    )
    write_atomic(path, data, mode=None)


def earlier(path: Path) -> list[EarlierRecord]:
    """The summarised decisions of generations rotated out of the log, oldest first."""
    try:
        lines = summary_path(path).read_text().splitlines()
    except OSError:
        return []
    out: list[EarlierRecord] = []
    for line in lines:
        try:
            data = json.loads(line)
            record = EarlierRecord(**data)
        except (ValueError, TypeError):
            continue
        if isinstance(record.count, int) and isinstance(record.host, str):
            out.append(record)
    return out


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
