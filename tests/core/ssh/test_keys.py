"""The session's keypairs and the pinned host key (vibebox_core.ssh.keys)."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

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


def _with_body(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return b"\n".join([keys._BEGIN, *lines, keys._END]) + b"\n"


def test_a_pair_asyncssh_made_passes_the_quick_read(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``ssh-keygen`` asyncssh makes the keys; the field-by-field read takes them."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    keys.ensure_keys(project)
    line = keys.intact_public_key(project.host_key, project.host_pubkey)
    assert line is not None
    key = asyncssh.read_private_key(str(project.host_key))
    assert line.split() == key.export_public_key("openssh").split()[:2]
    assert _mode(project.host_key) == 0o600


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_a_cold_start_makes_and_reads_its_keys_without_an_ssh_library(
    project: ProjectPaths,
) -> None:
    """What a dashboard's cold start does with the keys: made by ``ssh-keygen`` the first
    time, read field by field after; a fresh process shows neither loads asyncssh."""
    code = (
        "import sys; from vibebox_core.paths import ProjectPaths; "
        "from vibebox_core.ssh import keys; "
        f"keys.ensure_keys(ProjectPaths.for_directory({str(project.root)!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncssh', 'cryptography')))"
    )
    root = Path(__file__).resolve().parents[3]
    for _ in ("made", "read"):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "[]"
    pub = project.client_pubkey.read_bytes().split()
    assert pub[0] == b"ssh-ed25519" and b" ".join(pub[2:]) == f"vibebox@{project.name}".encode()
    assert _mode(project.client_key) == 0o600 and _mode(project.host_key) == 0o600
    assert [p.name for p in project.cache.iterdir() if p.name.startswith(".keygen-")] == []
    # asyncssh reads what ssh-keygen made as the same key.
    key = asyncssh.read_private_key(str(project.host_key))
    assert project.known_hosts.read_bytes().split()[2] == key.export_public_key().split()[1]


def test_a_pair_that_does_not_match_is_read_by_asyncssh_or_made_anew(
    project: ProjectPaths,
) -> None:
    keys.ensure_keys(project)
    good = project.host_key.read_bytes()
    data = base64.b64decode(b"".join(good.strip().split(b"\n")[1:-1]))
    other = asyncssh.generate_private_key("ssh-ed25519")
    pub_at = data.index(b"ssh-ed25519")  # the container's public key, then the private one
    last = data.rindex(b"ssh-ed25519")
    damaged: dict[str, bytes] = {
        "another key's .pub": good,
        "cut short": good[: len(good) // 2],
        "not base64": good.replace(b"A", b"*", 1),
        "the secret's public half changed": data[:-40] + bytes([data[-40] ^ 1]) + data[-39:],
        "check numbers differ": data[: last - 8] + b"\0\0\0\1\0\0\0\2" + data[last - 4 :],
        "an encrypted key": data.replace(b"\0\0\0\4none", b"\0\0\0\x0aaes256-ctr", 1),
        "junk after the container": data + b"x",
        "a changed container key": data[: pub_at + 20] + b"\xff" + data[pub_at + 21 :],
    }
    for what, body in damaged.items():
        if what == "another key's .pub":
            project.host_pubkey.write_bytes(other.export_public_key("openssh"))
        else:
            project.host_key.write_bytes(body if body.startswith(b"-----") else _with_body(body))
        assert keys.intact_public_key(project.host_key, project.host_pubkey) is None, what
        keys.ensure_keys(project)  # asyncssh reads it (or makes a new key): a pair again
        assert keys.intact_public_key(project.host_key, project.host_pubkey) is not None, what
        project.host_key.write_bytes(good)
        keys.ensure_keys(project)
    assert project.host_key.read_bytes() == good
