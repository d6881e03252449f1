"""Port forwarding over SSH, against an in-process asyncssh server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncssh
import pytest

from vibebox_core.config.grants import (
    APPROVED_DIGEST_KEY,
    APPROVED_POLICY_KEY,
    canonical_json,
    policy_digest,
)
from vibebox_core.config.schema import PortForward
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.ssh.forward import (
    approved_ports,
    close_port_forwards,
    open_port_forwards,
    start_port_forwards,
)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication: a loopback-only test server

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return True


@pytest.fixture
async def guest_service() -> AsyncIterator[int]:
    """A TCP echo service standing in for a server inside the guest."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"guest says: " + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
async def conn() -> AsyncIterator[asyncssh.SSHClientConnection]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(_Server, "127.0.0.1", 0, server_host_keys=[host_key])
    port = server.sockets[0].getsockname()[1]
    client = await asyncssh.connect(
        "127.0.0.1",
        port,
        username="vibecoder",
        known_hosts=([host_key.convert_to_public()], [], []),
        client_keys=None,
    )
    try:
        yield client
    finally:
        client.close()
        await client.wait_closed()
        server.close()
        await server.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_forwarded_port_reaches_the_guest_service(
    conn: asyncssh.SSHClientConnection, guest_service: int
) -> None:
    host_port = free_port()
    listeners = await start_port_forwards(conn, [PortForward(host_port, guest_service)])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", host_port)
        writer.write(b"hi\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"guest says: hi\n"
        writer.close()
    finally:
        close_port_forwards(listeners)


async def test_taken_host_port_is_a_clear_error_and_nothing_stays_open(
    conn: asyncssh.SSHClientConnection, guest_service: int
) -> None:
    first = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(NetworkPolicyError, match=f"127.0.0.1:{busy} is already in use") as err:
            await start_port_forwards(
                conn, [PortForward(first, guest_service), PortForward(busy, 80)]
            )
        assert f"{busy + 1}:80" in err.value.hint
    # The first listener was closed again: its port is free.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", first))


async def test_open_port_forwards_reports_taken_ports_without_failing(
    conn: asyncssh.SSHClientConnection, guest_service: int
) -> None:
    good = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        forwards = await open_port_forwards(
            conn, [PortForward(busy, 80), PortForward(good, guest_service)]
        )
    try:
        assert forwards.ports == [good]
        [problem] = forwards.problems
        assert f"127.0.0.1:{busy} is already in use" in problem.message
        reader, writer = await asyncio.open_connection("127.0.0.1", good)
        writer.write(b"x\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"guest says: x\n"
        writer.close()
    finally:
        forwards.close()
    assert forwards.listeners == []


def test_approved_ports_come_from_the_index_not_the_file() -> None:
    configured = [PortForward(8000, 8000), PortForward(2222, 22)]  # the guest added 2222
    approved = {
        "version": 1,
        "mounts": [],
        "network": {"mode": "blocklist", "entries": [], "ports": [[8000, 8000]]},
    }
    extra = {
        APPROVED_DIGEST_KEY: policy_digest(approved),
        APPROVED_POLICY_KEY: canonical_json(approved),
    }
    assert [(p.host_port, p.guest_port) for p in approved_ports(extra, configured)] == [
        (8000, 8000)
    ]
    assert approved_ports({}, configured) == configured  # nothing approved yet
