"""Taking sessions down: stop, delete, recreate (``vibebox stop``, ``vibebox delete``, ``:new``).

None of it attaches to a session or connects over SSH, which is what
:mod:`vibebox_core.session.start` (bringing a session up) is about. When a supervisor runs it
does the shutdown (attached vibebox processes are let go); otherwise the VM is stopped directly.
Missing parts (no domain, no ``.vibebox/``, no index entry) are fine: a delete can be repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.errors import SessionNotFoundError, SupervisorError, VMError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session.hypervisors import libvirt_uri, shared_hypervisor
from vibebox_core.share import guard
from vibebox_core.supervisor import client, lock, server


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
    timeout: float = server.SHUTDOWN_TIMEOUT,
) -> bool:
    """Shut the session's VM down (ACPI, forced after ``timeout``); True if it was running.

    When a supervisor runs it does the shutdown (attached vibebox processes are let go) and
    exits; otherwise the VM is stopped directly.
    """
    socket_path = paths.supervisor_socket_path(session_id)
    kind, _ = await asyncio.to_thread(client.probe, project, session_id)
    was_running = False
    if kind == "alive":
        was_running = True
        with contextlib.suppress(SupervisorError):
            conn = await client.SupervisorConnection.open(socket_path)
            with contextlib.suppress(SupervisorError):
                await conn.request("stop", timeout=timeout + 30)
            await conn.wait_closed()
            await conn.close()
    if project.cache.is_dir():
        lock_fd = await asyncio.to_thread(lock.acquire, project.supervisor_lock)
    else:
        lock_fd = -1
    try:
        state = await asyncio.to_thread(hv.state, session_id)
        if state not in ("shut off", "missing"):
            was_running = True
            await asyncio.to_thread(lambda: hv.stop(session_id, timeout=timeout))
        if project.cache.is_dir():
            kind, _ = await asyncio.to_thread(client.probe, project, session_id)
            if kind == "stale":
                await asyncio.to_thread(client.clean_stale, project, session_id)
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    return was_running


async def stop(project: ProjectPaths, *, hypervisor: Hypervisor | None = None) -> bool:
    """``vibebox stop``: shut the project's VM down; True if it was running."""
    session_id = await asyncio.to_thread(_session_id_of, project)
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(libvirt_uri, project))
    return await stop_session(project, session_id, hv)


def delete_session(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """Delete a session: stop its VM, undefine its domain and network, remove ``.vibebox/``
    and its index entry. Blocking (called by ``vibebox delete``); missing parts are fine.

    Raises:
        VibeboxError: libvirt refused (the index entry and files are then kept, so the
            command can be repeated).
    """
    project = entry.project
    hv = hypervisor or shared_hypervisor(libvirt_uri(project))
    asyncio.run(stop_session(project, entry.id, hv, timeout=10.0))
    _delete_rest(entry, hv)


async def delete(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """:func:`delete_session` from an event loop (in a thread)."""
    project = entry.project
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(libvirt_uri, project))
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
    project = entry.project
    hv.undefine(entry.id)
    with contextlib.suppress(FileNotFoundError):
        paths.supervisor_socket_path(entry.id).unlink()
    guard.remove_wrappers(entry.id)
    secrets = paths.session_secrets_dir(entry.id)  # its CA key and placeholder key
    if secrets.is_dir():
        remove_tree(secrets)
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


async def recreate(project: ProjectPaths, *, hypervisor: Hypervisor | None = None) -> SessionEntry:
    """``:new``: delete the project's session (VM, disk, keys) and create a fresh entry.

    The new session boots on the next :func:`~vibebox_core.session.start.ensure_running` or
    :func:`~vibebox_core.session.start.attach`.
    """
    index = SessionIndex()
    old = await asyncio.to_thread(index.find_by_directory, project.root)
    if old is not None:
        await delete(old, hypervisor)
    elif project.cache.is_dir():
        await asyncio.to_thread(shutil.rmtree, project.cache)
    return await asyncio.to_thread(SessionIndex().create, project.root)
