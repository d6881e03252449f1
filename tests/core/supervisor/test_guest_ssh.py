"""The supervisor's SSH for a vibebox that holds none: a boot's wait, and the port forwards.

The supervisor is the real :class:`~vibebox_core.supervisor.server.Supervisor` on a fake VM;
its SSH is the fake :class:`~core.supervisor.fakes.Terminals`. The real SSH side (the guest's
lease, then its sshd) is covered by ``tests/e2e/test_terminal_e2e.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from core.supervisor.fakes import Terminals, serving, wait_until

from vibebox_core.errors import (
    NetworkPolicyError,
    SSHAuthError,
    SSHError,
    SupervisorError,
    VibeboxError,
    VMError,
)
from vibebox_core.progress import ProgressEvent
from vibebox_core.supervisor.client import SupervisorConnection


async def test_a_boot_is_waited_for_by_the_supervisor_and_its_steps_reach_the_client(
    short_home: Path,
) -> None:
    shells = Terminals()
    shells.steps = [
        ProgressEvent("waiting for the VM's address", "DHCP lease", 0.2),
        ProgressEvent("waiting for SSH", "10.0.0.5", 3.25),
    ]
    async for sup in serving(short_home, shells):
        connection = await SupervisorConnection.open(sup.socket_path)
        events: list[ProgressEvent] = []
        ipv4 = await connection.wait_for_ssh(booted=True, accel="tcg", progress=events.append)
        assert ipv4 == "10.0.0.5"
        assert events == shells.steps
        # Only "kvm" or "tcg" reach the wait (a boot timeout is looked up by it).
        await connection.wait_for_ssh(booted=False, accel="'; rm -rf /", progress=None)
        assert shells.waits == [(True, "tcg"), (False, "tcg")]
        await connection.close()


@pytest.mark.parametrize(
    "error",
    [
        VMError("the VM gave no SSH within 240 s with accel=tcg", hint="set accel"),
        SSHAuthError("refusing to connect: not the pinned host key", hint="recreate"),
        SSHError("connection refused", hint="try again"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_failed_boot_reaches_the_client_as_the_same_error(
    short_home: Path, error: VibeboxError
) -> None:
    shells = Terminals()
    shells.boot_error = error
    async for sup in serving(short_home, shells):
        connection = await SupervisorConnection.open(sup.socket_path)
        with pytest.raises(VibeboxError) as caught:
            await connection.wait_for_ssh(booted=True, accel="tcg")
        assert type(caught.value) is type(error)
        assert (caught.value.message, caught.value.hint) == (error.message, error.hint)
        # The connection still answers afterwards (it stays the attachment).
        assert (await connection.status())["ok"]
        await connection.close()


async def test_forwards_are_shared_and_closed_with_the_last_connection_that_asked(
    short_home: Path,
) -> None:
    shells = Terminals()
    taken = NetworkPolicyError("127.0.0.1:8080 is already in use", hint="stop it")
    shells.problems = [taken]
    async for sup in serving(short_home, shells):
        first = await SupervisorConnection.open(sup.socket_path)
        second = await SupervisorConnection.open(sup.socket_path)
        bystander = await SupervisorConnection.open(sup.socket_path)
        for connection in (first, second):
            problems = await connection.forward_ports()
            assert [(p.message, p.hint) for p in problems] == [(taken.message, taken.hint)]
            assert all(isinstance(p, NetworkPolicyError) for p in problems)
        assert len(shells.forwards) == 1  # the second dashboard shares the first one's
        forwards = shells.forwards[0]
        await first.close()
        await bystander.close()  # never asked: its going changes nothing
        await asyncio.sleep(0.05)
        assert forwards.closed == 0
        await second.close()
        await wait_until(lambda: shells.forwards[0].closed == 1)
        # Asked again later, they are opened again.
        third = await SupervisorConnection.open(sup.socket_path)
        await third.forward_ports()
        assert len(shells.forwards) == 2
        sup.request_stop("test over")
        await wait_until(lambda: shells.forwards[1].closed == 1)
        await third.close()


async def test_forwards_the_guest_cannot_give_are_an_error_with_its_hint(
    short_home: Path,
) -> None:
    async for sup in serving(short_home, Terminals(fail="the guest is gone")):
        connection = await SupervisorConnection.open(sup.socket_path)
        with pytest.raises(SSHError) as caught:
            await connection.forward_ports()
        assert caught.value.message == "the guest is gone" and caught.value.hint == "a hint"
        await connection.close()


async def test_a_supervisor_without_ssh_refuses_both(short_home: Path) -> None:
    async for sup in serving(short_home, None):
        connection = await SupervisorConnection.open(sup.socket_path)
        with pytest.raises(SupervisorError, match="has no SSH to the guest"):
            await connection.wait_for_ssh(booted=True, accel="tcg")
        with pytest.raises(SupervisorError, match="has no SSH to the guest"):
            await connection.forward_ports()
        await connection.close()
