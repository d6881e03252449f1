"""Approving a project's ``vibebox.toml`` and gating a start on it, running sessions included.

:func:`gate` decides what a cold start may use (approving a first start that grants nothing
beyond the defaults); :func:`approve` records what the file says now. Both copy the approved
values into the session's index entry, where the running supervisor and the port forwards read
them, and :func:`applies` says when an approved change reaches a running session. What was
approved and how the file compares with it is :mod:`vibebox_core.config.approval`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Literal

from vibebox_core.config import grants
from vibebox_core.config.approval import review
from vibebox_core.config.grants import policy_digest
from vibebox_core.config.load import apply_env
from vibebox_core.config.schema import Config
from vibebox_core.config.snapshot import config_from_values, read_approved, write_snapshot
from vibebox_core.errors import VibeboxError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.follow import change_applies
from vibebox_core.paths import ProjectPaths

When = Literal["live", "next start"]


def sync_index(project: ProjectPaths, values: Mapping[str, Any], session_id: str | None) -> None:
    """Copy the approved values into the session's index entry (the supervisor reads them)."""
    index = SessionIndex()
    entry = index.get(session_id) if session_id else index.find_by_directory(project.root)
    if entry is None:
        return
    if read_approved(entry.extra) != values:
        grants.record_values(index, entry.id, values)


def gate(project: ProjectPaths, session_id: str | None = None) -> Config:
    """Decide what a (cold) start may use; raise when the user must approve first.

    A project never approved whose file grants nothing beyond the defaults is approved here
    (its snapshot written). The approved values are copied into the session's index entry.

    Returns:
        The approved config, with ``$VIBEBOX_ACCEL`` applied.

    Raises:
        ConfigError: ``vibebox.toml`` is refused (bad value, symlink, FIFO, too large ...).
        PolicyNotApprovedError: a change, or a first start that grants more than the
            defaults, waits for approval; ``.check.diff`` says what.
    """
    found = review(project)
    if found.error is not None:
        raise found.error
    if found.needs_approval:
        raise found.refusal()
    assert found.file_values is not None
    snapshot = found.snapshot
    if snapshot is None:
        snapshot = write_snapshot(project, found.file_values)
    sync_index(project, snapshot.values, session_id)
    return apply_env(config_from_values(project, snapshot.values))


def applies(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> When:
    """When an approved change reaches a running session: entries live, the rest next start."""
    if old is None:
        return "next start"
    if old.get("box") != new.get("box") or old.get("supervisor") != new.get("supervisor"):
        return "next start"
    return change_applies(dict(old), dict(new))


def approve(project: ProjectPaths, *, expected: str | None = None) -> When:
    """Approve what ``vibebox.toml`` says now; return when it takes effect.

    Args:
        project: the project.
        expected: the digest the user was shown
            (:meth:`vibebox_core.config.approval.Review.check`). When the file says
            something else by now (the guest changed it again), nothing is approved.

    Raises:
        ConfigError: the file is refused.
        PolicyNotApprovedError: ``expected`` no longer matches; the error holds the new diff.
    """
    found = review(project)
    if found.error is not None:
        raise found.error
    assert found.file_values is not None
    if expected is not None and policy_digest(found.file_values) != expected:
        raise found.refusal()
    old = found.snapshot.values if found.snapshot is not None else None
    snapshot = write_snapshot(project, found.file_values)
    with contextlib.suppress(VibeboxError):
        sync_index(project, snapshot.values, None)
    return applies(old, snapshot.values)
