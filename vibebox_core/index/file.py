"""The index file, ``sessions.toml``: read with line numbers for every problem, written atomically.

Other tools may read the index, so its format is fixed: one ``[[sessions]]`` table per session
with ``id`` (a UUIDv7), ``directory`` (absolute) and ``last_active`` (a UTC TOML datetime), plus
any keys other parts of vibebox keep there (e.g. the approved policy), carried through every
write unchanged. A damaged index is reported with its file and line and never overwritten.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError

from vibebox_core.errors import SessionIndexError
from vibebox_core.fileio import write_atomic
from vibebox_core.index.entry import CORE_KEYS, SessionEntry
from vibebox_core.index.ids import validate_session_id

_HEADER = "# vibebox session index: one [[sessions]] table per session. Written by vibebox.\n"
_TMP_PREFIX = ".sessions.toml."
_TMP_SUFFIX = ".tmp"


class _Lines:
    """Maps an index entry back to the line of its ``[[sessions]]`` header and its keys."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [
            n
            for n, line in enumerate(self.lines, start=1)
            if re.match(r"^\s*\[\[\s*sessions\s*\]\]", line)
        ]

    def of(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.headers):
            return None
        start = self.headers[index]
        if key is None:
            return start
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines) + 1
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return start


def _damaged(path: Path, line: int | None, problem: str) -> SessionIndexError:
    at = f", line {line}" if line else ""
    return SessionIndexError(
        f"the session index {path}{at} is damaged: {problem}",
        hint=f"fix or move away {path} (vibebox never overwrites a damaged index)",
    )


def read_index(path: Path) -> list[SessionEntry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SessionIndexError(
            f"cannot read the session index {path}: {exc.strerror or exc}",
            hint="check its permissions",
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(path, data[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    try:
        doc = tomlkit.parse(text).unwrap()
    # tomlkit before 0.15.3 raises KeyAlreadyPresent for a key set twice, later ParseError.
    except (ParseError, KeyAlreadyPresent) as exc:
        line = exc.line if isinstance(exc, ParseError) else None
        raise _damaged(path, line, f"not valid TOML ({str(exc).split(' at line ')[0]})") from None
    lines = _Lines(text)
    unknown = [key for key in doc if key != "sessions"]
    if unknown:
        # Other top-level keys would be lost on the next write; refuse rather than drop them.
        raise _damaged(path, None, f"unexpected top-level key {unknown[0]!r}")
    raw_sessions = doc.get("sessions", [])
    if not isinstance(raw_sessions, list) or not all(isinstance(s, dict) for s in raw_sessions):
        raise _damaged(path, None, "'sessions' must be an array of tables ([[sessions]])")
    entries: list[SessionEntry] = []
    seen_ids: set[str] = set()
    seen_dirs: set[Path] = set()
    for number, raw in enumerate(raw_sessions):
        entry = _entry(path, lines, number, raw)
        if entry.id in seen_ids:
            raise _damaged(path, lines.of(number, "id"), f"session {entry.id} appears twice")
        if entry.directory in seen_dirs:
            raise _damaged(
                path, lines.of(number, "directory"), f"directory {entry.directory} appears twice"
            )
        seen_ids.add(entry.id)
        seen_dirs.add(entry.directory)
        entries.append(entry)
    return entries


def _entry(path: Path, lines: _Lines, number: int, raw: Mapping[str, Any]) -> SessionEntry:
    for key in CORE_KEYS:
        if key not in raw:
            raise _damaged(path, lines.of(number), f"a [[sessions]] entry has no {key!r}")
    session_id = raw["id"]
    if not isinstance(session_id, str):
        raise _damaged(path, lines.of(number, "id"), "'id' must be a string")
    try:
        validate_session_id(session_id)
    except ValueError as exc:
        raise _damaged(path, lines.of(number, "id"), str(exc)) from None
    directory = raw["directory"]
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise _damaged(
            path, lines.of(number, "directory"), "'directory' must be an absolute path string"
        )
    last_active = raw["last_active"]
    if not isinstance(last_active, datetime):
        raise _damaged(
            path,
            lines.of(number, "last_active"),
            "'last_active' must be a TOML datetime such as 2026-11-27T10:15:00Z",
        )
    if last_active.tzinfo is None:
        last_active = last_active.replace(tzinfo=UTC)  # a local datetime: read it as UTC
    extra = {k: v for k, v in raw.items() if k not in CORE_KEYS}
    return SessionEntry(session_id, Path(directory), last_active.astimezone(UTC), extra)


def _inline(value: Any) -> Any:
    """Turn plain data into tomlkit items that fit on one line (tables become inline)."""
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"table keys must be strings, not {key!r}")
            table.append(key, _inline(item))
        return table
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        array.extend(_inline(item) for item in value)
        return array
    if value is None:
        raise TypeError("TOML has no null value")
    return tomlkit.item(value)


def toml_value(value: Any) -> str:
    try:
        text = str(_inline(value).as_string())
        tomlkit.parse(f"v = {text}\n")  # what we write must read back
    except (ValueError, TypeError, ParseError) as exc:
        raise ValueError(f"cannot store {value!r} in the session index: {exc}") from None
    return text


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_index(entries: list[SessionEntry]) -> str:
    """Return the index file's text for ``entries`` (the format in this module's docstring)."""
    parts = [_HEADER]
    for entry in entries:
        lines = [
            "",
            "[[sessions]]",
            f"id = {toml_value(entry.id)}",
            f"directory = {toml_value(str(entry.directory))}",
            f"last_active = {_format_time(entry.last_active)}",
        ]
        lines += [f"{k} = {toml_value(v)}" for k, v in entry.extra.items() if v is not None]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def write_index(path: Path, entries: list[SessionEntry]) -> None:
    text = render_index(entries)
    # Only one writer holds the lock, so temp files left here were left by a killed writer.
    for stale in path.parent.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        write_atomic(path, text, mode=None, durable=True)
    except OSError as exc:
        raise SessionIndexError(
            f"cannot write the session index {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable and not full",
        ) from None
