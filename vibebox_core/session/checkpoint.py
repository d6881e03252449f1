"""Checkpoints of a session's guest disk: save, list, restore, remove (``vibebox checkpoint``).

A checkpoint is an **internal qcow2 snapshot** in the instance disk, ``.vibebox/disk.qcow2``
(the overlay on the base image, :func:`vibebox_core.session.boot.create_overlay`). Why internal
and not libvirt's external snapshots: it stays one file, so checkpoints survive stop/start
with nothing else to track, go with the disk when the session is deleted (``vibebox delete``,
``:new``), and restoring or removing one never rebases or merges a chain of overlays. The
project directory is a virtiofs share, not on that disk: no checkpoint holds, restores or
touches a project file on the host.

How each step works, by VM state:

- **stopped** (``shut off`` or no domain): ``qemu-img snapshot -c/-a/-d`` on the disk
  directly, under the session's start/stop lock (``.vibebox/supervisor.lock``), so no vibebox
  starts the VM meanwhile (QEMU would also refuse to share the image: it locks it).
- **running, save**: the guest's dirty pages are written out first (``sync`` over SSH, best
  effort, bounded by :data:`SYNC_TIMEOUT`), then, under the lock, the VM is paused, QEMU takes
  the snapshot of its own disk node through its monitor and the VM resumes
  (:mod:`vibebox_core.hypervisor.libvirt_disks` says why libvirt's snapshot API cannot do this
  here). The result says how long the VM was held (:attr:`Saved.held`). The disk state is what
  the guest had written when its vCPUs stopped: consistent the way a power cut is, with
  everything up to the ``sync`` included.
- **running, restore**: a clean shutdown as ``vibebox stop`` does (forced after its timeout;
  attached vibebox processes are let go), ``qemu-img snapshot -a``, then a start through the
  normal start path (:func:`vibebox_core.session.start.ensure_running`: the approval gate, the
  same checks, SSH answering), unless the caller starts it itself (the dashboard re-attaches).
- **running, remove**: QEMU deletes the snapshot through its monitor (no pause needed).

The size of a checkpoint and the qemu-img calls: :mod:`.checkpoint_disk`.

Names are user input: :func:`~.checkpoint_disk.check_name` says which are allowed.

Blocking parts (qemu-img, libvirt, the lock) run in threads; the public functions are
coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from vibebox_core.errors import CheckpointError, SessionNotFoundError, VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.session import checkpoint_disk, checkpoint_record, start, teardown
from vibebox_core.session.checkpoint_disk import (
    NAME_MAX,
    Checkpoint,
    check_name,
    disk_usage,
    format_size,
    valid_name,
)
from vibebox_core.session.hypervisors import project_hypervisor
from vibebox_core.share import pins
from vibebox_core.ssh.connect import connect
from vibebox_core.supervisor import lock

__all__ = [
    "NAME_MAX",
    "Checkpoint",
    "Restored",
    "Saved",
    "check_name",
    "default_name",
    "disk_usage",
    "format_size",
    "list_checkpoints",
    "remove",
    "restore",
    "save",
    "valid_name",
]

#: Seconds the guest's ``sync`` may take before the save goes on without it.
SYNC_TIMEOUT = 30.0
#: How the checkpoint commands name themselves to the supervisor when they start a VM.
CLIENT_NAME = "checkpoint"
_STOPPED = ("shut off", "missing")


@dataclass(frozen=True)
class Saved:
    """What :func:`save` did.

    Attributes:
        name: the checkpoint's name.
        held: seconds the running VM was paused for it; None when the VM was off.
        synced: False when the guest's ``sync`` failed or timed out (then the checkpoint has
            what the disk held, without the guest's unwritten pages); None when the VM was off.
    """

    name: str
    held: float | None
    synced: bool | None = None

    def describe(self) -> str:
        """One line for both front ends (escape it: the name is shown as given)."""
        if self.held is None:
            return f"saved checkpoint {self.name} (the VM is off)"
        note = "" if self.synced is not False else "; the guest did not answer `sync`"
        return f"saved checkpoint {self.name} (the VM was paused {self.held:.2f} s{note})"


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did: ``was_running`` the VM ran before, ``started`` it runs again."""

    name: str
    was_running: bool
    started: bool

    def describe(self) -> str:
        """One line for both front ends; project files are never part of a checkpoint."""
        if self.started:
            how = "the VM runs again"
        elif self.was_running:
            how = "the VM was stopped for it"
        else:
            how = "the VM starts from it next time"
        return f"restored checkpoint {self.name}: {how}; project files on the host are untouched"


