"""The per-session supervisor: reference count, grace shutdown, and the session's services.

One small detached process runs per running session (``python -m vibebox_core.supervisor
<project-dir>``). It listens on a UNIX socket (:func:`vibebox_core.paths.supervisor_socket_path`)
and every attached vibebox holds one connection to it. A connection is the reference: when a
vibebox exits or crashes the kernel closes it, so the count can never leak. When the count
reaches 0 the supervisor waits ``auto_shutdown_ms``, shuts the VM down (ACPI, forced after a
timeout) and exits; the instance disk is kept.

Protocol: line-delimited JSON, one request per line, one answer per request.

* ``{"op": "attach", "pid": 123, "client": "exec"}`` -> ``{"ok": true, "attached": N}``; the
  connection counts until it closes.
* ``{"op": "status"}`` -> ``{"ok": true, "attached": N, "session_id": ..., "pid": ...,
  "phase": "running" | "grace" | "stopping"}``, plus what the session's services add: the
  network policy's ``"policy": {"applied": "live" | "next start", "pending": [lines]}``
  (approved changes of mode or mounts that wait for the next start).
* ``{"op": "stop"}`` -> ``{"ok": true, "stopped_cleanly": bool}`` once the VM is off.
* ``{"op": "pty", "cols": C, "rows": R}`` -> a login shell on the guest, opened on the
  supervisor's own SSH connection and relayed over this socket from then on
  (:mod:`vibebox_core.supervisor.relay` has the framing). Attaching this way costs no key exchange.

Races. Starting and stopping are serialised by an ``fcntl`` lock on ``.vibebox/supervisor.lock``:
a starting vibebox holds it while it checks for a live supervisor, starts one and attaches; the
supervisor takes it before shutting down and, holding it, checks the count once more. So a
vibebox either attaches before the shutdown begins (and the shutdown is called off) or finds
no supervisor and starts the VM afresh after the old one has stopped it. Two ``vibebox``
started at once in one directory therefore give one VM.

Crashes. A supervisor killed with SIGKILL leaves its socket file and pid file behind;
:func:`probe` sees that the socket does not answer and the pid is gone, and
:func:`clean_stale` removes both under the lock.

Hook. :func:`session_services` is where the session's network services (the NET engineer's
proxy and DNS filter, :class:`vibebox_core.network.enforce.NetworkEnforcer`) start once the VM runs
and stop before it is shut down; their :meth:`SessionServices.status` joins the status answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

from vibebox_core import paths
from vibebox_core.errors import SupervisorError, VibeboxError
from vibebox_core.paths import ProjectPaths

log = logging.getLogger("vibebox.supervisor")

#: Seconds an ACPI shutdown may take before the VM is forced off.
SHUTDOWN_TIMEOUT = 30.0
#: Seconds between checks that the VM still runs.
POLL_INTERVAL = 2.0
#: The first attach must come within this many seconds of start-up (the vibebox that started
#: the supervisor attaches at once; this only matters if it died in between).
STARTUP_GRACE = 30.0
#: Seconds a starting vibebox waits for a new supervisor's socket to answer.
SPAWN_TIMEOUT = 20.0
#: Seconds to wait for one answer on the socket.
REQUEST_TIMEOUT = 10.0
#: Marker in the supervisor's command line (recognises our own pid after a crash).
MODULE = "vibebox_core.supervisor"


class VMControl(Protocol):
    """What the supervisor needs from the VM (a Hypervisor bound to one session)."""

    def state(self) -> str:
        """``running``, ``shut off``, ``missing``, ..."""
        ...

    def start(self) -> None:
        """Start the VM (no-op if it runs)."""
        ...

    def stop(self, timeout: float) -> bool:
        """ACPI shutdown, forced after ``timeout``; True when the guest stopped by itself."""
        ...


@dataclass
class HypervisorVM:
    """:class:`VMControl` over a :class:`~vibebox_core.hypervisor.libvirt.Hypervisor`."""

    hypervisor: Any
    session_id: str

    def state(self) -> str:
        return str(self.hypervisor.state(self.session_id))

    def start(self) -> None:
        self.hypervisor.start(self.session_id)

    def stop(self, timeout: float) -> bool:
        return bool(self.hypervisor.stop(self.session_id, timeout=timeout))


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold the exclusive ``fcntl`` lock on ``lock_path`` (blocking) for the ``with`` body."""
    fd = _acquire(lock_path)
    try:
        yield
    finally:
        os.close(fd)


def _acquire(lock_path: Path) -> int:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


# --------------------------------------------------------------------------- the server


