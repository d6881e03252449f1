"""The session's keypairs and the pinned host key (vibebox_core.ssh.keys)."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh

from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh import keys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_keys_makes_private_keys_0600_and_pins_the_host_key(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    assert _mode(project.client_key) == 0o600
    assert _mode(project.host_key) == 0o600
    host_pub = project.host_pubkey.read_bytes().split()
    assert project.known_hosts.read_bytes() == b"* " + host_pub[0] + b" " + host_pub[1] + b"\n"
    assert host_pub[0] == b"ssh-ed25519"
    assert project.client_pubkey.read_bytes().startswith(b"ssh-ed25519 ")


def test_ensure_keys_keeps_existing_keys(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    before = (project.client_key.read_bytes(), project.host_key.read_bytes())
    project.client_pubkey.unlink()
    project.host_key.chmod(0o644)
    keys.ensure_keys(project)
    assert (project.client_key.read_bytes(), project.host_key.read_bytes()) == before
    assert project.client_pubkey.exists()
    assert _mode(project.host_key) == 0o600


def test_ensure_keys_replaces_a_damaged_key(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    project.host_key.write_text("garbage")
    keys.ensure_keys(project)
    key = asyncssh.read_private_key(str(project.host_key))
    assert project.known_hosts.read_bytes().split()[2] == key.export_public_key().split()[1]
