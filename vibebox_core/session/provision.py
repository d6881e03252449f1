"""Provisioning: ``[provision] run`` once in a new session's guest, and again on demand.

A new session starts from the bare base image; ``[provision] run`` lists the commands that
make it the project's (a toolchain, packages). They run in the guest only — as the guest user,
in the project's guest directory, through the guest's network policy like any command there —
so changing the list asks nothing (it grants nothing on the host).

When: once after the session's instance disk is made (its first start, and after ``:new``).
The cold start marks a fresh disk (``.vibebox/provision-pending``,
:func:`vibebox_core.session.boot.prepare_and_start`); the first attach that has SSH runs the
list (:func:`provision` with ``only_if_new``, from
:func:`vibebox_core.session.start.attach` and :func:`~vibebox_core.session.start.open_shell`)
and replaces the marker with the record
(``.vibebox/provision.json``, :mod:`vibebox_core.session.provision_record`), so a stop and
start never runs it twice. ``vibebox provision`` runs it again whatever the record says
(:func:`provision`). One vibebox at a time provisions a session
(``.vibebox/provision.lock``); another one waits for it, then finds the record.

How: each step is ``bash -lc STEP`` over the session's SSH connection, started in the project
mount (:func:`vibebox_core.ssh.connect.guest_command`: the step is one word, quoted with
shlex, and never meets a host shell), stdin empty, stderr merged into stdout. The output goes
whole into ``.vibebox/provision.log`` (the last MiB) and, a few lines at a time, to the
progress callback as :attr:`~vibebox_core.progress.ProgressEvent.output` (raw guest text: the
front ends escape it; :mod:`vibebox_core.session.provision_output` bounds both).
A failing step stops the list; the record says which and its exit status, and the session
stays usable: the failure is a result (:class:`Outcome`), not an exception, except for
``vibebox provision``, which turns it into a :class:`~vibebox_core.errors.ProvisionError`.

Everything under ``.vibebox/`` is the host's (the guest never sees it); files are still opened
without following symlinks and read bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeAlias

from vibebox_core.errors import ConfigError, ProvisionError, SSHError, VibeboxError
from vibebox_core.fileio import lock_file
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.session.provision_output import BATCH_SECONDS, BoundedLog, OutputLines, escaped
from vibebox_core.session.provision_record import (
    Record,
    StepResult,
    clear_pending,
    file_steps,
    is_pending,
    now,
    read_record,
    shorten,
    steps_digest,
    write_record,
)
from vibebox_core.session.running import RunningSession
from vibebox_core.ssh.connect import guest_command, ssh_error

if TYPE_CHECKING:
    import asyncssh

#: The progress step every provisioning event belongs to.
STEP = "provisioning"
#: Seconds between tries of a lock another vibebox holds.
LOCK_POLL = 0.2
#: Seconds a step's output may go on after its exit status arrived (see :func:`_run_step`).
EXIT_GRACE = 2.0
#: How often a running step is checked for its exit status.
EXIT_POLL = 0.25


@dataclass(frozen=True)
class Outcome:
    """How a provisioning ended.

    Attributes:
        record: what was recorded.
        ran: False when nothing was due (then :attr:`record` is the last one, may be None).
        problem: why it could not run or was interrupted (an SSH error, a refused file).
    """

    record: Record | None
    ran: bool = True
    problem: VibeboxError | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and (self.record is None or self.record.state == "done")


def _exit_status(status: int | None, signal_info: tuple[str, bool, str, str] | None) -> int:
    """The step's exit status: 128 + the signal that ended it, 255 when unknown."""
    if status is not None and status >= 0:
        return status
    name = signal_info[0] if signal_info else ""
    number = getattr(signal, f"SIG{name}", None)
    return 128 + int(number) if number is not None else 255


async def _write(log: BoundedLog, data: bytes) -> None:
    await asyncio.to_thread(log.write, data)


async def _pump(
    process: asyncssh.SSHClientProcess[bytes], log: BoundedLog, lines: OutputLines
) -> None:
    """Copy a step's output to the log and the progress until it ends (EOF)."""
    while chunk := await process.stdout.read(65536):
        await _write(log, escaped(chunk))
        lines.feed(chunk)


def _exited(process: asyncssh.SSHClientProcess[bytes]) -> bool:
    return process.exit_status is not None or process.exit_signal is not None


