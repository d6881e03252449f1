"""What a session can touch, as data: the model behind ``vibebox explain`` and ``:explain``.

It answers "what does this VM see of my machine?": the mounts (host → guest, read-only or
read-write, the implicit project mount marked), the network policy and port forwards, the
secrets the host adds to requests (names, hosts and source kinds, never a value), where
the project's files live, and, when known, the VM's state and its recent network decisions.
Callers pass the *enforced* config (:func:`vibebox_core.config.approval.enforced_config`, the
approved snapshot), never the guest-writable file; a change the file holds that nobody
approved yet is shown apart (``Explain.pending``).
Both front ends collect it with one :func:`gather` (the review of the file, the index entry,
the live state, the network log); building the model from that is a pure function
(:func:`build_explain`, the model in :mod:`vibebox_core.session.explain_model`), so it is
tested without a VM. The CLI prints :func:`~vibebox_core.session.explain_text.render_text` or
the model's ``to_dict()`` as JSON, the dashboard's inspector draws the same fields its own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config.approval import Review, review
from vibebox_core.config.mounts import all_mounts
from vibebox_core.config.schema import Config
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.log import NetEvent, tail
from vibebox_core.network.logsummary import NetSummary, summary
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import provision_record
from vibebox_core.session.explain_model import (
    Explain,
    NetEventView,
    NetworkView,
    SecretView,
    StorageItem,
    VMInfo,
)
from vibebox_core.session.status import SessionStatus, session_status

#: Network decisions ``vibebox explain`` shows.
RECENT_NETWORK = 10


def _relative(path: Path, root: Path, *, directory: bool = False) -> str:
    """``path`` relative to the project when inside it (directories end in ``/``)."""
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return text + "/" if directory else text


def build_explain(
    project: ProjectPaths,
    config: Config,
    *,
    session_id: str | None,
    vm: VMInfo | None = None,
    recent_network: Sequence[Any] = (),
    network_summary: NetSummary | None = None,
    review: Review | None = None,
    provision: provision_record.Status | None = None,
) -> Explain:
    """Build the explain model for one project.

    Args:
        project: the project's paths.
        config: its validated config.
        session_id: its session, None when it has none yet.
        vm: live VM facts when the caller has them.
        recent_network: network decisions (objects with ``time``, ``host``, ``port`` and
            ``verdict`` attributes, e.g. ``log.NetEvent``, or dicts with those keys).
        network_summary: counts over the whole log
            (:func:`vibebox_core.network.logsummary.summary`).
        review: the file against the approved snapshot
            (:func:`~vibebox_core.config.approval.review`); its pending change is shown apart
            from ``config``, which is what is enforced.
        provision: ``[provision] run`` against its last run
            (:func:`vibebox_core.session.provision_record.status`).
    """
    network = NetworkView(
        mode=config.network.mode,
        entries=config.network.entries,
        ports=tuple(
            str(p.host_port) if p.host_port == p.guest_port else f"{p.host_port} → {p.guest_port}"
            for p in config.network.ports
        ),
    )
    storage = (
        StorageItem(
            "config",
            _relative(project.config, project.root),
            project.config,
            project.config.exists(),
        ),
        StorageItem(
            "cache (disk, keys, logs)",
            _relative(project.cache, project.root, directory=True),
            project.cache,
            project.cache.is_dir(),
        ),
        StorageItem(
            "session index",
            str(paths.sessions_index_path()),
            paths.sessions_index_path(),
            paths.sessions_index_path().exists(),
        ),
    )
    return Explain(
        project=project.root,
        session_id=session_id,
        mounts=all_mounts(config, project),
        network=network,
        storage=storage,
        vm=vm,
        recent_network=[NetEventView.of(event) for event in recent_network],
        network_summary=network_summary,
        approval=review.status if review is not None else "",
        pending=review.diff if review is not None and review.status in _PENDING else (),
        pending_asks=review.needs_approval if review is not None else True,
        file_problem=_problem(review.error) if review is not None and review.error else "",
        provision=provision,
        secrets=tuple(SecretView.of(secret) for secret in config.secrets),
    )


def _problem(error: VibeboxError) -> str:
    return error.message + (f" ({error.hint})" if error.hint else "")


_PENDING = ("changed", "new")


@dataclass(frozen=True)
class Gathered:
    """What :func:`gather` found for one project: the explain model and the facts behind it.

    Attributes:
        explain: the model both front ends show.
        review: ``vibebox.toml`` against the approved snapshot; ``review.error`` says why the
            file is refused (the model then shows the approved values).
        config: the enforced config (the approved snapshot, never the guest-writable file).
        entry: the project's session, None before the first start.
        status: its live state, None when it has no session.
        events: the network log's last decisions, oldest first, as the log has them (with
            their source and reason).
    """

    explain: Explain
    review: Review
    config: Config
    entry: SessionEntry | None
    status: SessionStatus | None
    events: tuple[NetEvent, ...]


def gather(
    project: ProjectPaths,
    *,
    index: SessionIndex | None = None,
    hypervisor: Hypervisor | None = None,
    recent: int = RECENT_NETWORK,
    log_summary: bool = False,
    refuse_unreadable: bool = False,
) -> Gathered:
    """Collect what ``vibebox explain`` and the inspector show for one project (blocking).

    Reads the file's review against the approved snapshot, the project's index entry, the
    session's live state (never raises for a broken session), the last ``recent`` network
    decisions (an unreadable log shows none) and, with ``log_summary`` and a session, counts over
    the whole network log.

    Args:
        project: the project's paths.
        index: the session index to look the project up in (default: the global one).
        hypervisor: where the VM state comes from (default: libvirt at the approved URI).
        recent: how many network decisions to keep.
        log_summary: also count every decision the network log keeps.
        refuse_unreadable: raise a refused ``vibebox.toml``'s error before anything else is
            read, instead of showing the approved values with the problem.

    Raises:
        ConfigError: ``vibebox.toml`` is refused and ``refuse_unreadable`` is set.
        SessionIndexError: the index cannot be read.
    """
    found = review(project)
    if refuse_unreadable and found.error is not None:
        raise found.error
    config = found.enforced_config()
    entry = (index if index is not None else SessionIndex()).find_by_directory(project.root)
    status: SessionStatus | None = None
    vm: VMInfo | None = None
    if entry is not None:
        status = session_status(entry, hypervisor)
        vm = VMInfo(
            status.state, status.ipv4, config.box.cpus, config.box.memory_mb, status.attached
        )
    events: tuple[NetEvent, ...] = ()
    with contextlib.suppress(OSError, ValueError):
        events = tuple(tail(project.network_log, recent))
    explain = build_explain(
        project,
        config,
        session_id=entry.id if entry else None,
        vm=vm,
        recent_network=events,
        network_summary=summary(project.network_log) if log_summary and entry else None,
        review=found,
        provision=provision_record.status(project, entry.id if entry else None),
    )
    return Gathered(explain, found, config, entry, status, events)
