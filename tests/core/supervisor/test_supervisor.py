"""The supervisor's reference count, grace shutdown and lock, on a fake VM (supervisor.server)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.errors import SupervisorError
from vibebox_core.network.enforce import SessionNetwork
from vibebox_core.network.enforcer import NetworkEnforcer
from vibebox_core.network.follow import ApprovalFollower, policy_from_canonical
from vibebox_core.paths import ProjectPaths
from vibebox_core.supervisor import client, lock
from vibebox_core.supervisor.client import SupervisorConnection
from vibebox_core.supervisor.server import Supervisor

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


class FakeVM:
    def __init__(self) -> None:
        self.running = False
        self.starts = 0
        self.stops = 0

    def state(self) -> str:
        return "running" if self.running else "shut off"

    def start(self) -> None:
        self.starts += 1
        self.running = True

    def stop(self, timeout: float) -> bool:
        self.stops += 1
        self.running = False
        return True


def make(project: ProjectPaths, vm: FakeVM, grace: float = 0.3, **kw: float) -> Supervisor:
    return Supervisor(
        SID,
        paths.supervisor_socket_path(SID),
        project.supervisor_lock,
        vm,
        grace=grace,
        pid_path=project.supervisor_pid,
        poll_interval=kw.get("poll_interval", 0.05),
        startup_grace=kw.get("startup_grace", 5.0),
        shutdown_timeout=1.0,
    )


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


Running = tuple[Supervisor, FakeVM, asyncio.Task[str]]
"""The ``running`` fixture: a supervisor running its fake VM, and the task of its run()."""


@pytest.fixture
async def running(project: ProjectPaths) -> AsyncIterator[Running]:
    vm = FakeVM()
    sup = make(project, vm)
    task = asyncio.create_task(sup.run())
    await wait_for(lambda: sup.phase == "running")
    yield sup, vm, task
    if not task.done():
        sup.request_stop()
        await asyncio.wait_for(task, 5)


async def connect() -> SupervisorConnection:
    return await SupervisorConnection.open(paths.supervisor_socket_path(SID))


async def test_starts_the_vm_and_writes_its_pid(running: Running, project: ProjectPaths) -> None:
    _sup, vm, _ = running
    assert vm.starts == 1
    assert project.supervisor_pid.read_text().strip() == str(os.getpid())
    status = await asyncio.to_thread(client.status_sync, paths.supervisor_socket_path(SID))
    assert status is not None and status["attached"] == 0 and status["session_id"] == SID


async def test_counts_attachments_and_shuts_down_after_the_grace(
    running: Running, project: ProjectPaths
) -> None:
    sup, vm, task = running
    first, second = await connect(), await connect()
    assert await first.attach("a") == 1
    assert await second.attach("b") == 2
    observer = await connect()
    assert (await observer.status())["attached"] == 2  # a status connection does not count
    await first.close()
    await wait_for(lambda: sup.attached == 1)
    await asyncio.sleep(0.5)  # longer than the grace: one is still attached
    assert vm.running
    await second.close()
    assert await asyncio.wait_for(task, 5) == "nothing attached for 0.3 s"
    assert vm.stops == 1 and not vm.running
    assert not paths.supervisor_socket_path(SID).exists()
    assert not project.supervisor_pid.exists()
    await observer.close()


async def test_an_attach_during_the_grace_calls_the_shutdown_off(running: Running) -> None:
    sup, vm, task = running
    conn = await connect()
    await conn.attach()
    await conn.close()
    await wait_for(lambda: sup.attached == 0)
    again = await connect()
    await again.attach()
    await asyncio.sleep(0.5)
    assert vm.running and not task.done()
    await again.close()
    await asyncio.wait_for(task, 5)


async def test_a_dropped_connection_detaches_at_once(running: Running) -> None:
    sup, _, _ = running
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, str(paths.supervisor_socket_path(SID)))
    await loop.sock_sendall(raw, b'{"op": "attach", "pid": 1}\n')
    assert b'"attached": 1' in await loop.sock_recv(raw, 100)
    raw.close()  # what the kernel does when a vibebox is SIGKILLed
    await wait_for(lambda: sup.attached == 0, timeout=1.0)


async def test_stop_shuts_down_with_attachments(running: Running) -> None:
    _sup, vm, task = running
    held = await connect()
    await held.attach()
    stopper = await connect()
    with pytest.raises(SupervisorError):
        await stopper.request("stop")  # the answer may be the closed connection
    await asyncio.wait_for(task, 5)
    assert not vm.running
    await held.wait_closed()
    assert held.closed


async def test_exits_when_the_vm_stops_by_itself(running: Running) -> None:
    _sup, vm, task = running
    held = await connect()
    await held.attach()
    vm.running = False
    assert await asyncio.wait_for(task, 5) == "the VM is shut off"
    await held.close()


async def test_the_lock_holds_a_shutdown_until_a_starter_attached(
    running: Running, project: ProjectPaths
) -> None:
    sup, vm, task = running
    conn = await connect()
    await conn.attach()
    with lock.locked(project.supervisor_lock):
        await conn.close()
        await asyncio.sleep(0.6)  # grace over; the shutdown waits for the lock
        assert vm.running and sup.phase == "running"
        late = await connect()
        await late.attach()
    await asyncio.sleep(0.3)
    assert vm.running and not task.done()
    await late.close()
    await asyncio.wait_for(task, 5)


async def test_bad_requests_get_an_error(running: Running) -> None:
    conn = await connect()
    assert (await conn.request("dance"))["ok"] is False
    await conn.close()


async def test_shutdowns_racing_for_the_lock_end_in_one_stop(
    running: Running, project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grace, power-off and `stop` all wanting to shut down while a starter holds the lock
    give one shutdown, and no thread is left waiting for the lock (that thread would keep
    the finished supervisor process from exiting)."""
    sup, vm, task = running
    waiting = 0
    real_acquire = lock.acquire

    def counting_acquire(lock_path: Path) -> int:
        nonlocal waiting
        waiting += 1
        try:
            return real_acquire(lock_path)
        finally:
            waiting -= 1

    monkeypatch.setattr(lock, "acquire", counting_acquire)
    conn = await connect()
    await conn.attach()
    with lock.locked(project.supervisor_lock):
        await conn.close()
        await asyncio.sleep(0.5)  # the grace ran out: its shutdown waits for the lock
        vm.running = False  # the monitor wants to shut down too
        await asyncio.sleep(0.2)
        sup.request_stop()  # and so does `vibebox stop`
        await asyncio.sleep(0.2)
    await asyncio.wait_for(task, 5)
    await wait_for(lambda: waiting == 0, timeout=2.0)
    assert vm.stops == 1