class Terminals(Protocol):
    """Opens guest shells for ``pty`` requests
    (:class:`vibebox_core.supervisor.relay.SharedSSH`)."""

    async def open_shell(self, cols: int, rows: int, command_token: str | None = None) -> Any:
        """A :class:`~vibebox_core.ssh.pty.ByteStream` running a login shell in a PTY (its vibebox
        commands signed with ``command_token``, :mod:`vibebox_core.commandtoken`)."""
        ...

    async def close(self) -> None:
        """Close the SSH connection (before the VM is shut down)."""
        ...


class SessionServices(Protocol):
    """The session's host-side services while the VM runs (the network policy's)."""

    def status(self) -> dict[str, Any]:
        """Fields added to the ``status`` answer (JSON-able, small)."""
        ...

    async def stop(self) -> None:
        """Stop them (before the VM is shut down)."""
        ...


#: A function run when the supervisor is up, returning the services it started (or None).
ServicesHook = Callable[[], Awaitable[SessionServices | None]]


class Supervisor:
    """The reference-counting server of one session.

    Args:
        session_id: the session.
        socket_path: where to listen.
        lock_path: the start/stop lock (``.vibebox/supervisor.lock``).
        vm: the session's VM.
        grace: seconds to wait at count 0 before shutting down.
        shutdown_timeout: seconds for the ACPI shutdown before forcing.
        pid_path: pid file to write (and remove on exit), or None.
        poll_interval: seconds between VM state checks.
        startup_grace: seconds to wait for the first attach.
        services: :data:`ServicesHook` (network policy services), or None.
        terminals: what opens shells for ``pty`` requests, or None (refused).
    """

    def __init__(
        self,
        session_id: str,
        socket_path: Path,
        lock_path: Path,
        vm: VMControl,
        *,
        grace: float,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        pid_path: Path | None = None,
        poll_interval: float = POLL_INTERVAL,
        startup_grace: float = STARTUP_GRACE,
        services: ServicesHook | None = None,
        terminals: Terminals | None = None,
    ) -> None:
        self.session_id = session_id
        self.socket_path = socket_path
        self.lock_path = lock_path
        self.vm = vm
        self.grace = grace
        self.shutdown_timeout = shutdown_timeout
        self.pid_path = pid_path
        self.poll_interval = poll_interval
        self.startup_grace = max(startup_grace, grace)
        self.services = services
        self.terminals = terminals
        self.phase = "starting"
        self.stopped_cleanly: bool | None = None
        self.exit_reason = ""
        self._attached: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._grace_task: asyncio.Task[None] | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._done = asyncio.Event()
        self._lock_fd: int | None = None
        # Grace, power-off and `stop` may all want to shut down at once: one at a time, or a
        # second thread would wait forever for the file lock the first one keeps to exit.
        self._shutdown_guard = asyncio.Lock()
        self._services: SessionServices | None = None

    @property
    def attached(self) -> int:
        """How many vibebox processes hold a connection."""
        return len(self._attached)

    async def run(self) -> str:
        """Serve until the VM is shut down; return why the supervisor stopped."""
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # stale, checked by the launcher under the lock
        # The socket hands out shells on the guest: only this user may reach it (directory
        # 0700 before the socket exists, the socket itself 0600).
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.socket_path.parent, 0o700)
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        if self.pid_path is not None:
            self.pid_path.write_text(f"{os.getpid()}\n")
        log.info("listening on %s (pid %d)", self.socket_path, os.getpid())
        try:
            if await asyncio.to_thread(self.vm.state) != "running":
                log.info("starting the VM")
                await asyncio.to_thread(self.vm.start)
        except VibeboxError as exc:
            log.error("cannot start the VM: %s", exc)
            await self._finish(f"the VM could not start: {exc}")
            return self.exit_reason
        self.phase = "running"
        if self.services is not None:
            try:
                self._services = await self.services()
            except Exception:  # a service failing must not leave the VM running unseen
                log.exception("session services failed to start")
        if not self._attached:
            self._arm(self.startup_grace)
        monitor = asyncio.create_task(self._monitor())
        try:
            await self._done.wait()
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        return self.exit_reason

    def request_stop(self, reason: str = "asked to stop") -> asyncio.Task[None]:
        """Shut the VM down now, whoever is attached (``vibebox stop``, SIGTERM)."""
        if self._shutdown_task is None or self._shutdown_task.done():
            self._shutdown_task = asyncio.create_task(self._shutdown(reason, force=True))
        return self._shutdown_task

    # ---------------------------------------------------------------- count

    def _arm(self, delay: float) -> None:
        self._disarm()
        if self.phase != "running":
            return
        log.info("no vibebox attached; shutting down in %.1f s unless one attaches", delay)
        self._grace_task = asyncio.create_task(self._grace(delay))

    def _disarm(self) -> None:
        if self._grace_task is not None and not self._grace_task.done():
            self._grace_task.cancel()
        self._grace_task = None

    async def _grace(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._grace_task = None  # from here on, an attach must not cancel the shutdown itself
        await self._shutdown(f"nothing attached for {delay:.1f} s", force=False)

    def _detach(self, writer: asyncio.StreamWriter) -> None:
        if writer in self._attached:
            self._attached.discard(writer)
            log.info("detached; %d attached", len(self._attached))
            if not self._attached:
                self._arm(self.grace)

    # ---------------------------------------------------------------- connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await self._send(writer, {"ok": False, "error": "bad request"})
                    continue
                if request.get("op") == "pty":
                    await self._relay(reader, writer, request)
                    break  # the connection carried the terminal; it is done
                answer = await self._answer(request, writer)
                await self._send(writer, answer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            self._detach(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(
        self, request: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self._status()
        if op == "attach":
            if self.phase not in ("starting", "running"):
                return {"ok": False, "error": f"the session is {self.phase}"}
            self._disarm()
            self._attached.add(writer)
            log.info(
                "attached (%s pid %s); %d attached",
                request.get("client", "?"),
                request.get("pid", "?"),
                len(self._attached),
            )
            return {"ok": True, "attached": len(self._attached)}
        if op == "stop":
            await self.request_stop("asked to stop")
            return {"ok": True, "stopped_cleanly": bool(self.stopped_cleanly)}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
        from vibebox_core.supervisor import relay

        terminals = self.terminals
        if terminals is None or self.phase != "running":
            why = "opens no terminals" if terminals is None else f"is {self.phase}"
            await self._send(writer, {"ok": False, "error": f"the session's supervisor {why}"})
            return
        await relay.serve(reader, writer, request, terminals.open_shell)

    def _status(self) -> dict[str, Any]:
        phase = self.phase
        if phase == "running" and self._grace_task is not None:
            phase = "grace"
        answer: dict[str, Any] = {}
        if self._services is not None:
            try:
                answer.update(self._services.status())
            except Exception:  # a status question must never break the supervisor
                log.exception("session services could not say their status")
        answer.update(
            ok=True,
            attached=len(self._attached),
            session_id=self.session_id,
            pid=os.getpid(),
            phase=phase,
        )
        return answer

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()

    # ---------------------------------------------------------------- stopping

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if self.phase != "running":
                continue
            try:
                state = await asyncio.to_thread(self.vm.state)
            except VibeboxError as exc:
                log.warning("cannot read the VM state: %s", exc)
                continue
            if state in ("shut off", "missing"):
                log.info("the VM is %s; stopping", state)
                await self._shutdown(f"the VM is {state}", force=True)
                return

    async def _shutdown(self, reason: str, *, force: bool) -> None:
        async with self._shutdown_guard:
            if self.phase in ("stopping", "stopped"):
                return  # another shutdown got here first and finished
            # Hold the start lock from here to exit, so no vibebox is half-way through attaching.
            fd = await asyncio.to_thread(_acquire, self.lock_path)
            if not force and self._attached:
                os.close(fd)  # somebody attached while we waited for the lock
                return
            await self._stop_holding_lock(fd, reason)

    async def _stop_holding_lock(self, fd: int, reason: str) -> None:
        self._lock_fd = fd
        self._disarm()
        self.phase = "stopping"
        log.info("shutting down: %s", reason)
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._services is not None:
            try:
                await self._services.stop()
            except Exception:
                log.exception("stopping session services failed")
        if self.terminals is not None:
            with contextlib.suppress(Exception):
                await self.terminals.close()  # the relayed shells end before the VM does
        try:
            self.stopped_cleanly = await asyncio.to_thread(self.vm.stop, self.shutdown_timeout)
            log.info("VM %s", "shut down" if self.stopped_cleanly else "forced off")
        except VibeboxError as exc:
            log.error("cannot stop the VM: %s", exc)
            self.stopped_cleanly = False
        await self._finish(reason)

    async def _finish(self, reason: str) -> None:
        self.phase = "stopped"
        self.exit_reason = reason
        for writer in list(self._clients):
            if not writer.is_closing():
                # Answer a pending "stop" before closing; others just see EOF.
                await asyncio.sleep(0)
                with contextlib.suppress(Exception):
                    writer.close()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self.pid_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
        self._done.set()


# --------------------------------------------------------------------------- the client side


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

    async def request(self, op: str, *, timeout: float = REQUEST_TIMEOUT, **fields: Any) -> Any:
        """Send one request and return the answer (a dict with ``ok``)."""
        try:
            self._writer.write((json.dumps({"op": op, **fields}) + "\n").encode())
            await self._writer.drain()
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except (TimeoutError, OSError) as exc:
            raise SupervisorError(
                f"the supervisor did not answer {op!r}: {exc}", hint=_GONE_HINT
            ) from exc
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
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b'{"op": "status"}\n')
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

    Call with the lock held (:func:`locked`) after :func:`probe` found none. The new process
    double-forks into its own session (it is nobody's child, and survives the caller) and logs
    to ``.vibebox/supervisor.log``.

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
    package_root = str(Path(__file__).resolve().parents[2])
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


# --------------------------------------------------------------------------- the process


async def session_services(
    project: ProjectPaths, session_id: str, hypervisor: Any = None
) -> SessionServices | None:
    """Start the session's host-side services; return them (to stop them and ask their status).

    NET: the network policy proxy and DNS filter
    (:func:`vibebox_core.network.enforce.start_session_network`, on the session network's gateway)
    start here, once the VM runs, enforcing the policy approved in the session index, and stop
    before the VM is shut down. Their status says whether an approved change waits for the
    next start.
    """
    from vibebox_core.index.sessions import SessionIndex
    from vibebox_core.network.enforce import read_approved, start_session_network

    if hypervisor is None:
        return None
    subnet = await asyncio.to_thread(hypervisor.network_subnet, session_id)
    if subnet is None:
        log.error("network policy: the session has no network; the guest gets no egress")
        return None

    def approved() -> dict[str, Any] | None:
        return read_approved(SessionIndex().get(session_id).extra)

    network = await start_session_network(
        project.network_log,
        subnet,
        approved,
        on_change=lambda when: log.info("approved network policy change applies: %s", when),
    )
    enforcer = network.enforcer
    log.info(
        "network policy %s: proxy on %s:%d, DNS filter on %s:%d",
        enforcer.policy.mode,
        enforcer.gateway_ip,
        enforcer.proxy_port,
        enforcer.gateway_ip,
        enforcer.dns_port,
    )
    return network


def _daemonize() -> None:
    """Second fork: the first child exits so the daemon is re-parented (not our caller's)."""
    if os.fork() > 0:
        os._exit(0)


def _setup_logging(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _serve(project: ProjectPaths, session_id: str, uri: str, grace_ms: int) -> int:
    from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
    from vibebox_core.supervisor.relay import SharedSSH

    hypervisor = LibvirtHypervisor(uri, poll_interval=0.05)  # notice the power-off quickly
    supervisor = Supervisor(
        session_id,
        paths.supervisor_socket_path(session_id),
        project.supervisor_lock,
        HypervisorVM(hypervisor, session_id),
        grace=grace_ms / 1000.0,
        pid_path=project.supervisor_pid,
        services=lambda: session_services(project, session_id, hypervisor),
        terminals=SharedSSH(project),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: supervisor.request_stop("signal"))
    reason = await supervisor.run()
    log.info("exiting: %s", reason)
    hypervisor.close()
    return 0


def _config_defaults(project: ProjectPaths) -> tuple[str, int]:
    from vibebox_core.config.approval import enforced_config

    config = enforced_config(project)  # the approved snapshot, never the guest-writable file
    return config.box.libvirt_uri, config.supervisor.auto_shutdown_ms


def main(argv: list[str] | None = None) -> int:
    """``python -m vibebox_core.supervisor <project-dir>``: run one session's supervisor."""
    parser = argparse.ArgumentParser(prog="python -m vibebox_core.supervisor")
    parser.add_argument("project")
    parser.add_argument("--session-id")
    parser.add_argument("--uri")
    parser.add_argument("--grace-ms", type=int)
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    project = ProjectPaths.for_directory(args.project)
    try:
        session_id = args.session_id or project.session_id.read_text().strip()
        uri, grace_ms = args.uri, args.grace_ms
        if uri is None or grace_ms is None:
            default_uri, default_grace = _config_defaults(project)
            uri = uri or default_uri
            grace_ms = default_grace if grace_ms is None else grace_ms
    except (OSError, VibeboxError) as exc:
        print(f"supervisor: cannot start: {exc}", file=sys.stderr)
        return 1
    if not args.foreground:
        _daemonize()
        with contextlib.suppress(OSError):
            os.setsid()
    _setup_logging(project.supervisor_log)
    try:
        return asyncio.run(_serve(project, session_id, uri, grace_ms))
    except Exception:
        log.exception("supervisor failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
