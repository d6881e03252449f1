"""Running one command in a session's guest (``vibebox exec``) on this process's stdio.

Apart from the lifecycle because handing descriptors to asyncssh needs care of its own: it
takes ownership of (and closes) the descriptors it is given, makes pipes non-blocking, and
cannot stream what epoll refuses (``/dev/null``). The helpers here give it copies, replace the
unstreamable ones with ``DEVNULL`` and put the blocking mode back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
from collections.abc import Callable, Sequence
from typing import IO, Any

from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback
from vibebox_core.session.running import RunningSession
from vibebox_core.session.start import attach
from vibebox_core.ssh.connect import guest_command, ssh_error


def _fd(stream: IO[Any] | int | None, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        return stream
    return stream.fileno()


def _streamable(fd: int) -> bool:
    """True when asyncssh can stream ``fd``: a regular file, or something epoll accepts."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return True
        poller = select.epoll()
    except OSError:
        return False
    try:
        poller.register(fd, select.EPOLLIN | select.EPOLLOUT)
    except OSError:
        return False
    finally:
        poller.close()
    return True


def _get_blocking(fd: int) -> bool | None:
    try:
        return os.get_blocking(fd)
    except OSError:
        return None


async def run_in_session(
    session: RunningSession,
    argv: Sequence[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> int:
    """Run ``argv`` in the guest (quoted with shlex.join, started in the project mount).

    stdin, stdout and stderr pass through (file objects or descriptors; default this
    process's). Returns the command's exit status (128 + signal when a signal ended it).
    """
    import asyncssh

    command = guest_command(list(argv), cwd=session.guest_project_path)
    originals = [_fd(stdin, 0), _fd(stdout, 1), _fd(stderr, 2)]
    blocking = [_get_blocking(fd) for fd in originals]
    connection = await session.ssh()
    # asyncssh takes ownership of (and closes) the descriptors it is given: hand it copies.
    # Descriptors epoll refuses (/dev/null) become asyncssh's DEVNULL.
    fds: list[int] = [os.dup(fd) if _streamable(fd) else asyncssh.DEVNULL for fd in originals]
    try:
        process = await connection.create_process(
            command, stdin=fds[0], stdout=fds[1], stderr=fds[2], encoding=None
        )
    except (OSError, asyncssh.Error) as exc:
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        raise ssh_error(exc, session.ipv4, session.project) from exc
    try:
        completed = await process.wait()
    except (OSError, asyncssh.Error) as exc:
        raise ssh_error(exc, session.ipv4, session.project) from exc
    finally:
        # The pipes asyncssh made non-blocking share their file status with ours.
        for fd, was in zip(originals, blocking, strict=True):
            if was is not None:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, was)
    if completed.exit_status is not None and completed.exit_status >= 0:
        return completed.exit_status
    signame = completed.exit_signal[0] if completed.exit_signal else ""
    signum = getattr(signal, f"SIG{signame}", None)
    return 128 + int(signum) if signum is not None else 255


async def exec_command(
    project: ProjectPaths,
    argv: Sequence[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    progress: ProgressCallback | None = None,
    hypervisor: Hypervisor | None = None,
    notice: Callable[[str], None] | None = None,
) -> int:
    """``vibebox exec -- CMD...``: start the session if needed, run one command.

    A new session is provisioned first (:func:`~vibebox_core.session.start.attach`); a failing
    step goes to ``notice`` and the command still runs.

    Returns:
        The command's exit status.
    """
    async with attach(
        project, progress, hypervisor=hypervisor, client="exec", notice=notice
    ) as session:
        return await run_in_session(session, argv, stdin=stdin, stdout=stdout, stderr=stderr)
