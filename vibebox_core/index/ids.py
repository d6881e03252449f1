"""Session ids: UUIDv7 strings, the short prefixes lists show, and ``.vibebox/session-id``."""

from __future__ import annotations

from collections.abc import Iterable

import uuid_utils

from vibebox_core.errors import ConfigError
from vibebox_core.fileio import read_bounded_text
from vibebox_core.paths import ProjectPaths


def new_session_id() -> str:
    """Return a fresh UUIDv7 (time-ordered) as a canonical string."""
    return str(uuid_utils.uuid7())


def validate_session_id(value: str) -> str:
    """Check that ``value`` is a canonical (lower-case, hyphenated) UUIDv7 string.

    Returns:
        The value.

    Raises:
        ValueError: it is not; the message says why.
    """
    try:
        parsed = uuid_utils.UUID(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a UUID") from None
    if parsed.version != 7:
        raise ValueError(f"{value!r} is a version {parsed.version} UUID, expected a UUIDv7")
    if parsed.variant != uuid_utils.RFC_4122:
        raise ValueError(f"{value!r} does not have the RFC 9562 variant bits")
    if str(parsed) != value:
        raise ValueError(f"{value!r} is not written in canonical form ({parsed})")
    return value


def read_session_id_file(project: ProjectPaths) -> str | None:
    """Return the id stored in ``<project>/.vibebox/session-id``, or None if absent/invalid."""
    try:  # a regular file of a few bytes only: never a symlink, FIFO or device (fileio)
        text = read_bounded_text(project.session_id, limit=256).strip()
    except (OSError, ConfigError):
        return None
    try:
        return validate_session_id(text)
    except ValueError:
        return None


def short_ids(ids: Iterable[str], minimum: int = 8) -> dict[str, str]:
    """The shortest prefix of each id that no other id in ``ids`` shares, at least
    ``minimum`` characters, grown a whole group at a time (``019bf290`` → ``019bf290-0001``).

    UUIDv7 ids begin with their creation time, so two sessions made within about a minute
    share their first 8 hex digits; a list shows what tells them apart (and what
    ``vibebox delete`` accepts as a unique prefix).
    """
    unique = sorted(set(ids))
    shorts: dict[str, str] = {}
    for i, sid in enumerate(unique):
        neighbours = unique[max(0, i - 1) : i] + unique[i + 1 : i + 2]
        common = max((_common_prefix(sid, other) for other in neighbours), default=0)
        length = max(minimum, common + 1)
        while length < len(sid) and sid[length] != "-":
            length += 1  # end on a group boundary
        shorts[sid] = sid[:length]
    return shorts


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
