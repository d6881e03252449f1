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
* ``{"op": "reload"}`` -> ``{"ok": true, "policy": {...}, "mode": M}`` (``policy`` as in
  ``status``, ``mode`` the network mode in force) once the services read the approved policy
  again and applied it, without waiting for their 2-s poll (``vibebox allow``/``block`` send
  it after writing an approval).
* ``{"op": "stop"}`` -> ``{"ok": true, "stopped_cleanly": bool}`` once the VM is off.
* ``{"op": "pty", "cols": C, "rows": R}`` -> a login shell on the guest, opened on the
  supervisor's own SSH connection and relayed over this socket from then on
  (:mod:`vibebox_core.supervisor.relay` has the framing). Attaching this way costs no key
  exchange.
* ``{"op": "ssh", "booted": bool, "accel": "tcg" | "kvm"}`` -> progress lines
  ``{"progress": {"step": ..., "detail": ..., "elapsed": s, "done": bool}}``, then
  ``{"ok": true, "ipv4": A}`` once the guest answers SSH with its pinned host key (the
  supervisor's connection from then on), or ``{"ok": false, "error", "hint", "kind"}`` (``kind``:
  ``vm``, ``ssh``, ``ssh-auth``, ...: the error's class, :func:`~vibebox_core.supervisor.client.
  error_kind`). A vibebox that booted the VM has the supervisor wait for its SSH, so it needs
  no SSH connection (nor SSH library) of its own.
* ``{"op": "forward"}`` -> ``{"ok": true, "problems": [{"message", "hint"}]}``: the approved
  ``[network] ports`` are forwarded (host loopback -> guest) on the supervisor's connection
  while this connection, or another one that asked, stays open; ``problems`` are the ports
  that could not be.

Races. Starting and stopping are serialised by the start/stop lock
(:mod:`vibebox_core.supervisor.lock`): the supervisor takes it before shutting down and,
holding it, checks the count once more, so two ``vibebox`` started at once in one directory
give one VM. How a vibebox finds, starts and reaches a supervisor is in
:mod:`vibebox_core.supervisor.client`; how one is built and run, in
:mod:`vibebox_core.supervisor.__main__`.

Roles. The supervisor sees the VM, the shells it relays and the network policy's services
through the role interfaces of :mod:`vibebox_core.supervisor.roles`. The services start once
the VM runs and stop before it is shut down; their ``status()`` joins the status answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from vibebox_core.errors import VibeboxError
from vibebox_core.progress import ProgressEvent
from vibebox_core.supervisor import lock, relay
from vibebox_core.supervisor.client import error_kind
from vibebox_core.supervisor.roles import (
    Forwarded,
    ServicesHook,
    SessionServices,
    Terminals,
    VMControl,
)

log = logging.getLogger("vibebox.supervisor")

#: Seconds an ACPI shutdown may take before the VM is forced off.
SHUTDOWN_TIMEOUT = 30.0
#: Seconds between checks that the VM still runs.
POLL_INTERVAL = 2.0
#: The first attach must come within this many seconds of start-up (the vibebox that started
#: the supervisor attaches at once; this only matters if it died in between).
STARTUP_GRACE = 30.0


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
        # The port forwards, opened for the first connection that asks and closed when the
        # last one that asked is gone (two dashboards share them, rather than the second
        # finding its ports taken by the first).
        self._forwards: Forwarded | None = None
        self._forward_holders: set[asyncio.StreamWriter] = set()
        self._forward_lock = asyncio.Lock()

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
            self._release_forwards(writer)
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
        if op == "reload":
            return await self._reload()
        if op == "stop":
            await self.request_stop("asked to stop")
            return {"ok": True, "stopped_cleanly": bool(self.stopped_cleanly)}
        if op == "ssh":
            return await self._wait_for_ssh(request, writer)
        if op == "forward":
            return await self._forward(writer)
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _guest(self, *phases: str) -> Terminals | dict[str, Any]:
        """The way into the guest, or the refusal to answer when there is none (now)."""
        terminals = self.terminals
        if terminals is None or self.phase not in phases:
            why = "has no SSH to the guest" if terminals is None else f"is {self.phase}"
            return {"ok": False, "error": f"the session's supervisor {why}", "kind": "supervisor"}
        return terminals

    async def _wait_for_ssh(
        self, request: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        terminals = self._guest("starting", "running")
        if isinstance(terminals, dict):
            return terminals
        accel = "kvm" if request.get("accel") == "kvm" else "tcg"

        def progress(event: ProgressEvent) -> None:
            line = {
                "step": event.step,
                "detail": event.detail,
                "elapsed": round(event.elapsed, 3),
                "done": event.done,
            }
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.write((json.dumps({"progress": line}) + "\n").encode())

        try:
            ipv4 = await terminals.wait_for_ssh(
                booted=request.get("booted") is True, accel=accel, progress=progress
            )
        except VibeboxError as exc:
            log.info("the guest's SSH did not answer: %s", exc.message)
            return _refusal(exc)
        return {"ok": True, "ipv4": ipv4}

    async def _forward(self, writer: asyncio.StreamWriter) -> dict[str, Any]:
        terminals = self._guest("running")
        if isinstance(terminals, dict):
            return terminals
        async with self._forward_lock:
            if self._forwards is None:
                try:
                    self._forwards = await terminals.open_forwards()
                except VibeboxError as exc:
                    return _refusal(exc)
            self._forward_holders.add(writer)
            problems = [{"message": p.message, "hint": p.hint} for p in self._forwards.problems]
        if writer.is_closing():  # it left while the forwards opened
            self._release_forwards(writer)
        return {"ok": True, "problems": problems}

    def _release_forwards(self, writer: asyncio.StreamWriter) -> None:
        self._forward_holders.discard(writer)
        if not self._forward_holders:
            self._close_forwards()

    def _close_forwards(self) -> None:
        forwards, self._forwards = self._forwards, None
        if forwards is not None:
            forwards.close()
            log.info("port forwards closed")

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
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

    async def _reload(self) -> dict[str, Any]:
        if self._services is None:
            return {"ok": False, "error": "the session runs no policy services"}
        try:
            return {**await self._services.reload(), "ok": True}
        except Exception:  # like status: a reload must never break the supervisor
            log.exception("session services could not reload the approved policy")
            return {"ok": False, "error": "the session's services could not reload the policy"}

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
            fd = await asyncio.to_thread(lock.acquire, self.lock_path)
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
        self._forward_holders.clear()
        self._close_forwards()
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


def _refusal(exc: VibeboxError) -> dict[str, Any]:
    """The answer that carries ``exc`` to the client (raised there as the same class)."""
    return {"ok": False, "error": exc.message, "hint": exc.hint, "kind": error_kind(exc)}