async def test_status_says_whether_the_approved_policy_waits_for_the_next_start(
    project: ProjectPaths,
) -> None:
    start = {"version": 1, "mounts": [], "network": {"mode": "allowlist", "entries": ["a.test"]}}
    enforcer = NetworkEnforcer(policy_from_canonical(start), project.network_log, "127.0.0.1")
    network = SessionNetwork(enforcer, ApprovalFollower(enforcer, start))
    stopped: list[bool] = []

    async def stop() -> None:
        stopped.append(True)

    network.stop = stop  # type: ignore[method-assign]

    async def services() -> SessionNetwork:
        return network

    vm = FakeVM()
    sup = Supervisor(
        SID,
        paths.supervisor_socket_path(SID),
        project.supervisor_lock,
        vm,
        grace=5.0,
        poll_interval=0.05,
        services=services,
    )
    task = asyncio.create_task(sup.run())
    conn = await connect_when_up(sup)
    try:
        status = await conn.status()
        assert status["policy"] == {"applied": "live", "pending": []}
        network.follower.update({**start, "network": {"mode": "blocklist", "entries": []}})
        polled = await asyncio.to_thread(client.status_sync, paths.supervisor_socket_path(SID))
        assert polled is not None and polled["policy"] == {
            "applied": "next start",
            "pending": ["~ network mode: allowlist → blocklist"],
        }
    finally:
        await conn.close()
        sup.request_stop()
        await asyncio.wait_for(task, 5)
    assert stopped == [True] and vm.stops == 1


async def connect_when_up(sup: Supervisor) -> SupervisorConnection:
    await wait_for(lambda: sup.phase == "running" and sup._services is not None)
    return await connect()
