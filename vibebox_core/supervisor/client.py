"""Reaching a session's supervisor from a vibebox process: probe, spawn, connect, ask.

A vibebox process finds out whether the session's supervisor lives (:func:`probe`, which asks
over the UNIX socket and tells a crash's leftovers from no supervisor at all), removes what a
crashed one left (:func:`clean_stale`), starts a new one (:func:`spawn`, a detached
``python -m vibebox_core.supervisor``) and talks to it (:class:`SupervisorConnection`,
:func:`open_socket`, :func:`status_sync`, :func:`reload_sync`). Call :func:`spawn` and
:func:`clean_stale` holding the start/stop lock (:mod:`vibebox_core.supervisor.lock`). The
protocol is in :mod:`vibebox_core.supervisor.server`.

Crashes. A supervisor killed with SIGKILL leaves its socket file and pid file behind;
:func:`probe` sees that the socket does not answer, and :func:`clean_stale` removes both (and
kills a supervisor that is still there but does not answer). A pid is only ever taken for a
supervisor when its command line holds :data:`MODULE` and the session id, the same words before
and after the move into a package, so supervisors started by an older vibebox are recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

from vibebox_core import paths
from vibebox_core.errors import (
    NetworkPolicyError,
    SSHAuthError,
    SSHError,
    SupervisorError,
    VibeboxError,
    VMError,
)
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressEvent

log = logging.getLogger("vibebox.supervisor")

#: Seconds a starting vibebox waits for a new supervisor's socket to answer.
SPAWN_TIMEOUT = 20.0
#: Seconds to wait for one answer on the socket.
REQUEST_TIMEOUT = 10.0
#: Marker in the supervisor's command line (recognises our own pid after a crash).
MODULE = "vibebox_core.supervisor"
#: The directory that holds ``vibebox_core`` (this file is ``vibebox_core/supervisor/client.py``):
#: :func:`spawn` puts it first on the supervisor's ``PYTHONPATH``.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


#: The next step when the supervisor went away mid-request (it was killed, or it stopped).
_GONE_HINT = (
    "the session's supervisor stopped or was killed; run the command again (vibebox starts a "
    "new one), or `vibebox stop` then `vibebox`; its log is .vibebox/supervisor.log"
)


class SupervisorConnection:
    """One open connection to a supervisor (an attachment once :meth:`attach` succeeded)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.attached = False

    @classmethod
    async def open(cls, socket_path: Path, *, timeout: float = REQUEST_TIMEOUT) -> Self:
        """Connect to the supervisor's socket.

        Raises:
            SupervisorError: nobody listens (no supervisor, or a stale socket).
        """
        return cls(*await open_socket(socket_path, timeout=timeout))

    async def request(
        self,
        op: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        progress: ProgressCallback | None = None,
        **fields: Any,
    ) -> Any:
        """Send one request and return the answer (a dict with ``ok``).

        A long request (``ssh``) may send progress lines first (``{"progress": {...}}``):
        each goes to ``progress`` as a :class:`~vibebox_core.progress.ProgressEvent`, and
        ``timeout`` is how long the supervisor may stay silent between two lines.
        """
        try:
            self._writer.write((json.dumps({"op": op, **fields}) + "\n").encode())
            await self._writer.drain()
            while True:
                line = await asyncio.wait_for(self._reader.readline(), timeout)
                answer = _decode(line, op)
                event = answer.get("progress")
                if event is None:
                    return answer
                if progress is not None and isinstance(event, dict):
                    progress(_progress_event(event))
        except (TimeoutError, OSError) as exc:
            raise SupervisorError(
                f"the supervisor did not answer {op!r}: {exc}", hint=_GONE_HINT
            ) from exc

    async def attach(self, client: str = "vibebox") -> int:
        """Count this connection; return the new count.

        Raises:
            SupervisorError: the supervisor is shutting down.
        """
        answer = await self.request("attach", pid=os.getpid(), client=client)
        if not answer.get("ok"):
            raise SupervisorError(f"cannot attach: {answer.get('error', 'refused')}")
        self.attached = True
        return int(answer.get("attached", 0))

    async def wait_for_ssh(
        self, *, booted: bool, accel: str, progress: ProgressCallback | None = None
    ) -> str:
        """Have the supervisor wait until the guest answers SSH with its pinned host key (the
        connection it then shares); the guest's address.

        The steps go to ``progress`` as the supervisor takes them. This process loads no SSH
        library for it: the dashboard's terminal and forwards come from the supervisor too.

        Raises:
            VMError: the VM stopped or gave no SSH within the boot timeout (its console log
                quoted), as :func:`~vibebox_core.ssh.wait.wait_for_ssh` raises it.
            SSHAuthError: the guest's host key is not the pinned one, or it refused our key.
            SSHError, SupervisorError: the guest or the supervisor cannot be reached.
        """
        answer = await self.request(
            "ssh",
            booted=booted,
            accel=accel,
            progress=progress,
            timeout=_SSH_SILENCE,
        )
        if not answer.get("ok"):
            raise _guest_error(answer)
        ipv4 = answer.get("ipv4")
        if not isinstance(ipv4, str) or not ipv4:
            raise SupervisorError("the supervisor sent a bad answer to 'ssh'")
        return ipv4

    async def forward_ports(self) -> list[NetworkPolicyError]:
        """Have the supervisor forward the approved ``[network] ports`` (host loopback ->
        guest) while this connection is open; the ports it could not forward.

        Raises:
            SSHError, SupervisorError: the guest or the supervisor cannot be reached.
        """
        answer = await self.request("forward", timeout=_SSH_SILENCE)
        if not answer.get("ok"):
            raise _guest_error(answer)
        problems = answer.get("problems")
        return [
            NetworkPolicyError(str(item.get("message", "")), hint=str(item.get("hint", "")))
            for item in (problems if isinstance(problems, list) else [])
            if isinstance(item, dict)
        ]

    async def status(self) -> dict[str, Any]:
        """The supervisor's status (``attached``, ``phase``, ``pid``...)."""
        answer: dict[str, Any] = await self.request("status")
        return answer

    async def wait_closed(self) -> None:
        """Return when the supervisor closes the connection (it stopped)."""
        with contextlib.suppress(OSError):
            while await self._reader.read(4096):
                pass

    @property
    def closed(self) -> bool:
        """True once the supervisor closed the connection, or :meth:`close` was called."""
        return self._writer.is_closing() or self._reader.at_eof()

    async def close(self) -> None:
        """Close the connection (detaches)."""
        self.attached = False
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


