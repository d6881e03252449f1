"""Steering the network policy from the host: ``vibebox allow HOST`` / ``vibebox block HOST``.

The host user's action *is* the approval, so a steer changes what was approved, not what the
file says: the change is computed against the approved snapshot's values (the defaults before
the first approval) and written both to the snapshot and to ``vibebox.toml`` (comments and
layout kept, :func:`vibebox_core.config.edit.edit_entries`). Anything else the file holds that
nobody approved (a guest's edit) stays pending: the snapshot gets the approved values plus this
change only. The running supervisor is then asked to apply it at once (its ``reload`` op), so
the next connection sees it without waiting for the 2-s poll.

What a steer means depends on the mode: in an allowlist, allowing a host adds an entry and
blocking one removes the entries that cover it; in a blocklist it is the other way round.
Removing an entry that covers a host through a parent domain also changes every other
subdomain of it, so :class:`HostChange` names each removed entry, and the dashboard shows
:func:`plan_steer`'s words before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vibebox_core import paths
from vibebox_core.config.approval import review
from vibebox_core.config.edit import edit_entries
from vibebox_core.config.hostnames import matches, normalize_entry, parse_ip_literal
from vibebox_core.config.snapshot import default_values, read_snapshot, write_snapshot
from vibebox_core.errors import ConfigError, VibeboxError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.session.approve import sync_index
from vibebox_core.supervisor.client import reload_sync

Action = Literal["allow", "block"]
When = Literal["live", "next start"]


@dataclass(frozen=True)
class HostChange:
    """What steering one host changes in the approved ``[network] entries``.

    Attributes:
        host: the host as asked (escaped for display; the entry is :attr:`entry`).
        entry: its normal form (:func:`~vibebox_core.config.hostnames.normalize_entry`).
        added: the entry added (empty: none).
        removed: the entries removed, each the host itself or a parent domain of it.
        covered_by: the entries that already gave the host the state asked for (nothing
            added).
    """

    host: str
    entry: str
    action: Action
    added: str = ""
    removed: tuple[str, ...] = ()
    covered_by: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        """What happens, in words: ``added allowlist entry x``, ``removed blocklist entries
        a, b (unblocks a and all its subdomains, ...)``, ``already allowed ...``."""
        state = "allowed" if self.action == "allow" else "blocked"
        if self.added:
            kind = "allowlist" if self.action == "allow" else "blocklist"
            return f"added {kind} entry {self.added}"
        if self.removed:
            kind = "blocklist" if self.action == "allow" else "allowlist"
            plural = "entry" if len(self.removed) == 1 else "entries"
            verb = "unblocks" if self.action == "allow" else "blocks"
            effect = ", ".join(f"{e} and all its subdomains" for e in self.removed)
            return f"removed {kind} {plural} {', '.join(self.removed)} ({verb} {effect})"
        if self.covered_by:
            kind = "allowlist" if self.action == "allow" else "blocklist"
            plural = "entry" if len(self.covered_by) == 1 else "entries"
            return f"already {state} (by {kind} {plural} {', '.join(self.covered_by)})"
        why = "no blocklist entry covers it" if self.action == "allow" else "not in the allowlist"
        return f"already {state} ({why})"

    def proposal(self) -> str:
        """The question before the change: ``Allow api.example.com? removes blocklist entry
        example.com (unblocks example.com and all its subdomains)``."""
        verb = "Allow" if self.action == "allow" else "Block"
        words = self.describe()
        if self.changed:
            words = words.replace("added", "adds", 1).replace("removed", "removes", 1)
        return f"{verb} {self.entry}? {words}"


@dataclass(frozen=True)
class SteerPlan:
    """The change :func:`plan_steer` computed, before anything is written.

    Attributes:
        changes: one per host, in the order asked.
        values: the approved values with the change applied (what the snapshot gets).
    """

    changes: tuple[HostChange, ...]
    values: dict[str, Any]

    @property
    def changed(self) -> bool:
        return any(change.changed for change in self.changes)


@dataclass(frozen=True)
class SteerResult:
    """What :func:`steer` did.

    Attributes:
        changes: per host what happened (:meth:`HostChange.describe`).
        applies: ``"live"`` when a running supervisor took the change, ``"next start"``
            otherwise (no session runs, or nothing changed and none runs).
    """

    changes: tuple[HostChange, ...]
    applies: When

    def lines(self) -> list[str]:
        """One line per host, then when it applies (for the CLI and a notification)."""
        where = (
            "applied to the running session"
            if self.applies == "live"
            else "applies at the next start"
        )
        out = []
        for change in self.changes:
            tail = f"; {where}" if change.changed else ""
            out.append(f"{change.entry}: {change.describe()}{tail}")
        return out


def _entry_of(host: str, mode: str) -> str:
    """The normal form of a host to steer, or a ConfigError saying why it cannot be."""
    shown = clean(host, 80)
    if parse_ip_literal(host) is not None:
        names = "an allowlist" if mode == "allowlist" else "a blocklist"
        raise ConfigError(
            f"{shown} is an IP address; {names} names domains only",
            hint="allow or block the domain name the program asked for",
        )
    try:
        return normalize_entry(host)
    except ValueError as exc:
        raise ConfigError(
            f"{shown} is not a domain name that can be allowed or blocked: {clean(str(exc), 200)}",
            hint="give a host name such as api.example.com",
        ) from None


def plan_steer(values: Mapping[str, Any], hosts: Sequence[str], action: Action) -> SteerPlan:
    """Compute what allowing or blocking ``hosts`` changes in approved ``values`` (pure).

    Args:
        values: approved values (:attr:`vibebox_core.config.snapshot.Snapshot.values`, or
            :func:`~vibebox_core.config.snapshot.default_values` before the first approval).
        hosts: host names as the user or the network log gave them.
        action: ``"allow"`` or ``"block"``.

    Returns:
        The change per host and the new values (entries sorted, as canonical values are).

    Raises:
        ConfigError: a host is an IP address or not a valid domain name (nothing is planned).
    """
    new = copy.deepcopy(dict(values))
    network = new.setdefault("network", {})
    mode = str(network.get("mode", "blocklist"))
    entries: list[str] = [str(e) for e in network.get("entries", [])]
    widen = (mode == "allowlist") == (action == "allow")  # add an entry, else remove
    changes = []
    for host in hosts:
        entry = _entry_of(host, mode)
        covering = tuple(e for e in entries if matches(entry, [e]))
        if widen:
            added = "" if covering else entry
            if added:
                entries.append(added)
            changes.append(
                HostChange(clean(host, 80), entry, action, added=added, covered_by=covering)
            )
        else:
            entries = [e for e in entries if e not in covering]
            changes.append(HostChange(clean(host, 80), entry, action, removed=covering))
    network["entries"] = sorted(set(entries))
    return SteerPlan(tuple(changes), new)


def approved_values(project: ProjectPaths) -> dict[str, Any]:
    """The values a steer starts from: the approved snapshot's, the defaults before any."""
    snapshot = read_snapshot(project)
    return snapshot.values if snapshot is not None else default_values(project)


