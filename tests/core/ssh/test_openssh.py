"""The OpenSSH Host block and the `ssh -F` config, as OpenSSH reads them (ssh.openssh)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from vibebox_core.errors import SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh import openssh
from vibebox_core.ssh.connect import CIPHERS


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ssh_config_block(project: ProjectPaths) -> None:
    text = openssh.ssh_config_block(project, "10.213.4.2")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "Host vibebox-my-proj"
    assert "HostName 10.213.4.2" in lines
    assert "User vibecoder" in lines
    assert f'IdentityFile "{project.client_key}"' in lines  # space in the path: quoted
    assert f'UserKnownHostsFile "{project.known_hosts}"' in lines
    assert "StrictHostKeyChecking yes" in lines
    assert "IdentitiesOnly yes" in lines


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


@needs_ssh
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_config_is_read_back_exactly_for_any_project_path(
    tmp_path: Path, name: str, hostile_home: Path
) -> None:
    root = tmp_path / name
    root.mkdir()
    project = ProjectPaths.for_directory(root)
    project.cache.mkdir()
    config = openssh.write_openssh_config(project, "10.213.4.2")
    assert _mode(config) == 0o600
    alias = openssh.host_alias(project)
    assert re.fullmatch(r"vibebox-[a-z0-9._-]+", alias)
    got = _ssh_g(config, alias, hostile_home)
    assert got["hostname"] == ["10.213.4.2"]
    assert got["user"] == ["vibecoder"]
    # OpenSSH shows IdentityFile before its %-expansion, the known-hosts file after it.
    assert got["identityfile"] == [str(project.client_key).replace("%", "%%")]
    assert got["userknownhostsfile"] == [str(project.known_hosts)]
    assert got["ciphers"] == [",".join(CIPHERS)]  # the dashboard's own, AES-GCM first
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
        openssh.ssh_config_block(project, "10.213.4.2")
    assert "control character or '${'" in info.value.message
    assert "\n" not in info.value.message and "\r" not in info.value.message
    assert info.value.hint


def test_alias_and_address_are_checked(project: ProjectPaths) -> None:
    with pytest.raises(SSHError):
        openssh.ssh_config_block(project, "10.213.4.2", alias="x\n  ProxyCommand sh")
    with pytest.raises(SSHError):
        openssh.ssh_config_block(project, "10.213.4.2", alias="*")
    with pytest.raises(SSHError):
        openssh.ssh_config_block(project, "10.0.0.1\n  ProxyCommand sh")
    unicode_project = ProjectPaths.for_directory("/x/Ünïcode name!")
    assert openssh.host_alias(unicode_project) == "vibebox-n-code-name"


@needs_ssh
def test_openssh_argv_uses_only_vibeboxs_config(
    project: ProjectPaths, hostile_home: Path, tmp_path: Path
) -> None:
    project.cache.mkdir()
    argv = openssh.openssh_argv(project, "10.213.4.2", "-t")
    assert argv[:3] == ["ssh", "-F", str(project.ssh_config)]
    assert argv[-2:] == ["--", openssh.host_alias(project)]
    got = _ssh_g(project.ssh_config, argv[-1], hostile_home)
    assert_locked_down(got)
    assert not (tmp_path / "pwned").exists()
