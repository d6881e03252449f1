"""The model of ``vibebox explain`` and ``:explain``: what a session can touch, as plain data.

:class:`Explain` and its parts (the VM, the mounts and storage, the network view with its recent
decisions, the secrets by name, hosts and source kind) are built by
:func:`vibebox_core.session.explain.build_explain`; the CLI prints them with
:func:`~vibebox_core.session.explain_text.render_text` or as JSON (:meth:`Explain.to_dict`), the
dashboard's inspector draws the same fields its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vibebox_core.config.schema import Mount, Secret
from vibebox_core.network.logsummary import NetSummary
from vibebox_core.session import provision_record


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
