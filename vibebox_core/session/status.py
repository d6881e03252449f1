"""Sessions seen from outside: their live state (``vibebox list``, the session browser).

``vibebox list``, ``vibebox explain`` and the dashboard's session browser read states here.
None of it attaches to a session or connects over SSH, which is what
:mod:`vibebox_core.session.start` (bringing a session up) is about; this module does not even
import asyncssh. Taking sessions down is :mod:`vibebox_core.session.teardown`.

Listing never fails because one session is broken: that session gets state ``broken`` and the
reason. Libvirt connections are shared per URI
(:func:`~vibebox_core.session.hypervisors.shared_hypervisor`), so the dashboard's once-a-second
status checks do not open one each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vibebox_core import paths
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor import names
from vibebox_core.hypervisor.base import Hypervisor, VMStatus
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.session.hypervisors import libvirt_uri, project_hypervisor, shared_hypervisor
from vibebox_core.supervisor import client


@dataclass(frozen=True)
class SessionStatus:
    """One session as ``vibebox list`` and the session browser show it.

    Attributes:
        entry: the index entry.
        state: ``running``, ``shut off``, ``starting``, ``stopping`` or ``broken``.
        reason: why it is ``broken`` (or a note for other states); empty when all is well.
        attached: how many vibebox processes are attached (0 when no supervisor runs).
        ipv4: the guest's address when running (from ``.vibebox/ipv4``).
        policy: the supervisor's word on the network policy, ``{"applied": "live" | "next
            start", "pending": [lines]}``; None when no supervisor runs (or it has no network).
    """

    entry: SessionEntry
    state: str
    reason: str = ""
    attached: int = 0
    ipv4: str | None = None
    policy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (``vibebox list --json``)."""
        return {
            "id": self.entry.id,
            "directory": str(self.entry.directory),
            "state": self.state,
            "reason": self.reason,
            "attached": self.attached,
            "ipv4": self.ipv4,
            "last_active": self.entry.last_active.isoformat(),
        }


def _status_from(entry: SessionEntry, vm_status: VMStatus) -> SessionStatus:
    """Combine the hypervisor's view with the supervisor's count (never raises)."""
    project = entry.project
    if not project.cache.is_dir():
        return SessionStatus(
            entry, "broken", f"{project.cache} is gone (`vibebox delete {entry.id[:8]}`)"
        )
    answer = client.status_sync(paths.supervisor_socket_path(entry.id), timeout=1.0)
    attached = int(answer.get("attached", 0)) if answer else 0
    state: str = vm_status.state
    reason = vm_status.reason
    if state == "missing":
        state, reason = "shut off", "no VM defined yet (`vibebox` in the project creates it)"
    if answer is not None and answer.get("phase") == "stopping" and state == "running":
        state = "stopping"
    ipv4: str | None = None
    if state == "running":
        ipv4 = project.recorded_ipv4()
    policy = answer.get("policy") if answer else None
    return SessionStatus(
        entry, state, reason, attached, ipv4, policy if isinstance(policy, dict) else None
    )


def session_status(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> SessionStatus:
    """The live state of one session. Never raises: a problem is state ``broken`` with a reason.

    Blocking (libvirt and a socket); call it from a thread in an event loop.
    """
    try:
        hv = project_hypervisor(entry.project, hypervisor)
        return _status_from(entry, hv.status(entry.id))
    except VibeboxError as exc:
        reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return SessionStatus(entry, "broken", reason)
    except Exception as exc:  # listing must never fail because of one session
        return SessionStatus(entry, "broken", f"{type(exc).__name__}: {exc}")


def list_statuses(
    index: SessionIndex | None = None, hypervisor: Hypervisor | None = None
) -> list[SessionStatus]:
    """Every session in the index with its live state (one libvirt listing per URI).

    Raises:
        SessionIndexError: the index itself cannot be read (the sessions can't be listed).
    """
    entries = (index or SessionIndex()).entries()
    by_uri: dict[str, Hypervisor] = {}
    listings: dict[str, dict[str, VMStatus] | VibeboxError] = {}
    result: list[SessionStatus] = []
    for entry in entries:
        if hypervisor is not None:
            uri, hv = "given", hypervisor
        else:
            uri = libvirt_uri(entry.project)
            hv = by_uri.setdefault(uri, shared_hypervisor(uri))
        if uri not in listings:
            try:
                listings[uri] = hv.statuses()
            except VibeboxError as exc:
                listings[uri] = exc
        listing = listings[uri]
        if isinstance(listing, VibeboxError):
            reason = listing.message + (f" ({listing.hint})" if listing.hint else "")
            result.append(SessionStatus(entry, "broken", reason))
            continue
        try:
            found = listing.get(names.canonical_session_id(entry.id), VMStatus("missing"))
            result.append(_status_from(entry, found))
        except Exception as exc:
            result.append(SessionStatus(entry, "broken", str(exc)))
    return result
