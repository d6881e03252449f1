"""Keys, the pinned host key, retries and the OpenSSH block (vibebox_core.ssh.connect)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from vibebox_core.errors import SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh import connect as ssh


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    root = tmp_path / "my proj"
    root.mkdir()
    return ProjectPaths.for_directory(root)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_keys_makes_private_keys_0600_and_pins_the_host_key(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
    assert _mode(project.client_key) == 0o600
    assert _mode(project.host_key) == 0o600
    host_pub = project.host_pubkey.read_bytes().split()
    assert project.known_hosts.read_bytes() == b"* " + host_pub[0] + b" " + host_pub[1] + b"\n"
    assert host_pub[0] == b"ssh-ed25519"
    assert project.client_pubkey.read_bytes().startswith(b"ssh-ed25519 ")


def test_ensure_keys_keeps_existing_keys(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
    before = (project.client_key.read_bytes(), project.host_key.read_bytes())
    project.client_pubkey.unlink()
    project.host_key.chmod(0o644)
    ssh.ensure_keys(project)
    assert (project.client_key.read_bytes(), project.host_key.read_bytes()) == before
    assert project.client_pubkey.exists()
    assert _mode(project.host_key) == 0o600


def test_ensure_keys_replaces_a_damaged_key(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
    project.host_key.write_text("garbage")
    ssh.ensure_keys(project)
    key = asyncssh.read_private_key(str(project.host_key))
    assert project.known_hosts.read_bytes().split()[2] == key.export_public_key().split()[1]


def test_ssh_config_block(project: ProjectPaths) -> None:
    text = ssh.ssh_config_block(project, "10.213.4.2")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "Host vibebox-my-proj"
    assert "HostName 10.213.4.2" in lines
    assert "User vibecoder" in lines
    assert f'IdentityFile "{project.client_key}"' in lines  # space in the path: quoted
    assert f'UserKnownHostsFile "{project.known_hosts}"' in lines
    assert "StrictHostKeyChecking yes" in lines
    assert "IdentitiesOnly yes" in lines


def test_guest_command_quotes_every_argument() -> None:
    argv = ["printf", "%s|", "a b", "it's", "$HOME", "`x`", ";", ""]
    command = ssh.guest_command(argv)
    assert shlex.split(command) == argv
    with_cwd = ssh.guest_command(["ls"], cwd="/home/vibecoder/my proj")
    assert with_cwd == "cd '/home/vibecoder/my proj' 2>/dev/null; ls"
    with pytest.raises(SSHError):
        ssh.guest_command([])


# ---------------------------------------------------------------- against a local server


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
    ssh.ensure_keys(project)
    acceptor = await _serve(project, project.host_key)
    yield acceptor.sockets[0].getsockname()[1]
    acceptor.close()


async def test_connect_with_the_pinned_key(project: ProjectPaths, server: int) -> None:
    conn = await ssh.connect(project, "127.0.0.1", port=server)
    async with conn:
        result = await conn.run("true", check=True)
    assert result.stdout == "ran true\n"


async def test_a_changed_host_key_is_refused_at_once(project: ProjectPaths, tmp_path: Path) -> None:
    ssh.ensure_keys(project)
    other = tmp_path / "other_key"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    acceptor = await _serve(project, other)
    port = acceptor.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(SSHError, match="refusing") as info:
            await ssh.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 30)
        assert time.monotonic() - started < 10  # not retried until the deadline
        assert str(project.known_hosts) in info.value.message
    finally:
        acceptor.close()


async def test_connect_retries_until_the_server_is_up(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
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
    conn = await ssh.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 20)
    conn.close()
    (await starting).close()


async def test_connect_gives_up_at_the_deadline(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    started = time.monotonic()
    with pytest.raises(SSHError, match="cannot reach"):
        await ssh.connect(project, "127.0.0.1", port=port, deadline=time.monotonic() + 1.0)
    assert 0.5 < time.monotonic() - started < 5


async def test_connect_stops_when_the_vm_is_gone(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)

    async def gone() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(SSHError):
        await ssh.connect(
            project, "127.0.0.1", port=1, deadline=time.monotonic() + 30, still_booting=gone
        )
    assert time.monotonic() - started < 5


def test_missing_keys_are_explained(project: ProjectPaths) -> None:
    with pytest.raises(SSHError, match="missing") as info:
        asyncio.run(ssh.connect_once(project, "127.0.0.1"))
    assert "vibebox" in info.value.hint


# --------------------------------------------------------------------------- OpenSSH, -F

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")

#: Directory names a cloned repository (or a hostile guest) could give the project.
HOSTILE_NAMES = [
    "my proj",
    "a#b # ForwardAgent yes",
    'q"uo"te ProxyCommand sh -c x',
    "it's",
    "per%d%h%%cent",
    "back\\slash\\",
    "bidi\u202ename",
]


def _ssh_g(config: Path, alias: str, home: Path) -> dict[str, list[str]]:
    """What OpenSSH makes of ``config`` for ``alias`` (``ssh -G``), as option -> values."""
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), alias],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "SSH_AUTH_SOCK": "/tmp/agent.sock"},
        check=True,
    )
    options: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value)
    return options


@pytest.fixture
def hostile_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh/config would hand over the agent and run commands on the host."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  PermitLocalCommand yes\n"
        f"  LocalCommand touch {tmp_path}/pwned\n  ProxyCommand sh -c 'touch {tmp_path}/pwned'\n"
        "  LocalForward 9999 127.0.0.1:22\n  StrictHostKeyChecking no\n"
    )
    return home


@needs_ssh
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_config_is_read_back_exactly_for_any_project_path(
    tmp_path: Path, name: str, hostile_home: Path
) -> None:
    root = tmp_path / name
    root.mkdir()
    project = ProjectPaths.for_directory(root)
    project.cache.mkdir()
    config = ssh.write_openssh_config(project, "10.213.4.2")
    assert _mode(config) == 0o600
    alias = ssh.host_alias(project)
    assert re.fullmatch(r"vibebox-[a-z0-9._-]+", alias)
    got = _ssh_g(config, alias, hostile_home)
    assert got["hostname"] == ["10.213.4.2"]
    assert got["user"] == ["vibecoder"]
    # OpenSSH shows IdentityFile before its %-expansion, the known-hosts file after it.
    assert got["identityfile"] == [str(project.client_key).replace("%", "%%")]
    assert got["userknownhostsfile"] == [str(project.known_hosts)]
    assert_locked_down(got)


def assert_locked_down(got: dict[str, list[str]]) -> None:
    """Nothing from the user's config, no forwarding, no host-side command, strict pinning."""
    assert got["forwardagent"] == ["no"]
    assert got["forwardx11"] == ["no"] and got["forwardx11trusted"] == ["no"]
    assert got["clearallforwardings"] == ["yes"]
    assert "localforward" not in got and "remoteforward" not in got
    assert "dynamicforward" not in got
    assert got["permitlocalcommand"] == ["no"]
    assert "localcommand" not in got
    assert "proxycommand" not in got and "proxyjump" not in got
    assert got["identityagent"] == ["none"]
    assert got["identitiesonly"] == ["yes"]
    assert got["stricthostkeychecking"] == ["true"]
    assert got["updatehostkeys"] == ["false"]
    assert got["globalknownhostsfile"] == ["/dev/null"]
    assert got["passwordauthentication"] == ["no"]
    assert got["controlmaster"] == ["false"]


