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

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vibebox_core.errors import SSHError
from vibebox_core.fileio import write_atomic
from vibebox_core.paths import ProjectPaths

#: Key algorithm for both the client key and the guest host key.
KEY_ALGORITHM = "ssh-ed25519"


def _ensure_keypair(private: Path, public: Path, comment: str) -> bytes:
    """The public key (OpenSSH form) of the keypair at ``private``/``public``, made when missing
    or damaged. An intact pair is read without an SSH library (:func:`intact_public_key`), and
    a new one is made by ``ssh-keygen`` when there is one: a dashboard that boots the VM loads
    none (about 15 MB of its memory)."""
    line = intact_public_key(private, public)
    if line is not None:
        if private.stat().st_mode & 0o077:
            private.chmod(0o600)
        return line
    if not private.exists():
        fresh = _keygen(private, public, comment)
        if fresh is not None:
            return fresh
    import asyncssh

    if private.exists():
        try:
            key = asyncssh.read_private_key(str(private))
        except (OSError, asyncssh.KeyImportError, ValueError):
            key = None
        if key is not None:
            if private.stat().st_mode & 0o077:
                private.chmod(0o600)
            wanted: bytes = key.export_public_key("openssh")
            try:
                current = public.read_bytes()
            except OSError:
                current = b""
            if current.split()[:2] != wanted.split()[:2]:
                write_atomic(public, wanted)
            if intact_public_key(private, public) is None:
                # The same key in a form the quick read does not take (another format, an
                # odd field): written again as OpenSSH writes it, the next boot reads it so.
                write_atomic(private, key.export_private_key("openssh"), mode=0o600)
            return wanted
    key = asyncssh.generate_private_key(KEY_ALGORITHM, comment=comment)
    write_atomic(private, key.export_private_key("openssh"), mode=0o600)
    made: bytes = key.export_public_key("openssh")
    write_atomic(public, made)
    return made


def _keygen(private: Path, public: Path, comment: str) -> bytes | None:
    """A new keypair made by OpenSSH's ``ssh-keygen`` (no SSH library loaded here); None when
    there is no ``ssh-keygen`` or it failed (asyncssh makes the key then).

    Made in a fresh directory beside ``private`` (so ``ssh-keygen`` never asks to overwrite)
    and moved into place, private half first, once it reads back as an intact pair.
    """
    program = shutil.which("ssh-keygen")
    if program is None:
        return None
    with tempfile.TemporaryDirectory(prefix=".keygen-", dir=private.parent) as scratch:
        key, pub = Path(scratch) / "key", Path(scratch) / "key.pub"
        argv = [program, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        line = intact_public_key(key, pub) if done.returncode == 0 else None
        if line is None:
            return None
        key.chmod(0o600)
        os.replace(key, private)
        os.replace(pub, public)
    return line


_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_END = b"-----END OPENSSH PRIVATE KEY-----"
_MAGIC = b"openssh-key-v1\0"


def intact_public_key(private: Path, public: Path) -> bytes | None:
    """The public key line of ``public`` when ``private`` is the unencrypted OpenSSH ed25519
    key it belongs to, checked field by field without a crypto library; None otherwise (missing,
    damaged, another format or algorithm: :func:`_ensure_keypair` then reads it with asyncssh,
    or makes it anew).

    The container's public key, the private section's public key and the public half kept in
    the private key (an ed25519 private key is the seed and the public key) must all be the
    ``.pub`` file's key; the check numbers must agree and the padding be OpenSSH's.
    """
    try:
        text = private.read_bytes()
        fields = public.read_bytes().split()
    except OSError:
        return None
    if len(fields) < 2 or fields[0] != KEY_ALGORITHM.encode():
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
        intact = _pairs_with(text.strip(), blob)
    except ValueError:  # not base64, or a field cut short
        return None
    return fields[0] + b" " + fields[1] + b"\n" if intact else None


def _pairs_with(body: bytes, blob: bytes) -> bool:
    """``body`` (the private key file) is the key of the public key ``blob``.

    Raises:
        ValueError: not base64, or a field runs past the end.
    """
    if not (body.startswith(_BEGIN) and body.endswith(_END)):
        return False
    data = base64.b64decode(b"".join(body[len(_BEGIN) : -len(_END)].split()), validate=True)
    if not data.startswith(_MAGIC):
        return False
    reader = _Reader(data, len(_MAGIC))
    header = [reader.string() for _ in range(3)]  # cipher, kdf, kdf options
    if header != [b"none", b"none", b""] or reader.uint32() != 1 or reader.string() != blob:
        return False
    section = _Reader(reader.string())
    pub = _Reader(blob)
    if not reader.at_end() or pub.string() != KEY_ALGORITHM.encode():
        return False
    key = pub.string()
    if len(key) != 32 or not pub.at_end():
        return False
    check = section.uint32(), section.uint32()
    if check[0] != check[1] or section.string() != KEY_ALGORITHM.encode():
        return False
    if section.string() != key:
        return False
    secret = section.string()
    section.string()  # the comment
    padding = section.rest()
    return len(secret) == 64 and secret[32:] == key and padding == bytes(range(1, len(padding) + 1))


class _Reader:
    """SSH wire format (RFC 4251): big-endian uint32s and length-prefixed strings; a read past
    the end raises ValueError."""

    def __init__(self, data: bytes, at: int = 0) -> None:
        self._data = data
        self._at = at

    def uint32(self) -> int:
        end = self._at + 4
        if end > len(self._data):
            raise ValueError("cut short")
        value = int.from_bytes(self._data[self._at : end], "big")
        self._at = end
        return value

    def string(self) -> bytes:
        length = self.uint32()
        end = self._at + length
        if end > len(self._data):
            raise ValueError("cut short")
        value = self._data[self._at : end]
        self._at = end
        return value

    def rest(self) -> bytes:
        value = self._data[self._at :]
        self._at = len(self._data)
        return value

    def at_end(self) -> bool:
        return self._at == len(self._data)


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
        line = known_hosts_line(host)
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
