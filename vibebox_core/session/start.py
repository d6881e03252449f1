"""Bringing a project's session up and attaching to it, and opening its terminal.

The CLI and the dashboard start sessions and attach to them through this module. It ties the
pieces together: the project's config and the session index, the cold-start preparation
(:mod:`vibebox_core.session.boot`), the libvirt domain (through a
:class:`~vibebox_core.hypervisor.base.Hypervisor`), SSH
(:mod:`vibebox_core.ssh.wait`), and the per-session supervisor that keeps the reference
count. The attached session is a :class:`~vibebox_core.session.running.RunningSession`.
Statuses are in :mod:`vibebox_core.session.status`, teardown (stop, delete, recreate) in
:mod:`vibebox_core.session.teardown`, running a command in the guest in
:mod:`vibebox_core.session.execute`.

Start-up, in order (:func:`ensure_running`):

1. Under the supervisor lock (``.vibebox/supervisor.lock``): when a supervisor answers, attach
   to it and go on to SSH. Otherwise clean what a crashed one left, then (unless the VM already
   runs) prepare and start the VM (:func:`vibebox_core.session.boot.prepare_and_start`: verify or
   build the image, make the keys, write the seed share, create the instance overlay, define
   the network and domain and start the VM); then start the supervisor and attach. Holding the
   lock through all this is what makes two ``vibebox`` started at once in one directory share
   one VM.
2. Outside the lock: wait for the DHCP lease, then for SSH with the pinned host key
   (:func:`vibebox_core.ssh.wait.wait_for_ssh`; the dashboard has the supervisor wait, so the
   connection is the supervisor's). A lease alone proves nothing (it may be
   left from the previous boot), so only SSH counts. A boot that never answers within
   :func:`~vibebox_core.ssh.wait.boot_timeout` stops with a :class:`VMError` quoting the
   end of the console log and naming ``accel``.

The attachment (a connection to the supervisor) is made *before* waiting for SSH, so a short
``auto_shutdown_ms`` can never shut a VM down while somebody waits for it to boot.

The dashboard's terminal (:func:`open_shell`) comes from the session's supervisor, over the
supervisor's one SSH connection (no key exchange of our own), whether this call booted the VM
(the supervisor waited for its SSH) or it already ran; so do the approved port forwards,
which then open in the background. The dashboard loads no SSH library (asyncssh and
cryptography are about 15 MB of memory) unless a new session's ``[provision]`` list runs.

Blocking work (libvirt, files, qemu-img) runs in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vibebox_core import paths
from vibebox_core.config import approval
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import Config
from vibebox_core.doctor.examine import diagnose_failure
from vibebox_core.errors import ConfigError, SupervisorError, VibeboxError, VMError
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor.access import QemuAccessError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock, ProgressEvent, continued
from vibebox_core.session import boot, provision
from vibebox_core.session.hypervisors import shared_hypervisor
from vibebox_core.session.running import RunningSession
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.ssh.wait import wait_for_ssh
from vibebox_core.streams import ByteStream
from vibebox_core.supervisor import lock, relay
from vibebox_core.supervisor.client import (
    SupervisorConnection,
    clean_stale,
    probe,
    spawn,
    status_sync,
)

#: Seconds a running-but-stopping VM may take before a new start gives up waiting.
STOPPING_WAIT = 60.0
#: Starts tried when the supervisor dies while this process attaches to it.
ATTACH_ATTEMPTS = 3
#: Seconds a supervisor whose VM is gone may take to exit (it checks every 2 s).
SUPERVISOR_EXIT_WAIT = 30.0


def _load(project: ProjectPaths) -> tuple[Config, SessionEntry]:
    if not project.root.is_dir():
        raise VMError(f"{project.root} is not a directory")
    # Writes the commented defaults for a new project; a refused file is reported by the
    # cold start's gate (session/boot.py), and a running session is attached to as approved.
    with contextlib.suppress(ConfigError):
        load_config(project)
    entry = SessionIndex().ensure(project.root)
    # The guest can write vibebox.toml: the host uses the approved snapshot, never the file.
    return approval.enforced_config(project), entry


async def _start_unsupervised(
    project: ProjectPaths,
    config: Config,
    session_id: str,
    hv: Hypervisor,
    clock: ProgressClock,
    progress: ProgressCallback | None,
    kind: str,
) -> boot.Prepared | None:
    """No supervisor answers: clean what a crashed one left, start the VM unless it runs, and
    spawn a supervisor. Call with the supervisor lock held.

    Returns:
        What :func:`~vibebox_core.session.boot.prepare_and_start` prepared when this call
        booted the VM.
    """
    if kind == "stale":
        clock("cleaning up", "a crashed supervisor's files")
        await asyncio.to_thread(clean_stale, project, session_id)
    state = await asyncio.to_thread(_wait_not_stopping, hv, session_id)
    if state == "broken":
        status = await asyncio.to_thread(hv.status, session_id)
        raise VMError(
            f"the VM of this session is broken: {status.reason}",
            hint="`vibebox stop` then `vibebox`, or recreate it (`:new`)",
        )
    prepared = None
    if state != "running":
        try:
            prepared = await asyncio.to_thread(
                boot.prepare_and_start, project, config, session_id, hv, clock, progress
            )
        except VMError as exc:
            if not isinstance(exc, QemuAccessError):  # its hint is the grant command
                await asyncio.to_thread(diagnose_failure, exc, hv.uri, project)
            raise
    grace = ((prepared.config if prepared else None) or config).supervisor.auto_shutdown_ms
    await asyncio.to_thread(spawn, project, session_id, uri=hv.uri, grace_ms=grace)
    return prepared


async def _attach(socket_path: Path, client: str, *, last: bool) -> SupervisorConnection | None:
    """Attach to the supervisor; None when it died meanwhile (killed, or ended with its VM)
    and another start should be tried, unless this is the ``last`` try (then it raises)."""
    attachment: SupervisorConnection | None = None
    try:
        attachment = await SupervisorConnection.open(socket_path)
        await attachment.attach(client)
        return attachment
    except BaseException as exc:
        if attachment is not None:
            await attachment.close()
        if last or not isinstance(exc, SupervisorError):
            raise
        return None


def _wait_supervisor_gone(socket_path: Path) -> None:
    """Wait until the supervisor on ``socket_path`` stops answering.

    Raises:
        SupervisorError: it still answers after :data:`SUPERVISOR_EXIT_WAIT` seconds.
    """
    deadline = time.monotonic() + SUPERVISOR_EXIT_WAIT
    while status_sync(socket_path, timeout=1.0) is not None:
        if time.monotonic() > deadline:
            raise SupervisorError(
                "the session's supervisor still runs although its VM is off",
                hint="`vibebox stop`, then `vibebox` again",
            )
        time.sleep(0.2)


def _wait_not_stopping(hv: Hypervisor, session_id: str) -> str:
    deadline = time.monotonic() + STOPPING_WAIT
    state = hv.state(session_id)
    while state == "stopping" and time.monotonic() < deadline:
        time.sleep(0.25)
        state = hv.state(session_id)
    return state


async def ensure_running(
    project: ProjectPaths,
    progress: ProgressCallback | None = None,
    *,
    hypervisor: Hypervisor | None = None,
    client: str = "vibebox",
    connect: bool = True,
) -> RunningSession:
    """Make sure the project's session runs, attach to it and connect over SSH.

    Creates the session (and, on first use, the base image) when there is none. Safe to call
    from many processes at once: they share one VM.

    Args:
        project: the project's paths.
        progress: called with a :class:`~vibebox_core.progress.ProgressEvent` per step.
        hypervisor: a hypervisor to use (default: libvirt at the config's ``libvirt_uri``).
        client: how this process names itself to the supervisor (its log).
        connect: False for no SSH connection of this process's own: a session that already
            ran is attached to as it is, a session this call boots is waited for by its
            supervisor (which then holds the connection the dashboard's terminal and forwards
            come from, :func:`open_terminal`). Port forwards are then left to
            :meth:`RunningSession.open_forwards`.

    Returns:
        The attached session; close it to detach.

    Raises:
        VibeboxError: config, index, image, VM, SSH or supervisor problems, each with a hint.
            A boot without SSH within :func:`~vibebox_core.ssh.wait.boot_timeout` is
            a :class:`VMError` quoting the console log and naming ``accel``.
    """
    try:
        return await _ensure_running(project, progress, hypervisor, client, connect)
    except _SupervisorLost:
        # The supervisor went away while it waited for the guest's SSH (it was killed): a new
        # one is started (the VM runs on) and waits for it, once.
        return await _ensure_running(project, progress, hypervisor, client, connect, booting=True)


class _SupervisorLost(SupervisorError):
    """The supervisor went away while it waited for the guest's SSH for this process."""


async def _ensure_running(
    project: ProjectPaths,
    progress: ProgressCallback | None,
    hypervisor: Hypervisor | None,
    client: str,
    connect: bool,
    *,
    booting: bool = False,
) -> RunningSession:
    """:func:`ensure_running`; ``booting``: an earlier try booted the VM, and its SSH is still
    to be waited for."""
    clock = ProgressClock(progress)
    timings: dict[str, float] = {}
    config, entry = await asyncio.to_thread(_load, project)
    session_id = entry.id
    hv = hypervisor or shared_hypervisor(config.box.libvirt_uri)
    socket_path = paths.supervisor_socket_path(session_id)
    booted = booting
    accel: str = config.box.accel
    attachment: SupervisorConnection | None = None
    for attempt in range(ATTACH_ATTEMPTS):
        lock_fd = await asyncio.to_thread(lock.acquire, project.supervisor_lock)
        again = False
        try:
            kind, _status = await asyncio.to_thread(probe, project, session_id)
            if kind == "alive" and await asyncio.to_thread(hv.state, session_id) in (
                "shut off",
                "missing",
            ):
                # Its VM was destroyed or crashed: that supervisor is on its way out (it takes
                # this lock to finish), so attaching to it would attach to nothing.
                again = True
            else:
                if kind != "alive":
                    prepared = await _start_unsupervised(
                        project, config, session_id, hv, clock, progress, kind
                    )
                    if prepared is not None:
                        accel = prepared.accel
                        config = prepared.config or config
                        booted = True
                        timings["started"] = clock.elapsed
                attachment = await _attach(socket_path, client, last=attempt + 1 == ATTACH_ATTEMPTS)
                again = attachment is None
        finally:
            os.close(lock_fd)
        if not again:
            break
        await asyncio.to_thread(_wait_supervisor_gone, socket_path)
    if attachment is None:
        raise SupervisorError(
            "the session's supervisor kept going away while vibebox attached to it",
            hint="`vibebox stop`, then `vibebox` again; its log is .vibebox/supervisor.log",
        )
    timings["attached"] = clock.elapsed
    known = None if connect or booted else await asyncio.to_thread(project.recorded_ipv4)
    if known is not None:
        # Warm, and no SSH wanted here: the supervisor runs, so the VM does, at this address.
        running = RunningSession(project, entry, config, known, None, attachment, booted, timings)
        clock("attached", known, done=True)
        return running
    connection = None
    try:
        if connect:
            ipv4, connection = await wait_for_ssh(project, session_id, hv, clock, accel, booted)
        else:
            # The supervisor waits for the guest's SSH and keeps that connection: the shell
            # and the forwards come from it, and this process loads no SSH library.
            since = time.monotonic() - clock.elapsed
            try:
                ipv4 = await attachment.wait_for_ssh(
                    booted=booted, accel=accel, progress=continued(progress, since)
                )
            except SupervisorError as exc:
                if booting:
                    raise
                raise _SupervisorLost(exc.message, hint=exc.hint) from exc
    except BaseException:
        await attachment.close()
        raise
    timings["ssh"] = clock.elapsed
    await asyncio.to_thread(_remember, project, entry, ipv4)
    clock("connected", f"{ipv4}", done=True)
    running = RunningSession(project, entry, config, ipv4, connection, attachment, booted, timings)
    if client != "exec" and connect:
        try:  # approved [network] ports, host loopback -> guest, while attached
            await running.open_forwards(progress)
        except BaseException:
            await running.close()
            raise
    return running


async def open_terminal(session: RunningSession, cols: int, rows: int) -> ByteStream:
    """A login shell in a PTY of ``cols`` x ``rows`` on ``session``, opened by its supervisor.

    The supervisor keeps one SSH connection to the guest for every vibebox attached
    (:mod:`vibebox_core.supervisor.relay`), so this costs no key exchange or login of its own.

    Raises:
        SupervisorError: the supervisor does not answer (it stopped).
        SSHError: the guest refused the shell or cannot be reached.
    """
    socket_path = paths.supervisor_socket_path(session.session_id)
    return await relay.RelayPtyStream.open(socket_path, cols, rows)


#: ``last_active`` is refreshed at most this often (seconds): it is shown in minutes, and each
#: refresh rewrites the index under its lock.
TOUCH_EVERY = 60.0


def _remember(project: ProjectPaths, entry: SessionEntry, ipv4: str) -> None:
    if project.recorded_ipv4() != ipv4:
        write_atomic(project.ipv4, (ipv4 + "\n").encode())
    age = (datetime.now(UTC) - entry.last_active).total_seconds()
    if age > TOUCH_EVERY or age < 0:
        with contextlib.suppress(VibeboxError):
            SessionIndex().touch(entry.id)


@contextlib.asynccontextmanager
async def attach(
    project: ProjectPaths,
    progress: ProgressCallback | None = None,
    *,
    hypervisor: Hypervisor | None = None,
    client: str = "vibebox",
    notice: Callable[[str], None] | None = None,
) -> AsyncIterator[RunningSession]:
    """``async with attach(project) as session:`` — :func:`ensure_running`, detached on exit.

    A new session is provisioned first (:mod:`vibebox_core.session.provision`, its output to
    ``progress``); how that went, when worth saying (a failing step), goes to ``notice``.
    The session is yielded whatever provisioning did.
    """
    began = time.monotonic()
    session = await ensure_running(project, progress, hypervisor=hypervisor, client=client)
    try:
        later = continued(progress, began)
        outcome = await provision.provision_session(session, later, only_if_new=True)
        said = provision.notice(outcome)
        if said and notice is not None:
            notice(said)
        yield session
    finally:
        await session.close()


@dataclass
class Shell:
    """An attached session with a login shell open on it; port forwards open in the background.

    Attributes:
        running: the attached session.
        stream: the shell's PTY.
        attached: the supervisor's count just after attaching (None when it could not be asked).
        forwards: the task opening the approved port forwards.
        provisioned: how provisioning a new session went.
    """

    running: RunningSession
    stream: ByteStream
    attached: int | None
    forwards: asyncio.Task[None] | None = None
    #: How provisioning a new session went (:func:`vibebox_core.session.provision.notice`
    #: says it in words); None before it was tried.
    provisioned: provision.Outcome | None = None

    async def release(self) -> None:
        """Detach (the terminal is the caller's to close); stops opening forwards."""
        if self.forwards is not None and not self.forwards.done():
            self.forwards.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.forwards
        await self.running.close()

    async def open_terminal(self, cols: int, rows: int) -> ByteStream:
        """Another login shell into this session, in a PTY of its own (a dashboard tab).

        It comes from the supervisor's relay (:func:`open_terminal`) whatever carried the first
        one. This process stays counted once: the supervisor counts ``attach`` connections, and
        a relayed terminal's connection is none (:mod:`vibebox_core.supervisor.server`), so
        nothing a tab sends, and nothing the guest says, can change the count.

        Raises:
            SupervisorError: the supervisor does not answer (it stopped).
            SSHError: the guest refused the shell or cannot be reached.
        """
        return await open_terminal(self.running, cols, rows)

    async def discard(self) -> None:
        """Close the terminal too (nobody took this attempt)."""
        await self.stream.close()
        await self.release()


async def open_shell(
    project: ProjectPaths, cols: int, rows: int, progress: ProgressCallback, *, client: str
) -> Shell:
    """Start (if needed) and attach to the session, then open a login shell in a PTY.

    A new session is provisioned first (its output to ``progress``; :attr:`Shell.provisioned`
    says how it went). The shell comes from the session's supervisor (:func:`open_terminal`),
    over its one SSH connection (no key exchange of our own; on a session this call booted,
    the supervisor waited for that connection); so do the port forwards, in the background: a
    failure to open them is reported to ``progress``, never raised.

    Raises:
        VibeboxError: as :func:`ensure_running`, or the shell could not be opened.
    """
    began = time.monotonic()
    running = await ensure_running(project, progress, client=client, connect=False)
    try:
        # A new session runs [provision] first, its output in the start-up view; whatever
        # it does, the shell opens.
        later = continued(progress, began)
        outcome = await provision.provision_session(running, later, only_if_new=True)
        if running.connection is not None:
            stream: ByteStream = await SSHPtyStream.open(running.connection, cols, rows)
        else:
            stream = await open_terminal(running, cols, rows)
        attached = await running.attached_count()
    except BaseException:
        await running.close()
        raise
    shell = Shell(running, stream, attached, provisioned=outcome)
    shell.forwards = asyncio.create_task(_forward(running, progress))
    return shell


async def _forward(running: RunningSession, progress: ProgressCallback) -> None:
    """Open the approved port forwards; a failure is reported, never raised."""
    try:
        await running.open_forwards(progress)
    except VibeboxError as exc:
        progress(ProgressEvent("port forwarding", f"{exc.message} ({exc.hint})", 0.0, True))
