"""What a session can touch, as data: the model behind ``vibebox explain`` and ``:explain``.

It answers "what does this VM see of my machine?": the mounts (host → guest, read-only or
read-write, the implicit project mount marked), the network policy and port forwards, the
secrets the host adds to requests (names, hosts and source kinds, never a value), where
the project's files live, and, when known, the VM's state and its recent network decisions.
Callers pass the *enforced* config (:func:`vibebox_core.config.approval.enforced_config`, the
approved snapshot), never the guest-writable file; a change the file holds that nobody
approved yet is shown apart (:attr:`Explain.pending`).
Both front ends collect it with one :func:`gather` (the review of the file, the index entry,
the live state, the network log); building the model from that is a pure function
(:func:`build_explain`), so it is tested without a VM. The CLI prints
:func:`~vibebox_core.session.explain_text.render_text` or :meth:`Explain.to_dict` as JSON, the
dashboard's inspector draws the same fields its own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config.approval import Review, review
from vibebox_core.config.mounts import all_mounts
from vibebox_core.config.schema import Config, Mount, Secret
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.log import NetEvent, tail
from vibebox_core.network.logsummary import NetSummary, summary
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import provision_record
from vibebox_core.session.status import SessionStatus, session_status

#: Network decisions ``vibebox explain`` shows.
RECENT_NETWORK = 10


@dataclass(frozen=True)
class VMInfo:
    """The VM's live facts, when the caller has them.

    Attributes:
        state: e.g. ``running``, ``shut off``, ``broken``.
        ipv4: the guest's address, None when not running or not known yet.
        cpus, memory_mb: the VM's size.
        attached: how many vibebox processes are attached (None when unknown).
    """

    state: str
    ipv4: str | None
    cpus: int
    memory_mb: int
    attached: int | None = None


@dataclass(frozen=True)
class NetEventView:
    """One network decision, reduced to what explain shows (any event source fits)."""

    time: str
    host: str
    port: int | None
    verdict: str

    @classmethod
    def of(cls, event: Any) -> NetEventView:
        """Read an object with ``.time/.host/.port/.verdict`` attributes or a dict with them."""
        if isinstance(event, Mapping):
            get = event.get
        else:

            def get(key: str, default: Any = None) -> Any:
                return getattr(event, key, default)

        port = get("port")
        return cls(
            time=str(get("time", "") or ""),
            host=str(get("host", "") or ""),
            port=port if isinstance(port, int) and not isinstance(port, bool) else None,
            verdict=str(get("verdict", "") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "host": self.host, "port": self.port, "verdict": self.verdict}

    def describe(self) -> str:
        """``10:15:00  blocked  evil.example:443``."""
        clock = self.time[11:19] if len(self.time) >= 19 and self.time[10:11] == "T" else self.time
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{clock}  {self.verdict:<7}  {where}"


@dataclass(frozen=True)
class StorageItem:
    """A place the session keeps something.

    Attributes:
        label: what it is, e.g. ``"config"``.
        path: relative to the project directory when inside it, absolute otherwise.
        absolute: the full path.
        exists: whether it is there now.
    """

    label: str
    path: str
    absolute: Path
    exists: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": self.path,
            "absolute": str(self.absolute),
            "exists": self.exists,
        }


@dataclass(frozen=True)
class NetworkView:
    """The ``[network]`` policy as explain shows it."""

    mode: str
    entries: tuple[str, ...]
    ports: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One sentence saying what the mode means with these entries."""
        if self.mode == "allowlist":
            if not self.entries:
                return "allowlist: no domain is reachable"
            return "allowlist: only these domains (and their subdomains) are reachable"
        if not self.entries:
            return "blocklist: every domain is reachable"
        return "blocklist: every domain except these (and their subdomains) is reachable"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "entries": list(self.entries), "ports": list(self.ports)}


@dataclass(frozen=True)
class SecretView:
    """An approved ``[[secrets]]`` entry as explain shows it: never its value, and of its
    source only the kind (a file's path or a command line stays out of what is shown).

    Attributes:
        name: the guest variable that holds the placeholder.
        hosts: the domains whose requests carry the value (and their subdomains).
        source_kind: ``"env"``, ``"file"`` or ``"command"``.
    """

    name: str
    hosts: tuple[str, ...]
    source_kind: str

    @classmethod
    def of(cls, secret: Secret) -> SecretView:
        return cls(secret.name, tuple(secret.hosts), secret.source_kind)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hosts": list(self.hosts), "source_kind": self.source_kind}

    def describe(self) -> str:
        """``GITHUB_TOKEN  from env, sent to api.github.com``."""
        return f"{self.name}  from {self.source_kind}, sent to {', '.join(self.hosts)}"


@dataclass
class Explain:
    """Everything ``:explain`` shows for one project.

    Attributes:
        project: the project directory.
        session_id: its session, None before the first start.
        mounts: project mount first, then ``[box] mounts``.
        network: mode, entries, port forwards (``"8080 → 80"``).
        secrets: the approved ``[[secrets]]`` (name, hosts, source kind; never a value).
        storage: ``vibebox.toml``, ``.vibebox/`` and the global index.
        vm: live VM facts, None when not asked for or unknown.
        recent_network: recent allowed/blocked connections, oldest first.
        network_summary: counts over the whole network log, None when not asked for.
        approval: how ``vibebox.toml`` compares with the approved snapshot: ``"approved"``,
            ``"changed"``, ``"new"`` (never approved), ``"unreadable"``, or ``""`` (not asked).
        pending: what the file asks for beyond the enforced values (not approved, not
            enforced), one :func:`~vibebox_core.config.grants.policy_diff` line each.
        pending_asks: True when a start will ask before applying :attr:`pending` (False: a
            first start approves it by itself, it grants nothing beyond the defaults).
        file_problem: why ``vibebox.toml`` is refused (empty when it is not).
        provision: ``[provision] run`` against its last run in the session (changed since,
            failed, due), None when not asked for.
    """

    project: Path
    session_id: str | None
    mounts: tuple[Mount, ...]
    network: NetworkView
    storage: tuple[StorageItem, ...]
    vm: VMInfo | None = None
    recent_network: list[NetEventView] = field(default_factory=list)
    network_summary: NetSummary | None = None
    approval: str = ""
    pending: tuple[str, ...] = ()
    pending_asks: bool = True
    file_problem: str = ""
    provision: provision_record.Status | None = None
    secrets: tuple[SecretView, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (``vibebox explain --json``)."""
        return {
            "project": str(self.project),
            "session_id": self.session_id,
            "mounts": [
                {
                    "host": str(m.host),
                    "guest": m.guest,
                    "access": "ro" if m.read_only else "rw",
                    "read_only": m.read_only,
                    "default": m.default,
                }
                for m in self.mounts
            ],
            "network": self.network.to_dict(),
            "secrets": [secret.to_dict() for secret in self.secrets],
            "storage": [item.to_dict() for item in self.storage],
            "vm": None
            if self.vm is None
            else {
                "state": self.vm.state,
                "ipv4": self.vm.ipv4,
                "cpus": self.vm.cpus,
                "memory_mb": self.vm.memory_mb,
                "attached": self.vm.attached,
            },
            "recent_network": [event.to_dict() for event in self.recent_network],
            "network_summary": None
            if self.network_summary is None
            else self.network_summary.to_dict(),
            "approval": {
                "status": self.approval,
                "pending": list(self.pending),
                "pending_asks": self.pending_asks,
                "file_problem": self.file_problem,
            },
            "provision": None if self.provision is None else self.provision.to_dict(),
        }


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