def default_name(existing: set[str], now: datetime | None = None) -> str:
    """``ckpt-YYYYMMDD-HHMMSS`` (UTC), with ``-2``, ``-3``... when that one exists."""
    base = f"ckpt-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"
    name, n = base, 1
    while name in existing:
        n += 1
        name = f"{base}-{n}"
    return name


# -- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    project: ProjectPaths
    session_id: str
    hv: Hypervisor

    @property
    def disk(self) -> str:
        return str(self.project.disk)


def _session(project: ProjectPaths, hypervisor: Hypervisor | None) -> _Session:
    """The project's session and disk, checked: ``.vibebox/`` holds no symlink and the disk is
    a regular file (a cloned repository's ``.vibebox/`` could point it at another image).

    Raises:
        VibeboxError: no session, no disk yet, or ``.vibebox/`` / the disk is not plain.
    """
    pins.check_cache(project.cache)
    session_id = read_session_id_file(project)
    if session_id is None:
        raise SessionNotFoundError(
            f"{project.root} has no session", hint="`vibebox` in the directory creates one"
        )
    try:
        mode = os.lstat(project.disk).st_mode
    except FileNotFoundError:
        raise CheckpointError(
            f"the session of {project.root} has no disk yet (it never started)",
            hint="start it once (`vibebox` or `vibebox exec -- true`), then save a checkpoint",
        ) from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(
            f"{project.disk} is not a regular file",
            hint="recreate the session (`:new`, or `vibebox delete` and start again)",
        )
    return _Session(project, session_id, project_hypervisor(project, hypervisor))


@contextlib.contextmanager
def _locked(session: _Session) -> Iterator[str]:
    """Hold the start/stop lock; yield the VM's state as read under it."""
    fd = lock.acquire(session.project.supervisor_lock)
    try:
        yield session.hv.state(session.session_id)
    finally:
        os.close(fd)


def _busy(state: str) -> CheckpointError:
    return CheckpointError(
        f"the session's VM is {state}",
        hint="wait until it runs or is off (`vibebox list`), or `vibebox stop` it",
    )


def _known(disk: str, name: str) -> None:
    if name not in {c.name for c in checkpoint_disk.read_checkpoints(disk, measure=False)}:
        raise CheckpointError(
            f"no checkpoint {name!r} in this session",
            hint="`vibebox checkpoint list` shows the session's checkpoints",
        )


async def list_checkpoints(
    project: ProjectPaths, *, hypervisor: Hypervisor | None = None, measure: bool = True
) -> list[Checkpoint]:
    """The session's checkpoints, oldest first (``measure=False`` skips their sizes).

    Raises:
        VibeboxError: no session or disk, or qemu-img failed.
    """
    session = await asyncio.to_thread(_session, project, hypervisor)
    return await asyncio.to_thread(checkpoint_disk.read_checkpoints, session.disk, measure=measure)


async def save(
    project: ProjectPaths,
    name: str | None = None,
    *,
    hypervisor: Hypervisor | None = None,
    progress: ProgressCallback | None = None,
) -> Saved:
    """Save a checkpoint of the guest disk (default name: :func:`default_name`).

    Raises:
        CheckpointError: bad or taken name, the VM is starting or stopping, or qemu-img/QEMU
            refused.
    """
    clock = ProgressClock(progress)
    if name is not None:
        check_name(name)
    session = await asyncio.to_thread(_session, project, hypervisor)
    existing = {
        c.name
        for c in await asyncio.to_thread(
            checkpoint_disk.read_checkpoints, session.disk, measure=False
        )
    }
    name = name or default_name(existing)
    if name in existing:
        raise _taken(name)
    state = await asyncio.to_thread(session.hv.state, session.session_id)
    synced: bool | None = None
    if state == "running":
        clock("syncing the guest's disk")
        synced = await _sync_guest(project)
        if not synced:
            clock("syncing the guest's disk", "no answer; saving what the disk holds", done=True)
    clock("saving checkpoint", name)
    saved = await asyncio.to_thread(_save_locked, session, name, synced)
    if saved.held is not None:
        clock("saving checkpoint", f"{name} (the VM was paused {saved.held:.2f} s)", done=True)
    else:
        clock("saving checkpoint", f"{name} (the VM is off)", done=True)
    return saved


async def _sync_guest(project: ProjectPaths) -> bool:
    """``sync`` in the guest (its page cache to the disk); False when that did not happen."""
    import asyncssh

    ipv4 = await asyncio.to_thread(project.recorded_ipv4)
    if ipv4 is None:
        return False
    try:
        async with asyncio.timeout(SYNC_TIMEOUT):
            conn = await connect(project, ipv4)
            try:
                result = await conn.run("sync", check=False)
            finally:
                conn.close()
    except (TimeoutError, VibeboxError, OSError, asyncssh.Error):
        return False  # the guest is not to be trusted to answer; the pause still holds
    return result.exit_status == 0


