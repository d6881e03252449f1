"""Counts over every network decision a session kept, for ``vibebox explain``.

Read from the log (:mod:`vibebox_core.network.log`), the generation rotated out before it and
the summarised older ones, so the counts hold even after a flood rotated the log.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vibebox_core.network.log import earlier, iter_events, rotated


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
    """Summarise every decision kept for ``path``: the summarised older generations, the
    rotated one and the log itself (a missing log gives an empty summary)."""
    allowed: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    for record in earlier(path):
        first = min(first or record.first, record.first)
        last = max(last or record.last, record.last)
        (allowed if record.verdict == "allowed" else blocked)[record.host] += record.count
    for log in (rotated(path), path):
        for event in iter_events(log):
            first = min(first or event.time, event.time)
            last = max(last or event.time, event.time)
            (allowed if event.allowed else blocked)[event.host] += event.count
    return NetSummary(
        total=sum(allowed.values()) + sum(blocked.values()),
        allowed=sum(allowed.values()),
        blocked=sum(blocked.values()),
        top_blocked=tuple(blocked.most_common(top)),
        top_allowed=tuple(allowed.most_common(top)),
        first=first,
        last=last,
    )
