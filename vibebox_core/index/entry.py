"""One session of the index (``SessionEntry``), and the clock the index stamps entries with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vibebox_core.paths import ProjectPaths

#: Keys every entry has; everything else in an entry is kept in ``SessionEntry.extra``.
CORE_KEYS = ("id", "directory", "last_active")


@dataclass(frozen=True)
class SessionEntry:
    """One session of the index.

    Attributes:
        id: the session id, a canonical UUIDv7 string.
        directory: the project directory (absolute).
        last_active: when a vibebox last used the session (UTC, aware).
        extra: other keys of the entry, kept as they are (plain Python values).
    """

    id: str
    directory: Path
    last_active: datetime
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, as in the domain name (lists use :func:`short_ids`)."""
        return self.id[:8]

    @property
    def project(self) -> ProjectPaths:
        """The project's paths."""
        return ProjectPaths(self.directory)


def utc_now() -> datetime:
    """Now, in UTC, to the second (the index stores whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0)
