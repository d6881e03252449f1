"""Sessions seen from outside: their live state, and taking them down (stop, delete, recreate).

``vibebox list``, ``vibebox explain`` and the dashboard's session browser read states here;
``vibebox stop``, ``vibebox delete`` and ``:new`` tear sessions down here. None of it attaches
to a session or connects over SSH, which is what :mod:`vibebox_core.session.start` (bringing a
session up) is about; this module does not even import asyncssh.

Listing never fails because one session is broken: that session gets state ``broken`` and the
reason. Each process shares one libvirt connection per URI (:func:`shared_hypervisor`), so the
dashboard's once-a-second status checks do not open one each time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config import approval
from vibebox_core.errors import SessionNotFoundError, SupervisorError, VibeboxError, VMError
from vibebox_core.hypervisor import domain_xml as vm
from vibebox_core.hypervisor.libvirt import Hypervisor, LibvirtHypervisor, VMStatus
from vibebox_core.index import SessionEntry, SessionIndex, read_session_id_file
from vibebox_core.paths import ProjectPaths
from vibebox_core.share import guard
from vibebox_core.supervisor import server as supervisor

# --------------------------------------------------------------------------- status


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


_hypervisors: dict[str, LibvirtHypervisor] = {}
_hypervisors_lock = threading.Lock()


def _close_shared() -> None:
    with _hypervisors_lock:
        for hv in _hypervisors.values():
            hv.close()
        _hypervisors.clear()


# Close before the interpreter tears libvirt's module down (else libvirt's __del__ complains).
atexit.register(_close_shared)


def shared_hypervisor(uri: str) -> Hypervisor:
    """One (thread-safe, lazily connecting) libvirt connection per URI for this process, so
    the dashboard's once-a-second status checks do not open a connection each time."""
    with _hypervisors_lock:
        hv = _hypervisors.get(uri)
        if hv is None:
            hv = _hypervisors[uri] = LibvirtHypervisor(uri)
        return hv


def _hypervisor_for(directory: Path, hypervisor: Hypervisor | None) -> Hypervisor:
    if hypervisor is not None:
        return hypervisor
    return shared_hypervisor(_libvirt_uri(ProjectPaths.for_directory(directory)))


def _libvirt_uri(project: ProjectPaths) -> str:
    """The project's approved libvirt URI (the default before any approval).

    Never the one ``vibebox.toml`` holds: the guest can write that file, and some URIs run
    programs on the host (:func:`vibebox_core.config.load.check_libvirt_uri`).
    """
    return approval.enforced_uri(project)


def _status_from(entry: SessionEntry, vm_status: VMStatus) -> SessionStatus:
    """Combine the hypervisor's view with the supervisor's count (never raises)."""
    project = ProjectPaths(entry.directory)
    if not project.cache.is_dir():
        return SessionStatus(
            entry, "broken", f"{project.cache} is gone (`vibebox delete {entry.id[:8]}`)"
        )
    answer = supervisor.status_sync(paths.supervisor_socket_path(entry.id), timeout=1.0)
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
        hv = _hypervisor_for(entry.directory, hypervisor)
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
            uri = _libvirt_uri(ProjectPaths(entry.directory))
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
            found = listing.get(vm.canonical_session_id(entry.id), VMStatus("missing"))
            result.append(_status_from(entry, found))
        except Exception as exc:
            result.append(SessionStatus(entry, "broken", str(exc)))
    return result


# --------------------------------------------------------------------------- stop / delete


def _session_id_of(project: ProjectPaths) -> str:
    text = read_session_id_file(project) or ""  # bounded, regular file only, validated
    if text:
        return text
    entry = SessionIndex().find_by_directory(project.root)
    if entry is None:
        raise SessionNotFoundError(
            f"{project.root} has no session", hint="`vibebox` in the directory creates one"
        )
    return entry.id