#: Seconds the supervisor may stay silent during ``ssh`` or ``forward``: at most the longest
#: boot timeout (:data:`vibebox_core.ssh.wait.BOOT_TIMEOUT`, which it enforces) and
#: a margin.
_SSH_SILENCE = 330.0

#: The errors a supervisor reports by ``kind`` (anything else is a SupervisorError).
_KINDS: dict[str, type[VibeboxError]] = {
    "vm": VMError,
    "ssh": SSHError,
    "ssh-auth": SSHAuthError,
    "network": NetworkPolicyError,
}


def error_kind(exc: VibeboxError) -> str:
    """The ``kind`` an error is sent as (the most specific class of :data:`_KINDS`)."""
    for kind, cls in reversed(_KINDS.items()):
        if isinstance(exc, cls):
            return kind
    return "supervisor"


def _guest_error(answer: dict[str, Any]) -> VibeboxError:
    cls = _KINDS.get(str(answer.get("kind")), SupervisorError)
    message = str(answer.get("error") or "the supervisor refused")
    return cls(message, hint=str(answer.get("hint") or ""))


def _decode(line: bytes, op: str) -> dict[str, Any]:
    if not line:
        raise SupervisorError(
            f"the supervisor closed the connection (during {op!r})", hint=_GONE_HINT
        )
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise SupervisorError(f"the supervisor sent a bad answer to {op!r}") from exc
    if not isinstance(answer, dict):
        raise SupervisorError(f"the supervisor sent a bad answer to {op!r}")
    return answer


def _progress_event(fields: dict[str, Any]) -> ProgressEvent:
    elapsed = fields.get("elapsed")
    return ProgressEvent(
        str(fields.get("step", "")),
        str(fields.get("detail", "")),
        float(elapsed) if isinstance(elapsed, int | float) else 0.0,
        bool(fields.get("done")),
    )


