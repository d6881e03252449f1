"""SSH keypairs of a session: the client key vibebox logs in with, the guest's pinned host key.

The host makes both keys of every session (README.md, "Sessions, the VM and SSH"): the client
key vibebox logs in with and the guest's ed25519 host key. Both live in ``<project>/.vibebox/``
(private halves 0600) and reach the guest through the read-only seed share at boot. Because the
host key is made here, vibebox never has to trust a key on first use: ``.vibebox/known_hosts``
pins it, and both asyncssh (:mod:`vibebox_core.ssh.connect`) and OpenSSH
(:mod:`vibebox_core.ssh.openssh`) are always given that file.

The known-hosts line uses the pattern ``*``: the file belongs to one session only, and the
guest's address may change when its network is re-created, so the pin is on the key, not on
the address.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vibebox_core.errors import SSHError
from vibebox_core.fileio import write_atomic
from vibebox_core.paths import ProjectPaths

if TYPE_CHECKING:
    import asyncssh

#: Key algorithm for both the client key and the guest host key.
KEY_ALGORITHM = "ssh-ed25519"


def _ensure_keypair(private: Path, public: Path, comment: str) -> asyncssh.SSHKey:
    """Load the keypair at ``private``/``public``, making it when missing or damaged."""
    import asyncssh

    if private.exists():
        try:
            key = asyncssh.read_private_key(str(private))
        except (OSError, asyncssh.KeyImportError, ValueError):
            key = None
        if key is not None:
            if private.stat().st_mode & 0o077:
                private.chmod(0o600)
            wanted = key.export_public_key("openssh")
            try:
                current = public.read_bytes()
            except OSError:
                current = b""
            if current.split()[:2] != wanted.split()[:2]:
                write_atomic(public, wanted)
            return key
    key = asyncssh.generate_private_key(KEY_ALGORITHM, comment=comment)
    write_atomic(private, key.export_private_key("openssh"), mode=0o600)
    write_atomic(public, key.export_public_key("openssh"))
    return key


def known_hosts_line(host_public_key: bytes) -> bytes:
    """The known-hosts line that pins ``host_public_key`` (any address: the file is per session)."""
    parts = host_public_key.split()
    if len(parts) < 2:
        raise SSHError("the pinned host key is malformed")
    return b"* " + parts[0] + b" " + parts[1] + b"\n"


def ensure_keys(project: ProjectPaths) -> None:
    """Make the client key, the guest host key and the known-hosts file in ``.vibebox/``.

    Existing keys are kept (the guest keeps its identity across restarts); a missing or
    damaged one is made anew. Private keys are 0600.

    Raises:
        SSHError: the files cannot be written (names the path).
    """
    try:
        project.cache.mkdir(parents=True, exist_ok=True)
        _ensure_keypair(project.client_key, project.client_pubkey, f"vibebox@{project.name}")
        host = _ensure_keypair(project.host_key, project.host_pubkey, "vibebox-guest")
        line = known_hosts_line(host.export_public_key("openssh"))
        try:
            current = project.known_hosts.read_bytes()
        except OSError:
            current = b""
        if current != line:
            write_atomic(project.known_hosts, line)
    except OSError as exc:
        raise SSHError(
            f"cannot write SSH keys in {project.cache}: {exc.strerror or exc}",
            hint=f"check that {project.cache} is writable by you",
        ) from exc