def _taken(name: str) -> CheckpointError:
    return CheckpointError(
        f"this session already has a checkpoint {name!r}",
        hint=f"choose another name, or `vibebox checkpoint rm {name}` first",
    )


def _save_locked(session: _Session, name: str, synced: bool | None) -> Saved:
    with _locked(session) as state:
        if name in {c.name for c in checkpoint_disk.read_checkpoints(session.disk, measure=False)}:
            raise _taken(name)  # saved meanwhile by another vibebox (qemu-img allows twins)
        if state in _STOPPED:
            checkpoint_disk.qemu_img(
                ["snapshot", "-q", "-c", name, session.disk], f"save checkpoint {name!r}"
            )
            checkpoint_record.keep(session.project, name)
            return Saved(name, None, None)
        if state != "running":
            raise _busy(state)
        sid = session.session_id
        session.hv.suspend(sid)
        paused = time.monotonic()
        try:
            session.hv.snapshot_disk(sid, session.disk, name)
        finally:
            session.hv.resume(sid)
            held = time.monotonic() - paused
        checkpoint_record.keep(session.project, name)
        return Saved(name, held, synced)


async def restore(
    project: ProjectPaths,
    name: str,
    *,
    hypervisor: Hypervisor | None = None,
    progress: ProgressCallback | None = None,
    start_again: bool = True,
) -> Restored:
    """Bring the guest disk back to checkpoint ``name``; a running VM is stopped first and
    (``start_again``) started again through the normal start path, SSH answering.

    Raises:
        CheckpointError: unknown name, the VM was started again meanwhile, qemu-img failed,
            or the restored VM did not start (the disk is restored then; the error says why).
    """
    clock = ProgressClock(progress)
    check_name(name)
    session = await asyncio.to_thread(_session, project, hypervisor)
    await asyncio.to_thread(_known, session.disk, name)
    state = await asyncio.to_thread(session.hv.state, session.session_id)
    was_running = state not in _STOPPED
    if was_running:
        clock("stopping VM", "a clean shutdown, as `vibebox stop`")
        await teardown.stop_session(project, session.session_id, session.hv)
        clock("stopping VM", done=True)
    clock("restoring checkpoint", name)
    await asyncio.to_thread(_restore_locked, session, name)
    clock("restoring checkpoint", name, done=True)
    if not (was_running and start_again):
        return Restored(name, was_running, False)
    try:
        running = await start.ensure_running(
            project, progress, hypervisor=hypervisor, client=CLIENT_NAME, connect=False
        )
    except VibeboxError as exc:
        raise CheckpointError(
            f"checkpoint {name!r} was restored, but the VM did not start again: {exc.message}",
            hint=exc.hint or "`vibebox` starts it",
        ) from exc
    await running.close()
    return Restored(name, was_running, True)


def _restore_locked(session: _Session, name: str) -> None:
    with _locked(session) as state:
        if state not in _STOPPED:
            raise CheckpointError(
                f"the session's VM was started again ({state}) before checkpoint {name!r} "
                "could be restored; nothing was changed",
                hint="run the restore again",
            )
        checkpoint_disk.qemu_img(
            ["snapshot", "-q", "-a", name, session.disk], f"restore checkpoint {name!r}"
        )
        # The disk is as it was then: so is whether it was provisioned.
        checkpoint_record.bring_back(session.project, name, session.session_id)


async def remove(project: ProjectPaths, name: str, *, hypervisor: Hypervisor | None = None) -> None:
    """Remove checkpoint ``name`` (QEMU does it while the VM runs).

    Raises:
        CheckpointError: unknown name, the VM is starting or stopping, or qemu-img/QEMU refused.
    """
    check_name(name)
    session = await asyncio.to_thread(_session, project, hypervisor)
    await asyncio.to_thread(_known, session.disk, name)
    await asyncio.to_thread(_remove_locked, session, name)


def _remove_locked(session: _Session, name: str) -> None:
    with _locked(session) as state:
        if state in _STOPPED:
            checkpoint_disk.qemu_img(
                ["snapshot", "-q", "-d", name, session.disk], f"remove checkpoint {name!r}"
            )
        elif state == "running":
            session.hv.delete_disk_snapshot(session.session_id, session.disk, name)
        else:
            raise _busy(state)
        checkpoint_record.forget(session.project, name)
