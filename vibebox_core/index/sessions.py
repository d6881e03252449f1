"""The global session index, ``~/.vibebox/sessions.toml``: which directory has which session.

Other tools may read the index, so its format is fixed (:mod:`vibebox_core.index.file`).

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
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.errors import SessionIndexError, SessionNotFoundError
from vibebox_core.fileio import lock_file, write_atomic
from vibebox_core.index.entry import CORE_KEYS, SessionEntry, utc_now
from vibebox_core.index.file import read_index, toml_value, write_index
from vibebox_core.index.ids import new_session_id, read_session_id_file
from vibebox_core.paths import ProjectPaths
from vibebox_core.share import pins


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
            toml_value(value)  # raises ValueError before anything is written
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
            fd = lock_file(self.lock_path, mode=0o644)
        except OSError as exc:
            raise SessionIndexError(
                f"cannot open the session index lock {self.lock_path}: {exc.strerror or exc}",
                hint=f"check that {self.path.parent} is writable (VIBEBOX_HOME moves it)",
            ) from None
        try:
            entries = read_index(self.path)
            kept = [e for e in entries if _cache_exists(e)]
            pruned = [e for e in entries if not _cache_exists(e)]
            if pruned:
                # Persist the pruning on its own: it stands even if the operation fails.
                write_index(self.path, kept)
            state = _State(list(kept))
            self.last_pruned = pruned
            yield state
            if state.dirty:
                write_index(self.path, state.entries)
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
    pins.check_cache(project.cache)  # a cloned repository's .vibebox symlink: refused
    try:
        project.cache.mkdir(exist_ok=True)
        gitignore = project.cache / paths.CACHE_GITIGNORE
        if not gitignore.exists():
            gitignore.write_text("# vibebox's per-project cache; never commit it.\n*\n")
        write_atomic(project.session_id, session_id + "\n", mode=None, durable=True)
    except OSError as exc:
        raise SessionIndexError(
            f"cannot write {project.session_id}: {exc.strerror or exc}",
            hint=f"check that {project.root} is writable",
        ) from None
