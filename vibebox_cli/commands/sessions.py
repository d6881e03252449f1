"""``vibebox list``, ``vibebox delete`` and ``vibebox explain``: sessions from the command line.

Thin: the data lives in the index and :mod:`vibebox_core.session.explain` (its
:func:`~vibebox_core.session.explain.gather` is what the dashboard's inspector shows too). Live
VM facts (state, attached count) come from :mod:`vibebox_core.session.status`, teardown from
:mod:`vibebox_core.session.teardown`; without the live facts (:func:`_sessionctl` answers None,
as tests make it) ``vibebox list`` shows the index alone.

Directories, states, reasons and the explain text are guest-derived (the project names its own
directory; host names in the network log come from the guest): every one is printed through
:func:`~vibebox_core.sanitize.clean`, so no control character or escape sequence reaches the
terminal raw. ``--json`` output is escaped by :func:`json.dumps` (ASCII only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from vibebox_cli import console
from vibebox_core.errors import (
    ConfigError,
    SessionIndexError,
    SessionNotFoundError,
    VibeboxError,
)
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean, clean_lines
from vibebox_core.session import status as session_status
from vibebox_core.session.explain import gather
from vibebox_core.session.explain_text import render_text
from vibebox_core.session.teardown import delete_session


def register(subparsers: Any) -> None:
    """Add ``list``, ``delete`` and ``explain`` to the CLI."""
    listing = subparsers.add_parser(
        "list",
        help="list every session",
        description="List every session: id, directory, state, attached vibebox processes "
        "and when it was last used.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list)

    delete = subparsers.add_parser(
        "delete",
        help="delete a session (VM, disk, keys, .vibebox/)",
        description="Delete a session: stop its VM, remove its domain, the project's "
        ".vibebox/ directory (disk, keys, logs) and its index entry. vibebox.toml and "
        "the project's files are kept.",
    )
    delete.add_argument("session", help="session id (or a unique prefix of at least 4 chars)")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.add_argument(
        "--force",
        action="store_true",
        help="remove the files and the index entry even when the VM cannot be torn down "
        "(e.g. libvirt is unreachable); the domain may then be left behind",
    )
    delete.set_defaults(handler=run_delete)

    explain = subparsers.add_parser(
        "explain",
        help="show what a project's VM can reach: mounts, network, storage",
        description="Show what the project's VM can reach: mounts (host → guest, ro/rw), "
        "the network policy and port forwards, where its files live, and the VM's state.",
    )
    explain.add_argument(
        "path", nargs="?", metavar="DIR", help="project directory (default: the current one)"
    )
    explain.add_argument("--directory", "-C", metavar="DIR", help="same as DIR")
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.set_defaults(handler=run_explain)


# ---------------------------------------------------------------------------------------------
# Live state (vibebox_core.session.status)


def _sessionctl() -> tuple[Any, str]:
    """The live state's module, or None and why not (then the index is listed alone)."""
    return session_status, ""


@dataclass(frozen=True)
class _Row:
    entry: SessionEntry
    state: str
    attached: int | None
    reason: str = ""
    ipv4: str | None = None


def _row(status: Any) -> _Row:
    attached = getattr(status, "attached", None)
    return _Row(
        entry=status.entry,
        state=str(getattr(status, "state", "unknown")),
        attached=attached if isinstance(attached, int) else None,
        reason=str(getattr(status, "reason", "") or ""),
        ipv4=getattr(status, "ipv4", None),
    )


def _rows(index: SessionIndex) -> list[_Row]:
    sessionctl, problem = _sessionctl()
    if sessionctl is not None:
        return [_row(status) for status in sessionctl.list_statuses(index)]
    return [_Row(entry, "unknown", None, problem) for entry in index.entries()]


def _notice_pruned(index: SessionIndex) -> None:
    for entry in index.last_pruned:
        print(
            f"vibebox: dropped session {clean(entry.id)} ({clean(entry.directory)}): its "
            ".vibebox/ is gone",
            file=sys.stderr,
        )


def _time(entry: SessionEntry) -> str:
    return entry.last_active.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# list