async def _run_step(
    connection: asyncssh.SSHClientConnection,
    command: str,
    guest_dir: str,
    log: BoundedLog,
    lines: OutputLines,
) -> int:
    """Run one step (``bash -lc STEP`` in ``guest_dir``); its output to ``log`` and ``lines``.

    The step is over when its output ends, or :data:`EXIT_GRACE` seconds after its exit
    status arrived: sshd reports the status when the step's shell exits, but keeps the
    channel open while a program it started in the background (``daemon &``) still holds
    its output, and a start must not wait for that.

    Raises:
        asyncssh.Error, OSError: the connection failed.
    """
    import asyncssh

    line = guest_command(["bash", "-lc", command], cwd=guest_dir)
    process = await connection.create_process(
        line, stdin=asyncssh.DEVNULL, stderr=asyncssh.STDOUT, encoding=None
    )
    pump = asyncio.create_task(_pump(process, log, lines))
    flusher = asyncio.create_task(lines.flush_every(BATCH_SECONDS))
    try:
        while not pump.done() and not _exited(process):
            await asyncio.wait({pump}, timeout=EXIT_POLL)
        if not pump.done():
            await asyncio.wait({pump}, timeout=EXIT_GRACE)
        if not pump.done():
            pump.cancel()
            notice = "[vibebox: the step exited; its background programs' output is not waited for]"
            lines.feed(f"\n{notice}\n".encode())
            await _write(log, f"\n{notice}\n".encode())
        await asyncio.wait({pump})
        error = None if pump.cancelled() else pump.exception()
        if error is not None:
            raise error  # the connection failed while the output came
        if not _exited(process):
            await process.wait()
    finally:
        for task in (pump, flusher):
            task.cancel()
        await asyncio.wait({pump, flusher})
        lines.flush(end=True)
        process.close()
    return _exit_status(process.exit_status, process.exit_signal)


async def run_steps(
    connection: asyncssh.SSHClientConnection,
    project: ProjectPaths,
    session_id: str,
    steps: Sequence[str],
    guest_dir: str,
    clock: ProgressClock,
    *,
    ipv4: str = "",
) -> Record:
    """Run ``steps`` in order over ``connection``, recording and logging as they go.

    Stops at the first step that exits non-zero. Never raises for a failing step: the record
    says which failed and how. Once the record says it started, the session is no longer
    due (:func:`is_pending`): a failed or interrupted run is not repeated by itself.

    Raises:
        SSHError: the connection failed (the record then says ``interrupted``).
        ProvisionError: the record or the log cannot be written.
    """
    import asyncssh

    total = len(steps)
    record = Record(session_id, "running", steps_digest(steps), total, (), now())
    log = BoundedLog(project.provision_log)
    results: list[StepResult] = []
    try:
        await asyncio.to_thread(write_record, project, record)
        await asyncio.to_thread(clear_pending, project)
        plural = "s" if total != 1 else ""
        await _write(log, f"==> provisioning {record.started}: {total} step{plural}\n".encode())
        for number, command in enumerate(steps, start=1):
            shown = shorten(command)
            detail = f"step {number}/{total}: {shown}"
            clock(STEP, detail)
            await _write(log, f"==> step {number}/{total}: {command}\n".encode())
            started = time.monotonic()
            status: int | None = None
            try:
                status = await _run_step(
                    connection, command, guest_dir, log, OutputLines(clock, STEP, detail)
                )
            finally:
                seconds = time.monotonic() - started
                results.append(StepResult(number, shown, status, seconds))
                record = replace(record, steps=tuple(results))
            ending = f"==> step {number}/{total}: exit status {status} after {seconds:.1f}s\n"
            await _write(log, ending.encode())
            if status != 0:
                record = replace(record, state="failed", finished=now())
                await asyncio.to_thread(write_record, project, record)
                clock(
                    STEP,
                    f"step {number}/{total} failed with exit status {status}",
                    done=True,
                    failed=True,
                )
                return record
            await asyncio.to_thread(write_record, project, record)
        record = replace(record, state="done", finished=now())
        await asyncio.to_thread(write_record, project, record)
        clock(STEP, f"{total} step{plural} done", done=True)
        return record
    except BaseException as exc:
        if record.state == "running":
            record = replace(record, state="interrupted", finished=now())
            with contextlib.suppress(OSError):
                write_record(project, record)  # quick, and it must happen even when cancelled
            with contextlib.suppress(OSError):
                log.write(f"==> interrupted ({type(exc).__name__})\n".encode())
        if isinstance(exc, (asyncssh.Error, ConnectionError, TimeoutError)):
            raise ssh_error(exc, ipv4 or "the guest", project) from exc
        if isinstance(exc, OSError):
            raise _cache_error(project, exc) from exc
        raise
    finally:
        log.close()


async def _locked(project: ProjectPaths, clock: ProgressClock) -> tuple[int, bool]:
    """Take ``.vibebox/provision.lock``, waiting (and saying so) while another vibebox holds it.

    Returns:
        The lock's descriptor (close it to release), and whether it was waited for.
    """
    said = False
    while True:
        try:
            fd = await asyncio.to_thread(lock_file, project.provision_lock, wait=False)
            return fd, said
        except BlockingIOError:
            if not said:
                clock(STEP, "waiting for another vibebox that provisions this session")
                said = True
            await asyncio.sleep(LOCK_POLL)


Connect: TypeAlias = "Callable[[], Awaitable[asyncssh.SSHClientConnection]]"


