"""The host side of ``[[secrets]]``: the placeholders the guest holds, and the values' vault.

The guest never sees a secret's value. Its environment holds a placeholder
(:func:`placeholder`: ``vbxph_`` and 40 hex digits of an HMAC over the name, keyed per
session), and the supervisor's proxy swaps it for the value on requests to the secret's hosts.
The value is read on the host (:func:`~vibebox_core.network.sources.read_value`) only when a
request needs it, kept in memory for a short while (:class:`SecretVault`), and never logged,
written to a file, put in an exception message or a ``repr``.

How a value is read from its source is :mod:`vibebox_core.network.sources`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets as random
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from vibebox_core import paths
from vibebox_core.config.schema import Secret
from vibebox_core.errors import SecretError
from vibebox_core.fileio import write_atomic
from vibebox_core.network.sources import read_value

PLACEHOLDER_PREFIX = "vbxph_"
#: Any placeholder-looking token, a current secret's or not.
PLACEHOLDER_RE: re.Pattern[str] = re.compile(PLACEHOLDER_PREFIX + r"[0-9a-f]{40}")
#: The file, in the session's host-only directory, that keys the placeholders.
PLACEHOLDER_KEY_FILE = paths.SECRET_PLACEHOLDER_KEY
KEY_BYTES = 32


# ---------------------------------------------------------------------------------------------
# Placeholders


def load_placeholder_key(directory: Path) -> bytes:
    """The session's placeholder key: 32 random bytes in ``directory/placeholder.key``.

    Made on first use (the directory ``0700``, the file ``0600``), so a session's
    placeholders stay the same across supervisor restarts.

    Raises:
        SecretError: the key file is damaged (not 32 bytes, not a regular file) or cannot be
            read or written.
    """
    path = directory / PLACEHOLDER_KEY_FILE
    try:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            write_atomic(path, random.token_bytes(KEY_BYTES), mode=0o600, exclusive=True)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SecretError(f"{path} is not a regular file", hint=f"remove {path}")
            key = os.read(fd, KEY_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SecretError(
            f"cannot keep the placeholder key in {path}: {exc.strerror or exc}",
            hint=f"check that {directory} is writable",
        ) from None
    if len(key) != KEY_BYTES:
        raise SecretError(
            f"{path} is damaged ({len(key)} bytes, expected {KEY_BYTES})",
            hint=f"remove {path}; a new one is made (the guest then needs a new login shell "
            "to see the new placeholders)",
        )
    return key


def placeholder(key: bytes, name: str) -> str:
    """The stable placeholder of secret ``name`` in a session.

    ``vbxph_`` and the first 40 hex digits of HMAC-SHA256(key, name): the same in every
    login shell of the session, different between secrets and sessions, and telling nothing
    about the value.
    """
    digest = hmac.new(key, name.encode("utf-8"), hashlib.sha256).hexdigest()
    return PLACEHOLDER_PREFIX + digest[:40]


# ---------------------------------------------------------------------------------------------
# The vault


class SecretVault:
    """The session's approved secrets, their placeholders, and values read on demand.

    Values live in memory only, each for ``ttl`` seconds after it was read (a rotated token
    is picked up soon, and a command source does not run on every request). Thread-safe: the
    proxy may ask from several threads.

    Args:
        secrets: the approved secrets.
        key: the placeholder key (:func:`load_placeholder_key`).
        reader: reads a value from a source (:func:`read_value`; tests pass a fake).
        ttl: how long a value read is reused, in seconds (0: read each time).
        clock: a monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        secrets: Sequence[Secret],
        key: bytes,
        *,
        reader: Callable[[str], str] = read_value,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._reader = reader
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}
        self._secrets: tuple[Secret, ...] = ()
        self._placeholders: dict[str, str] = {}
        self.update(secrets)

    def __repr__(self) -> str:
        return f"SecretVault(names={[s.name for s in self._secrets]!r})"

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """The current secrets."""
        return self._secrets

    def update(self, secrets: Sequence[Secret]) -> None:
        """Take an approved change: the cached values of changed or removed secrets are
        dropped (a secret that did not change keeps its value)."""
        new = tuple(secrets)
        with self._lock:
            kept = {s.name for s in new if s in self._secrets}
            self._cache = {n: v for n, v in self._cache.items() if n in kept}
            self._secrets = new
            self._placeholders = {s.name: placeholder(self._key, s.name) for s in new}

    def placeholder_of(self, secret: Secret) -> str:
        """The placeholder the guest holds for ``secret`` (also for one no longer current)."""
        return placeholder(self._key, secret.name)

    def guest_env(self) -> dict[str, str]:
        """``{name: placeholder}`` for the guest's environment."""
        with self._lock:
            return dict(self._placeholders)

    def for_host(self, host: str) -> tuple[Secret, ...]:
        """The secrets whose hosts cover ``host`` (any case, a trailing dot ignored)."""
        with self._lock:
            current = self._secrets
        return tuple(s for s in current if s.covers(host))

    def scan(self, text: str) -> tuple[list[Secret], bool]:
        """Find placeholders in ``text`` (a request's head).

        Returns:
            The current secrets whose placeholders appear, and whether some
            placeholder-looking token appears that belongs to no current secret (a stale
            one after a change, or a guessed one).
        """
        if PLACEHOLDER_PREFIX not in text:
            return [], False
        with self._lock:
            current, placeholders = self._secrets, self._placeholders
        found = [s for s in current if placeholders[s.name] in text]
        known = set(placeholders.values())
        unknown = any(m.group() not in known for m in PLACEHOLDER_RE.finditer(text))
        return found, unknown

    def value(self, secret: Secret) -> str:
        """The value of ``secret``, read from its source or reused for ``ttl`` seconds.

        Raises:
            SecretError: ``secret`` is not a current one (it changed or was removed), or its
                source failed (the message names the secret, never the value).
        """
        with self._lock:
            if secret not in self._secrets:
                raise SecretError(
                    f"the secret {secret.name} is not approved for this session (any more)"
                )
            cached = self._cache.get(secret.name)
            now = self._clock()
            if cached is not None and now < cached[1]:
                return cached[0]
        try:
            value = self._reader(secret.source)
        except SecretError as exc:
            raise SecretError(f"secret {secret.name}: {exc.message}", hint=exc.hint) from None
        with self._lock:
            if secret in self._secrets and self._ttl > 0:
                self._cache[secret.name] = (value, self._clock() + self._ttl)
        return value