async def open_socket(
    socket_path: Path, *, timeout: float = REQUEST_TIMEOUT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a supervisor's socket.

    Raises:
        SupervisorError: nobody listens (no supervisor, or a stale socket).
    """
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path)), timeout)
    except (TimeoutError, OSError) as exc:
        raise SupervisorError(
            f"no supervisor answers on {socket_path}",
            hint="start the session with `vibebox`",
        ) from exc


def status_sync(socket_path: Path, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """Ask a supervisor for its status without an event loop; None when nobody answers."""
    return _ask_sync(socket_path, "status", timeout)


def reload_sync(socket_path: Path, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """Have a supervisor apply the approved policy now (the ``reload`` op), without an event
    loop; its answer (``{"ok": true, "policy": ...}``), or None when no supervisor answers
    (none runs: the change applies at the next start) or it could not reload."""
    return _ask_sync(socket_path, "reload", timeout)


def _ask_sync(socket_path: Path, op: str, timeout: float) -> dict[str, Any] | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall((json.dumps({"op": op}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and answer.get("ok") else None


def _pid_of(pid_path: Path) -> int | None:
    try:
        text = pid_path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _is_our_supervisor(pid: int, session_id: str | None = None) -> bool:
    """True when ``pid`` runs a vibebox supervisor (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [w.decode(errors="replace") for w in cmdline]
    if MODULE not in words:
        return False
    return session_id is None or session_id in words


def probe(project: ProjectPaths, session_id: str) -> tuple[str, dict[str, Any] | None]:
    """Say whether the session's supervisor is alive.

    Returns:
        (``"alive"``, status) when it answers; (``"stale"``, None) when a socket or pid file
        is left from a crash; (``"none"``, None) when there is no trace of one.
    """
    socket_path = paths.supervisor_socket_path(session_id)
    status = status_sync(socket_path)
    if status is not None:
        return "alive", status
    if socket_path.exists() or project.supervisor_pid.exists():
        return "stale", None
    return "none", None


def clean_stale(project: ProjectPaths, session_id: str, *, wait: float = 5.0) -> None:
    """Remove what a crashed supervisor left; call with the lock held and nobody answering.

    A supervisor process that is still there but does not answer (hung, or finishing its exit)
    is given ``wait`` seconds to go, then killed.
    """
    pid = _pid_of(project.supervisor_pid)
    if pid is not None and _is_our_supervisor(pid, session_id):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _is_our_supervisor(pid, session_id):
            time.sleep(0.1)
        if _is_our_supervisor(pid, session_id):
            log.warning("supervisor pid %d does not answer; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for path in (paths.supervisor_socket_path(session_id), project.supervisor_pid):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def spawn(
    project: ProjectPaths,
    session_id: str,
    *,
    uri: str,
    grace_ms: int,
    timeout: float = SPAWN_TIMEOUT,
) -> None:
    """Start a detached supervisor for the session and wait until its socket answers.

    Call with the lock held (:func:`vibebox_core.supervisor.lock.locked`) after :func:`probe`
    found none. The new process double-forks into its own session (it is nobody's child, and
    survives the caller) and logs to ``.vibebox/supervisor.log``.

    Raises:
        SupervisorError: it did not come up (quotes the end of its log).
    """
    socket_path = paths.supervisor_socket_path(session_id)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    check_socket_path(socket_path)
    argv = [
        sys.executable,
        "-m",
        MODULE,
        str(project.root),
        "--session-id",
        session_id,
        "--uri",
        uri,
        "--grace-ms",
        str(grace_ms),
    ]
    # Run the same vibebox_core as the caller, installed or not.
    package_root = str(PACKAGE_ROOT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(project.supervisor_log, "ab") as logfile:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=logfile,
            close_fds=True,
            start_new_session=True,
            cwd="/",
            env=env,
        )
    child.wait()  # the first fork exits at once; the daemon lives on, reparented
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_sync(socket_path, timeout=1.0) is not None:
            return
        time.sleep(0.02)
    raise SupervisorError(
        f"the session supervisor did not start within {timeout:.0f} s",
        hint=f"its log: {project.supervisor_log}\n{_tail(project.supervisor_log)}",
    )


def check_socket_path(socket_path: Path) -> None:
    """Refuse a socket path too long for ``sun_path`` (107 bytes) with a clear message."""
    if len(os.fsencode(socket_path)) > 107:
        raise SupervisorError(
            f"the supervisor socket path is too long for a UNIX socket: {socket_path}",
            hint="set VIBEBOX_HOME to a shorter directory",
        )


def _tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
