"""Connecting with the pinned host key, retries while the guest boots (vibebox_core.ssh.connect)."""

from __future__ import annotations

import asyncio
import shlex
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from vibebox_core.errors import SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh import connect, keys


def test_guest_command_quotes_every_argument() -> None:
    argv = ["printf", "%s|", "a b", "it's", "$HOME", "`x`", ";", ""]
    command = connect.guest_command(argv)
    assert shlex.split(command) == argv
    with_cwd = connect.guest_command(["ls"], cwd="/home/vibecoder/my proj")
    assert with_cwd == "cd '/home/vibecoder/my proj' 2>/dev/null; ls"
    with pytest.raises(SSHError):
        connect.guest_command([])


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def _serve(project: ProjectPaths, host_key: Path) -> asyncssh.SSHAcceptor:
    def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        process.stdout.write(f"ran {process.command}\n")
        process.exit(0)

    return await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        0,
        server_host_keys=[str(host_key)],
        authorized_client_keys=str(project.client_pubkey),
        process_factory=handle,
    )


@pytest.fixture
async def server(project: ProjectPaths) -> AsyncIterator[int]:
    keys.ensure_keys(project)
    acceptor = await _serve(project, project.host_key)
    yield acceptor.sockets[0].getsockname()[1]
    acceptor.close()


async def test_connect_with_the_pinned_key(project: ProjectPaths, server: int) -> None:
    conn = await connect.connect(project, "127.0.0.1", port=server)
    async with conn:
        result = await conn.run("true", check=True)
    assert result.stdout == "ran true\n"


async def test_a_changed_host_key_is_refused_at_once(project: ProjectPaths, tmp_path: Path) -> None:
    keys.ensure_keys(project)
    other = tmp_path / "other_key"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    acceptor = await _serve(project, other)
    port = acceptor.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(SSHError, match="refusing") as info:
            await connect.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 30)
        assert time.monotonic() - started < 10  # not retried until the deadline
        assert str(project.known_hosts) in info.value.message
    finally:
        acceptor.close()


async def test_connect_retries_until_the_server_is_up(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()

    async def late() -> asyncssh.SSHAcceptor:
        await asyncio.sleep(0.6)
        return await asyncssh.create_server(
            _Server,
            "127.0.0.1",
            port,
            server_host_keys=[str(project.host_key)],
            authorized_client_keys=str(project.client_pubkey),
            process_factory=lambda p: p.exit(0),
        )

    starting = asyncio.create_task(late())
    conn = await connect.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 20)
    conn.close()
    (await starting).close()


async def test_connect_gives_up_at_the_deadline(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    started = time.monotonic()
    with pytest.raises(SSHError, match="cannot reach"):
        await connect.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 1.0)
    assert 0.5 < time.monotonic() - started < 5


async def test_connect_stops_when_the_vm_is_gone(project: ProjectPaths) -> None:
    keys.ensure_keys(project)

    async def gone() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(SSHError):
        await connect.connect(
            project, "127.0.0.1", port=1, deadline=time.monotonic() + 30, still_booting=gone
        )
    assert time.monotonic() - started < 5


def test_missing_keys_are_explained(project: ProjectPaths) -> None:
    with pytest.raises(SSHError, match="missing") as info:
        asyncio.run(connect.connect_once(project, "127.0.0.1"))
    assert "vibebox" in info.value.hint


async def test_the_connection_prefers_aes_gcm(project: ProjectPaths, server: int) -> None:
    """The cipher asyncssh runs cheapest (connect.CIPHERS): a server that offers every one
    of OpenSSH's defaults gets AES-GCM, as a guest's sshd does."""
    conn = await connect.connect(project, "127.0.0.1", port=server)
    async with conn:
        assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"


async def test_asyncssh_connections_ignore_the_users_ssh_config(
    project: ProjectPaths, hostile_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncssh reads ~/.ssh/config unless told not to: its ProxyCommand would run on the
    # host and its ForwardAgent would hand the agent to the guest.
    monkeypatch.setenv("HOME", str(hostile_home))
    keys.ensure_keys(project)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(SSHError) as info:
        await connect.connect_once(project, "127.0.0.1", port=port, timeout=5)
    assert "cannot reach" in info.value.message  # refused directly, not "connection lost"
    assert not (tmp_path / "pwned").exists()
    options = connect._options(project, 5)
    assert options.config.get("ProxyCommand") is None
    assert options.agent_forward_path is None
