"""The global session index, ``~/.vibebox/sessions.toml``: which directory has which session.

Other tools may read the index, so its format is fixed (DESIGN §2): one ``[[sessions]]`` table
per session with ``id`` (a UUIDv7), ``directory`` (absolute) and ``last_active`` (a UTC TOML
datetime), plus any keys other parts of vibebox keep there (e.g. the approved policy), which
are carried through every write unchanged.

Many vibebox processes use the index at once, so every operation runs under an exclusive
``fcntl`` lock on a separate lock file and every write is atomic (temp file in the same
directory, fsync, rename, fsync of the directory): a reader never sees half a file and a
writer killed at any moment leaves either the old or the new index. A damaged index is
reported with its file and line and never overwritten.

The session id is also written to ``<project>/.vibebox/session-id``. That makes the cache
directory the session's anchor: a project moved elsewhere is recognised by its id (its entry
follows it), and an entry whose ``.vibebox/`` is gone is dropped by every read and reported in
:attr:`SessionIndex.last_pruned` so commands can say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomlkit
import uuid_utils
from tomlkit.exceptions import ParseError

from vibebox_core import paths
from vibebox_core.config.projectfile import read_bounded_text
from vibebox_core.errors import ConfigError, SessionIndexError, SessionNotFoundError
from vibebox_core.paths import ProjectPaths
from vibebox_core.share import pins as mountpin

#: Keys every entry has; everything else in an entry is kept in ``SessionEntry.extra``.
CORE_KEYS = ("id", "directory", "last_active")

_HEADER = "# vibebox session index: one [[sessions]] table per session. Written by vibebox.\n"
_TMP_PREFIX = ".sessions.toml."
_TMP_SUFFIX = ".tmp"


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
    try:  # a regular file of a few bytes only: never a symlink, FIFO or device (projectfile)
        text = read_bounded_text(project.session_id, limit=256).strip()
    except (OSError, ConfigError):
        return None
    try:
        return validate_session_id(text)
    except ValueError:
        return None


def utc_now() -> datetime:
    """Now, in UTC, to the second (the index stores whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


class SessionIndex:
    """The global session index.

    Every method reads the file afresh under the lock, so several processes (and several
    ``SessionIndex`` objects) can use it at once.

    Args:
        path: the index file; defaults to :func:`vibebox_core.paths.sessions_index_path`. The
            lock file sits next to it (``sessions.lock``).

    Attributes:
        last_pruned: the entries the last read dropped because their ``.vibebox/`` is gone.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else paths.sessions_index_path()
        self.lock_path = self.path.with_name(paths.SESSIONS_LOCK)
        self.last_pruned: list[SessionEntry] = []

    # -- reading -------------------------------------------------------------------------------

    def entries(self) -> list[SessionEntry]:
        """Return every session in index order; entries whose ``.vibebox/`` is gone are dropped.

        Raises:
            SessionIndexError: the index is damaged (file and line in the message).
        """
        with self._locked() as state:
            return list(state.entries)

    def get(self, session_id: str) -> SessionEntry:
        """Return the session with this exact id.

        Raises:
            SessionNotFoundError: no such session.
        """
        with self._locked() as state:
            return _find_id(state.entries, session_id, self.path)

    def resolve(self, id_or_prefix: str) -> SessionEntry:
        """Return the session whose id is ``id_or_prefix`` or starts with it (at least 4 chars).

        Raises:
            SessionNotFoundError: nothing matches.
            SessionIndexError: the prefix matches more than one session.
        """
        wanted = id_or_prefix.strip().lower()
        with self._locked() as state:
            exact = [e for e in state.entries if e.id == wanted]
            if exact:
                return exact[0]
            found = [e for e in state.entries if len(wanted) >= 4 and e.id.startswith(wanted)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(e.id for e in found)
            raise SessionIndexError(
                f"{id_or_prefix!r} matches {len(found)} sessions: {ids}",
                hint="give more of the id",
            )
        raise SessionNotFoundError(
            f"no session {id_or_prefix!r} in {self.path}",
            hint="`vibebox list` shows the sessions and their ids",
        )

    def find_by_directory(self, directory: str | os.PathLike[str]) -> SessionEntry | None:
        """Return the session of a project directory, or None.

        A project that was moved here (its ``.vibebox/session-id`` names a session recorded
        for another directory, whose ``.vibebox/`` no longer holds that id) is recognised and
        its entry updated to the new directory.
        """
        project = ProjectPaths.for_directory(directory)
        with self._locked() as state:
            return self._reconcile(state, project)

    # -- writing -------------------------------------------------------------------------------

    def ensure(self, directory: str | os.PathLike[str]) -> SessionEntry:
        """Return the session of ``directory``, creating one when there is none.

        Recognises a moved project (see :meth:`find_by_directory`); a project whose
        ``.vibebox/session-id`` holds an id the index no longer knows gets that id back.
        """
        project = ProjectPaths.for_directory(directory)
        with self._locked() as state:
            entry = self._reconcile(state, project)
            if entry is not None:
                return entry
            return self._create(state, project, reuse_id=True)

    def create(self, directory: str | os.PathLike[str]) -> SessionEntry:
        """Create a new session (a new UUIDv7) for a directory that has none.

        Writes ``.vibebox/session-id`` and a ``.vibebox/.gitignore`` that ignores everything.

        Raises:
            SessionIndexError: the directory does not exist or already has a session.
        """
        project = ProjectPaths.for_directory(directory)
        with self._locked() as state:
            existing = self._reconcile(state, project)
            if existing is not None:
                raise SessionIndexError(
                    f"{project.root} already has session {existing.id}",
                    hint=f"delete it first with `vibebox delete {existing.id}`",
                )
            return self._create(state, project, reuse_id=False)

    def touch(self, session_id: str, when: datetime | None = None) -> None:
        """Set a session's ``last_active`` to now (or ``when``).

        Raises:
            SessionNotFoundError: no such session.
        """
        stamp = (when or utc_now()).astimezone(UTC).replace(microsecond=0)
        with self._locked() as state:
            entry = _find_id(state.entries, session_id, self.path)
            state.replace(entry, _with(entry, last_active=stamp))

    def remove(self, session_id: str) -> None:
        """Remove a session's entry (its files are the caller's business).

        Raises:
            SessionNotFoundError: no such session.
        """
        with self._locked() as state:
            entry = _find_id(state.entries, session_id, self.path)
            state.entries.remove(entry)
            state.dirty = True

    def set_extra(self, session_id: str, key: str, value: Any) -> None:
        """Store an extra key in a session's entry (``None`` removes it).

        Args:
            session_id: the session.
            key: a bare TOML key (letters, digits, ``_``, ``-``), not one of :data:`CORE_KEYS`.
            value: any value TOML can hold (str, int, float, bool, datetime, list, dict).

        Raises:
            SessionNotFoundError: no such session.
            ValueError: the key is reserved or not a bare key, or the value cannot be stored.
        """
        if key in CORE_KEYS or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise ValueError(f"{key!r} cannot be used as an extra session key")
        if value is not None:
            _toml_value(value)  # raises ValueError before anything is written
        with self._locked() as state:
            entry = _find_id(state.entries, session_id, self.path)
            extra = dict(entry.extra)
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
            state.replace(entry, _with(entry, extra=extra))

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_State]:
        """Hold the lock, read the index (pruning), yield it, write it back if it changed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SessionIndexError(
                f"cannot open the session index lock {self.lock_path}: {exc.strerror or exc}",
                hint=f"check that {self.path.parent} is writable (VIBEBOX_HOME moves it)",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = _read_index(self.path)
            kept = [e for e in entries if _cache_exists(e)]
            pruned = [e for e in entries if not _cache_exists(e)]
            if pruned:
                # Persist the pruning on its own: it stands even if the operation fails.
                _write_index(self.path, kept)
            state = _State(list(kept))
            self.last_pruned = pruned
            yield state
            if state.dirty:
                _write_index(self.path, state.entries)
        finally:
            os.close(fd)  # releases the flock

    def _reconcile(self, state: _State, project: ProjectPaths) -> SessionEntry | None:
        """Find the entry of ``project``, following a moved project via its session-id file."""
        stored_id = read_session_id_file(project)
        by_dir = next((e for e in state.entries if e.directory == project.root), None)
        if by_dir is not None:
            if stored_id is None and project.cache.is_dir():
                _write_cache_files(project, by_dir.id)  # session-id lost: put it back
            if stored_id is None or stored_id == by_dir.id:
                return by_dir
            # The directory's .vibebox/ now names another session (e.g. a project copied over
            # this one): believe the cache, it is what the VM's disk and keys belong to.
            state.entries.remove(by_dir)
            state.dirty = True
            self.last_pruned.append(by_dir)
        if stored_id is None:
            return None
        by_id = next((e for e in state.entries if e.id == stored_id), None)
        if by_id is None:
            # The move left the old directory without .vibebox/, so this read pruned the
            # entry; take it back (with its extra keys, e.g. the approved policy).
            by_id = next((e for e in self.last_pruned if e.id == stored_id), None)
            if by_id is None:
                return None
            self.last_pruned.remove(by_id)
            state.entries.append(by_id)
        if read_session_id_file(by_id.project) == stored_id and by_id.directory != project.root:
            # Both directories hold the same id: this one is a copy, not the original.
            return None
        moved = _with(by_id, directory=project.root)
        state.replace(by_id, moved)
        return moved

    def _create(self, state: _State, project: ProjectPaths, *, reuse_id: bool) -> SessionEntry:
        if not project.root.is_dir():
            raise SessionIndexError(
                f"project directory {project.root} does not exist",
                hint="create it first, or run vibebox in an existing directory",
            )
        session_id = read_session_id_file(project) if reuse_id else None
        if session_id is None or any(e.id == session_id for e in state.entries):
            session_id = new_session_id()
        _write_cache_files(project, session_id)
        entry = SessionEntry(session_id, project.root, utc_now(), {})
        state.entries.append(entry)
        state.dirty = True
        return entry


@dataclass
class _State:
    entries: list[SessionEntry]
    dirty: bool = False

    def replace(self, old: SessionEntry, new: SessionEntry) -> None:
        self.entries[self.entries.index(old)] = new
        self.dirty = True


def _with(entry: SessionEntry, **changes: Any) -> SessionEntry:
    values: dict[str, Any] = {
        "id": entry.id,
        "directory": entry.directory,
        "last_active": entry.last_active,
        "extra": entry.extra,
    }
    values.update(changes)
    return SessionEntry(**values)


def _find_id(entries: list[SessionEntry], session_id: str, path: Path) -> SessionEntry:
    for entry in entries:
        if entry.id == session_id:
            return entry
    raise SessionNotFoundError(
        f"no session {session_id!r} in {path}",
        hint="`vibebox list` shows the sessions and their ids",
    )


def _cache_exists(entry: SessionEntry) -> bool:
    return entry.project.cache.is_dir()


def _write_cache_files(project: ProjectPaths, session_id: str) -> None:
    mountpin.check_cache(project.cache)  # a cloned repository's .vibebox symlink: refused
    try:
        project.cache.mkdir(exist_ok=True)
        gitignore = project.cache / paths.CACHE_GITIGNORE
        if not gitignore.exists():
            gitignore.write_text("# vibebox's per-project cache; never commit it.\n*\n")
        _atomic_write(project.session_id, session_id + "\n")
    except OSError as exc:
        raise SessionIndexError(
            f"cannot write {project.session_id}: {exc.strerror or exc}",
            hint=f"check that {project.root} is writable",
        ) from None


# ---------------------------------------------------------------------------------------------
# The file


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


def _read_index(path: Path) -> list[SessionEntry]:
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
    except ParseError as exc:
        raise _damaged(
            path, exc.line, f"not valid TOML ({str(exc).split(' at line ')[0]})"
        ) from None
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


def _toml_value(value: Any) -> str:
    try:
        text = str(_inline(value).as_string())
        tomlkit.parse(f"v = {text}\n")  # what we write must read back
    except (ValueError, TypeError, ParseError) as exc:
        raise ValueError(f"cannot store {value!r} in the session index: {exc}") from None
    return text


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_index(entries: list[SessionEntry]) -> str:
    """Return the index file's text for ``entries`` (the exact DESIGN §2 format)."""
    parts = [_HEADER]
    for entry in entries:
        lines = [
            "",
            "[[sessions]]",
            f"id = {_toml_value(entry.id)}",
            f"directory = {_toml_value(str(entry.directory))}",
            f"last_active = {_format_time(entry.last_active)}",
        ]
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.extra.items() if v is not None]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _write_index(path: Path, entries: list[SessionEntry]) -> None:
    text = render_index(entries)
    # Only one writer holds the lock, so temp files left here were left by a killed writer.
    for stale in path.parent.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        _atomic_write(path, text, prefix=_TMP_PREFIX)
    except OSError as exc:
        raise SessionIndexError(
            f"cannot write the session index {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable and not full",
        ) from None


def _atomic_write(path: Path, text: str, *, prefix: str | None = None) -> None:
    """Write through a temp file in the same directory, fsync it, rename, fsync the directory."""
    tmp = path.with_name(f"{prefix or '.' + path.name + '.'}{os.getpid()}{_TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