async def stop_session(
    project: ProjectPaths,
    session_id: str,
    hv: Hypervisor,
    *,
    timeout: float = supervisor.SHUTDOWN_TIMEOUT,
) -> bool:
    """Shut the session's VM down (ACPI, forced after ``timeout``); True if it was running.

    When a supervisor runs it does the shutdown (attached vibebox processes are let go) and
    exits; otherwise the VM is stopped directly.
    """
    socket_path = paths.supervisor_socket_path(session_id)
    kind, _ = await asyncio.to_thread(supervisor.probe, project, session_id)
    was_running = False
    if kind == "alive":
        was_running = True
        with contextlib.suppress(SupervisorError):
            conn = await supervisor.SupervisorConnection.open(socket_path)
            with contextlib.suppress(SupervisorError):
                await conn.request("stop", timeout=timeout + 30)
            await conn.wait_closed()
            await conn.close()
    if project.cache.is_dir():
        lock_fd = await asyncio.to_thread(supervisor._acquire, project.supervisor_lock)
    else:
        lock_fd = -1
    try:
        state = await asyncio.to_thread(hv.state, session_id)
        if state not in ("shut off", "missing"):
            was_running = True
            await asyncio.to_thread(lambda: hv.stop(session_id, timeout=timeout))
        if project.cache.is_dir():
            kind, _ = await asyncio.to_thread(supervisor.probe, project, session_id)
            if kind == "stale":
                await asyncio.to_thread(supervisor.clean_stale, project, session_id)
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    return was_running


async def stop(
    project_dir: str | os.PathLike[str], *, hypervisor: Hypervisor | None = None
) -> bool:
    """``vibebox stop``: shut the project's VM down; True if it was running."""
    project = ProjectPaths.for_directory(project_dir)
    session_id = await asyncio.to_thread(_session_id_of, project)
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(_libvirt_uri, project))
    return await stop_session(project, session_id, hv)


def delete_session(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """Delete a session: stop its VM, undefine its domain and network, remove ``.vibebox/``
    and its index entry. Blocking (called by ``vibebox delete``); missing parts are fine.

    Raises:
        VibeboxError: libvirt refused (the index entry and files are then kept, so the
            command can be repeated).
    """
    project = ProjectPaths(entry.directory)
    hv = hypervisor or shared_hypervisor(_libvirt_uri(project))
    asyncio.run(stop_session(project, entry.id, hv, timeout=10.0))
    _delete_rest(entry, hv)


async def delete(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """:func:`delete_session` from an event loop (in a thread)."""
    project = ProjectPaths(entry.directory)
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(_libvirt_uri, project))
    await stop_session(project, entry.id, hv, timeout=10.0)
    await asyncio.to_thread(_delete_rest, entry, hv)


def remove_tree(path: Path) -> None:
    """``rm -rf path``; what vanishes meanwhile is fine (another ``vibebox delete`` of the
    same session removing it at the same time)."""

    def missing_is_fine(_func: Any, _path: str, exc_info: Any) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=missing_is_fine)


def _delete_rest(entry: SessionEntry, hv: Hypervisor) -> None:
    project = ProjectPaths(entry.directory)
    hv.undefine(entry.id)
    with contextlib.suppress(FileNotFoundError):
        paths.supervisor_socket_path(entry.id).unlink()
    guard.remove_wrappers(entry.id)
    if project.cache.is_dir():
        try:
            remove_tree(project.cache)
        except OSError as exc:
            raise VMError(
                f"cannot remove {project.cache}: {exc.strerror or exc}",
                hint=f"remove it by hand (`rm -rf {project.cache}`)",
            ) from exc
    with contextlib.suppress(SessionNotFoundError):
        SessionIndex().remove(entry.id)


async def recreate(
    project_dir: str | os.PathLike[str], *, hypervisor: Hypervisor | None = None
) -> SessionEntry:
    """``:new``: delete the project's session (VM, disk, keys) and create a fresh entry.

    The new session boots on the next :func:`~vibebox_core.session.start.ensure_running` or
    :func:`~vibebox_core.session.start.attach`.
    """
    project = ProjectPaths.for_directory(project_dir)
    index = SessionIndex()
    old = await asyncio.to_thread(index.find_by_directory, project.root)
    if old is not None:
        await delete(old, hypervisor)
    elif project.cache.is_dir():
        await asyncio.to_thread(shutil.rmtree, project.cache)
    return await asyncio.to_thread(SessionIndex().create, project.root)
