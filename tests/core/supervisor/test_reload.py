"""The supervisor's ``reload`` op: the session's services apply the approved policy now."""

from __future__ import annotations

import asyncio
from typing import Any

from core.supervisor.fakes import RunningVM

from vibebox_core import paths
from vibebox_core.network.enforce import SessionNetwork
from vibebox_core.network.enforcer import NetworkEnforcer
from vibebox_core.network.follow import ApprovalFollower, policy_from_canonical
from vibebox_core.paths import ProjectPaths
from vibebox_core.supervisor import client
from vibebox_core.supervisor.roles import SessionServices
from vibebox_core.supervisor.server import Supervisor

SID = "019bf290-dddd-7c23-ba1d-dce7e6d40693"


def policy(*entries: str) -> dict[str, Any]:
    return {"version": 1, "mounts": [], "network": {"mode": "allowlist", "entries": list(entries)}}


async def serve(project: ProjectPaths, services: SessionServices | None) -> Supervisor:
    async def hook() -> SessionServices | None:
        return services

    supervisor = Supervisor(
        SID,
        paths.supervisor_socket_path(SID),
        project.supervisor_lock,
        RunningVM(),
        grace=60.0,
        services=hook if services is not None else None,
    )
    return supervisor


async def run_until_up(supervisor: Supervisor, with_services: bool) -> asyncio.Task[str]:
    task = asyncio.create_task(supervisor.run())
    while supervisor.phase != "running" or (with_services and supervisor._services is None):
        await asyncio.sleep(0.01)
    return task


async def test_reload_applies_the_approved_policy_before_it_answers(
    project: ProjectPaths,
) -> None:
    approved = policy("a.test")
    enforcer = NetworkEnforcer(policy_from_canonical(approved), project.network_log, "127.0.0.1")
    changes: list[str] = []
    network = SessionNetwork(
        enforcer, ApprovalFollower(enforcer, approved), approved=lambda: approved
    )
    network.on_change = changes.append
    supervisor = await serve(project, network)
    task = await run_until_up(supervisor, True)
    try:
        approved = policy("a.test", "b.test")  # what the next read returns
        socket_path = paths.supervisor_socket_path(SID)
        answer = await asyncio.to_thread(client.reload_sync, socket_path)
        assert answer == {
            "ok": True,
            "policy": {"applied": "live", "pending": []},
            "mode": "allowlist",
        }
        assert enforcer.policy.decide("b.test").allowed
        assert changes == ["live"]
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 5)


async def test_without_services_reload_is_refused_and_no_supervisor_is_none(
    project: ProjectPaths,
) -> None:
    socket_path = paths.supervisor_socket_path(SID)
    assert await asyncio.to_thread(client.reload_sync, socket_path) is None
    supervisor = await serve(project, None)
    task = await run_until_up(supervisor, False)
    try:
        assert await asyncio.to_thread(client.reload_sync, socket_path) is None
        conn = await client.SupervisorConnection.open(socket_path)
        answer = await conn.request("reload")
        await conn.close()
        assert answer["ok"] is False and "policy services" in answer["error"]
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 5)