def run_list(args: argparse.Namespace) -> int:
    """Print every session (a table, or JSON with ``--json``)."""
    index = SessionIndex()
    rows = _rows(index)
    _notice_pruned(index)
    if args.json:
        data = [
            {
                "id": row.entry.id,
                "directory": str(row.entry.directory),
                "state": row.state,
                "attached": row.attached,
                "last_active": _time(row.entry),
                "reason": row.reason,
                "ipv4": row.ipv4,
            }
            for row in rows
        ]
        print(json.dumps(data, indent=2))
        return 0
    if not rows:
        print("no sessions yet: run `vibebox` in a project directory to create one")
        return 0
    table = [("ID", "DIRECTORY", "STATE", "ATTACHED", "LAST ACTIVE (UTC)")]
    for row in rows:
        attached = "-" if row.attached is None else str(row.attached)
        last = row.entry.last_active.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        table.append(
            (clean(row.entry.id), clean(row.entry.directory), clean(row.state), attached, last)
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    for row in rows:
        if row.reason and row.state in ("broken", "unknown"):
            print(f"{clean(row.entry.id[:8])}: {clean(row.state)}: {clean(row.reason)}")
    return 0


# ---------------------------------------------------------------------------------------------
# delete


def _confirm(entry: SessionEntry) -> bool:
    prompt = (
        f"Delete session {clean(entry.id)}?\n"
        f"  This stops its VM and removes {clean(entry.directory / '.vibebox')} "
        "(instance disk, keys, logs).\n"
        "  vibebox.toml and your project files are kept. [y/N] "
    )
    return console.ask_yes_no(prompt)


def _remove_cache(entry: SessionEntry) -> None:
    cache = entry.project.cache
    try:
        if cache.is_symlink() or cache.is_file():
            cache.unlink()
        elif cache.is_dir():
            # Another `vibebox delete` of this session may be removing it at the same time:
            # what vanishes meanwhile is fine, what stays is an error.
            shutil.rmtree(cache, ignore_errors=True)
            if cache.exists():
                shutil.rmtree(cache)
    except FileNotFoundError:
        pass  # removed meanwhile by that other delete
    except OSError as exc:
        raise SessionIndexError(
            f"cannot remove {cache}: {exc.strerror or exc}",
            hint=f"remove it by hand (`rm -rf {cache}`); that deletes the session",
        ) from None


def run_delete(args: argparse.Namespace) -> int:
    """Delete one session after asking (``--yes`` skips; no terminal means no)."""
    index = SessionIndex()
    try:
        entry = index.resolve(args.session)
    finally:
        _notice_pruned(index)
    if not args.yes:
        if not sys.stdin.isatty():
            raise SessionIndexError(
                f"not deleting session {entry.id}: no terminal to ask for confirmation",
                hint=f"run `vibebox delete {entry.id} --yes` to delete without asking",
            )
        if not _confirm(entry):
            print("not deleted")
            return 1
    try:
        delete_session(entry)  # stops the VM, undefines domain + network, removes files, entry
    except VibeboxError as exc:
        if not args.force:
            raise
        print(f"vibebox: warning: VM teardown failed: {clean(exc.message)}", file=sys.stderr)
        print(
            f"vibebox: warning: its libvirt domain may be left (virsh undefine it: the "
            f"domain's UUID is {entry.id}); removing the session anyway",
            file=sys.stderr,
        )
    # Whatever the teardown did or did not do, the session's files and entry go now.
    _remove_cache(entry)
    with contextlib.suppress(SessionNotFoundError):
        index.remove(entry.id)
    print(f"deleted session {clean(entry.id)} ({clean(entry.directory)})")
    return 0


# ---------------------------------------------------------------------------------------------
# explain


def run_explain(args: argparse.Namespace) -> int:
    """Explain the project in DIR (default: the current directory)."""
    directory = args.directory or args.path or os.getcwd()
    project = ProjectPaths.for_directory(directory)
    if not project.root.is_dir():
        raise ConfigError(
            f"{project.root} is not a directory",
            hint="run `vibebox explain` in a project directory, or pass one",
        )
    # What is enforced (the approved snapshot), with the file's unapproved change apart; a
    # refused vibebox.toml is one clear error.
    index = SessionIndex()
    explain = gather(project, index=index, log_summary=True, refuse_unreadable=True).explain
    _notice_pruned(index)
    if args.json:
        print(json.dumps(explain.to_dict(), indent=2))
    else:
        text = render_text(explain)
        # Host names, paths and mount specs in it come from the guest and the project file.
        print("".join(f"{line}\n" for line in clean_lines(text.rstrip("\n"), limit=None)), end="")
    return 0