def plan(project: ProjectPaths, hosts: Sequence[str], action: Action) -> SteerPlan:
    """:func:`plan_steer` against the project's approved values (reads, never writes)."""
    return plan_steer(approved_values(project), hosts, action)


def steer(project: ProjectPaths, hosts: Sequence[str], action: Action) -> SteerResult:
    """Allow or block ``hosts`` for the project: approve the change and apply it (blocking).

    Writes ``vibebox.toml`` (only the entries change) and the approved snapshot (the approved
    values plus this change), copies the approval into the session's index entry and asks the
    running supervisor, if any, to apply it now.

    Raises:
        ConfigError: a host cannot be steered, or ``vibebox.toml`` is refused (nothing is
            written then), or the snapshot cannot be written.
    """
    found = review(project)
    if found.error is not None:
        raise ConfigError(
            f"vibebox.toml is refused, so nothing was changed: {found.error.message}",
            hint=found.error.hint or "fix vibebox.toml and try again",
        )
    planned = plan(project, hosts, action)
    if not planned.changed:
        return SteerResult(planned.changes, "next start")
    added = [c.added for c in planned.changes if c.added]
    removed = [e for c in planned.changes for e in c.removed]
    edit_entries(project, add=added, remove=removed)
    snapshot = write_snapshot(project, planned.values)
    session_id = _session_id(project)
    with contextlib.suppress(VibeboxError):
        sync_index(project, snapshot.values, session_id)
    applies = _apply_now(session_id, str(planned.values["network"].get("mode")))
    return SteerResult(planned.changes, applies)


def _session_id(project: ProjectPaths) -> str | None:
    try:
        entry = SessionIndex().find_by_directory(project.root)
    except VibeboxError:
        return None
    return entry.id if entry is not None else None


def _apply_now(session_id: str | None, mode: str) -> When:
    """Ask the session's supervisor to apply the approval now; say whether it did.

    Entries apply at once while the running session enforces the approved ``mode``; a mode
    change approved earlier that waits for the next start takes these entries with it (a
    mounts change that waits does not matter here).
    """
    if session_id is None:
        return "next start"
    answer = reload_sync(paths.supervisor_socket_path(session_id))
    if answer is None or not isinstance(answer.get("policy"), Mapping):
        return "next start"
    return "live" if answer.get("mode") == mode else "next start"