async def provision(
    connect: Connect,
    project: ProjectPaths,
    session_id: str,
    guest_dir: str,
    progress: ProgressCallback | None = None,
    *,
    only_if_new: bool = False,
    ipv4: str = "",
) -> Outcome:
    """Run ``[provision] run`` in the session's guest; with ``only_if_new``, only when due.

    Due means a fresh instance disk waits for it (:func:`is_pending`). Under the provision
    lock, so two vibebox never run it at once, and the second finds it done. Nothing to run
    (an empty list) still records the list, so an edit later shows as a change.

    Args:
        connect: gives the session's SSH connection (made only when something runs).
        project: the project's paths.
        session_id: the session.
        guest_dir: where the project is mounted in the guest (each step starts there).
        progress: gets a ``provisioning`` event per step and the steps' output.
        only_if_new: run only when due, and never raise for the guest (a start goes on
            whatever happens; :attr:`Outcome.problem` says what).
        ipv4: the guest's address, for error messages.

    Returns:
        The outcome; :attr:`Outcome.ran` is False when nothing was due.

    Raises:
        ConfigError: ``vibebox.toml`` is refused (not with ``only_if_new``).
        SSHError, ProvisionError: the guest cannot be reached, or the record cannot be
            written (not with ``only_if_new``).
    """
    clock = ProgressClock(progress)
    if only_if_new and not await asyncio.to_thread(is_pending, project, session_id):
        record = await asyncio.to_thread(read_record, project)
        if record is None or record.state != "running":
            return Outcome(record, ran=False)
        # Another vibebox may be running it now: wait for it (its lock) before going on, so
        # a command started meanwhile finds the session provisioned.
    try:
        return await _provision_locked(
            connect, project, session_id, guest_dir, clock, only_if_new=only_if_new, ipv4=ipv4
        )
    except (ConfigError, SSHError, ProvisionError) as exc:
        if not only_if_new:
            raise
        # A refused file, no SSH, an unwritable .vibebox/: the start goes on. Before the first
        # step it is still due at the next start; after it, the record says it was interrupted.
        clock(STEP, f"not finished: {exc.message}", done=True, failed=True)
        return Outcome(await asyncio.to_thread(read_record, project), problem=exc)


async def _provision_locked(
    connect: Connect,
    project: ProjectPaths,
    session_id: str,
    guest_dir: str,
    clock: ProgressClock,
    *,
    only_if_new: bool,
    ipv4: str,
) -> Outcome:
    """:func:`provision` under the provision lock."""
    try:
        fd, waited = await _locked(project, clock)
    except OSError as exc:
        raise _cache_error(project, exc) from exc
    try:
        if only_if_new and not await asyncio.to_thread(is_pending, project, session_id):
            record = await asyncio.to_thread(read_record, project)
            if waited:
                ended = record.summary() if record is not None else "ended"
                clock(STEP, f"by another vibebox: {ended}", done=True)
            return Outcome(record, ran=False)
        steps = await asyncio.to_thread(file_steps, project)
        if steps:
            clock(STEP, f"{len(steps)} step{'s' if len(steps) != 1 else ''}")
            record = await run_steps(
                await connect(), project, session_id, steps, guest_dir, clock, ipv4=ipv4
            )
        else:
            record = Record(session_id, "done", steps_digest(()), 0, (), now(), now())
            try:
                await asyncio.to_thread(write_record, project, record)
                await asyncio.to_thread(clear_pending, project)
            except OSError as exc:
                raise _cache_error(project, exc) from exc
        return Outcome(record)
    finally:
        os.close(fd)


def _cache_error(project: ProjectPaths, exc: OSError) -> ProvisionError:
    return ProvisionError(
        f"cannot write the provisioning record, log or lock in {project.cache}: "
        f"{exc.strerror or exc}",
        hint=f"check the free space and permissions of {project.cache}",
    )


async def provision_session(
    running: RunningSession, progress: ProgressCallback | None = None, *, only_if_new: bool
) -> Outcome:
    """:func:`provision` on an attached session (its SSH connection, made when needed)."""
    return await provision(
        running.ssh,
        running.project,
        running.session_id,
        running.guest_project_path,
        progress,
        only_if_new=only_if_new,
        ipv4=running.ipv4,
    )


def notice(outcome: Outcome, *, success: bool = False) -> str:
    """What to tell the user after a start provisioned (empty: nothing worth saying).

    A failure says which step, its exit status, that the session is usable and what next;
    with ``success``, a run that succeeded says so too.
    """
    record = outcome.record
    after = (
        "The session is usable; the output is in .vibebox/provision.log, and "
        "`vibebox provision` runs the list again."
    )
    if outcome.problem is not None:
        hint = f" ({outcome.problem.hint})" if outcome.problem.hint else ""
        return f"Provisioning did not finish: {outcome.problem.message}{hint}"
    if not outcome.ran or record is None:
        return ""
    if record.state == "done":
        return f"Provisioned: {record.summary()}." if success and record.total else ""
    return f"Provisioning {record.summary()}. {after}"


def failure(outcome: Outcome) -> ProvisionError | None:
    """The error ``vibebox provision`` exits with for ``outcome``; None when it succeeded."""
    record = outcome.record
    if outcome.problem is not None or record is None or record.state == "done":
        return None
    hint = (
        "its output is in .vibebox/provision.log; fix the step in [provision] run of "
        "vibebox.toml, then `vibebox provision` runs the list again"
    )
    return ProvisionError(f"provisioning {record.summary()}", hint=hint)