@pytest.mark.parametrize("name", ["new\nline", "cr\rHost *", "tab\tx", "env${HOME}", "nul\x7fdel"])
def test_a_path_that_cannot_be_written_safely_is_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    root.mkdir()
    project = ProjectPaths.for_directory(root)
    with pytest.raises(SSHError) as info:
        ssh.ssh_config_block(project, "10.213.4.2")
    assert "control character or '${'" in info.value.message
    assert "\n" not in info.value.message and "\r" not in info.value.message
    assert info.value.hint


def test_alias_and_address_are_checked(project: ProjectPaths) -> None:
    with pytest.raises(SSHError):
        ssh.ssh_config_block(project, "10.213.4.2", alias="x\n  ProxyCommand sh")
    with pytest.raises(SSHError):
        ssh.ssh_config_block(project, "10.213.4.2", alias="*")
    with pytest.raises(SSHError):
        ssh.ssh_config_block(project, "10.0.0.1\n  ProxyCommand sh")
    assert ssh.host_alias(ProjectPaths.for_directory("/x/Ünïcode name!")) == "vibebox-n-code-name"


@needs_ssh
def test_openssh_argv_uses_only_vibeboxs_config(
    project: ProjectPaths, hostile_home: Path, tmp_path: Path
) -> None:
    project.cache.mkdir()
    argv = ssh.openssh_argv(project, "10.213.4.2", "-t")
    assert argv[:3] == ["ssh", "-F", str(project.ssh_config)]
    assert argv[-2:] == ["--", ssh.host_alias(project)]
    got = _ssh_g(project.ssh_config, argv[-1], hostile_home)
    assert_locked_down(got)
    assert not (tmp_path / "pwned").exists()


async def test_asyncssh_connections_ignore_the_users_ssh_config(
    project: ProjectPaths, hostile_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncssh reads ~/.ssh/config unless told not to: its ProxyCommand would run on the
    # host and its ForwardAgent would hand the agent to the guest.
    monkeypatch.setenv("HOME", str(hostile_home))
    ssh.ensure_keys(project)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(SSHError) as info:
        await ssh.connect_once(project, "127.0.0.1", port=port, timeout=5)
    assert "cannot reach" in info.value.message  # refused directly, not "connection lost"
    assert not (tmp_path / "pwned").exists()
    options = ssh._options(project, 5)
    assert options.config.get("ProxyCommand") is None
    assert options.agent_forward_path is None
