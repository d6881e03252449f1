"""The host side of ``[[secrets]]``: reading a value, and the placeholder the guest holds.

The guest never sees a secret's value. Its environment holds a placeholder
(:func:`placeholder`: ``vbxph_`` and 40 hex digits of an HMAC over the name, keyed per
session), and the supervisor's proxy swaps it for the value on requests to the secret's hosts.
The value is read on the host (:func:`read_value`) only when a request needs it, kept in
memory for a short while (:class:`SecretVault`), and never logged, written to a file, put in
an exception message or a ``repr``.

The value goes into an HTTP header, so a value with a line break (header injection) or any
character outside visible ASCII, space and tab is refused. A source is approved by the host
user (``vibebox approve`` shows it whole), but a ``command:`` still runs without a shell, with
no stdin, from ``/`` (a relative path must not depend on where the supervisor runs), with a
timeout and a bound on what it prints; its stdout is never quoted, since that is the value.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import re
import secrets as random
import selectors
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vibebox_core import paths
from vibebox_core.config.schema import Secret
from vibebox_core.config.secrets import command_argv
from vibebox_core.errors import SecretError
from vibebox_core.fileio import write_atomic
from vibebox_core.sanitize import clean

PLACEHOLDER_PREFIX = "vbxph_"
#: Any placeholder-looking token, a current secret's or not.
PLACEHOLDER_RE: re.Pattern[str] = re.compile(PLACEHOLDER_PREFIX + r"[0-9a-f]{40}")
#: The file, in the session's host-only directory, that keys the placeholders.
PLACEHOLDER_KEY_FILE = paths.SECRET_PLACEHOLDER_KEY
KEY_BYTES = 32
#: The most a source may yield: a file read or a command's stdout (a token is a few hundred
#: bytes; a header far less than this).
VALUE_LIMIT = 64 * 1024
#: How much of a failing command's stderr is quoted (its last characters).
_STDERR_TAIL = 300
_HEADER_SAFE = re.compile(r"[\t\x20-\x7e]*")


# ---------------------------------------------------------------------------------------------
# Reading a value


def _checked(text: str, where: str) -> str:
    value = text.strip()
    if not value:
        raise SecretError(
            f"{where} gave an empty value", hint="check that the source holds the secret"
        )
    if not _HEADER_SAFE.fullmatch(value):
        # Never say which character or where: that would tell part of the value.
        raise SecretError(
            f"{where} gave a value with a line break, a control or a non-ASCII character; "
            "it cannot go into an HTTP header",
            hint="a secret must be one line of visible ASCII (a token or a key)",
        )
    return value


def _read_env(var: str, environ: Mapping[str, str]) -> str:
    where = f"the secret source env:{var}"
    if var not in environ:
        raise SecretError(
            f"{where}: the variable is not set in the environment vibebox started from",
            hint=f"export {var} before you start the session (the supervisor inherits the "
            "environment of the vibebox that started it)",
        )
    return _checked(environ[var], where)


def _read_file(raw: str) -> str:
    path = Path(os.path.expanduser(raw))
    where = f"the secret source file:{clean(raw, 200)}"
    try:
        # No symlink as the last part (it could be swapped to point at another file), no
        # waiting on a FIFO, no terminal.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        reason = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise SecretError(
            f"{where}: cannot read {clean(str(path), 200)}: {reason}",
            hint="name a regular file this user can read (not a symlink to one)",
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{where}: not a regular file", hint="name a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= VALUE_LIMIT:
            chunk = os.read(fd, VALUE_LIMIT + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SecretError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > VALUE_LIMIT:
        raise SecretError(f"{where}: larger than {VALUE_LIMIT} bytes; expected one token")
    try:
        text = b"".join(chunks).decode("ascii")
    except UnicodeDecodeError:
        raise SecretError(
            f"{where} gave a value that is not ASCII text; it cannot go into an HTTP header"
        ) from None
    return _checked(text, where)


def _kill(process: subprocess.Popen[bytes]) -> None:
    # The command runs in its own session: its children (a shell's sleep) go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _collect(process: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes, str]:
    """Read stdout (bounded) and stderr (its tail) until both close; say why it stopped."""
    assert process.stdout is not None and process.stderr is not None
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out), bytes(err), "timeout"
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is out and len(out) > VALUE_LIMIT:
                    return bytes(out), bytes(err), "too much"
                if buffer is err and len(err) > 4 * _STDERR_TAIL:
                    del err[: len(err) - 2 * _STDERR_TAIL]
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(out), bytes(err), "timeout"
    return bytes(out), bytes(err), ""


def _run_command(rest: str, environ: Mapping[str, str] | None, timeout: float) -> str:
    where = f"the secret source command:{clean(rest, 200)}"
    try:
        argv = command_argv(rest)
    except ValueError as exc:
        raise SecretError(f"{where}: {clean(str(exc), 300)}") from None
    argv[0] = os.path.expanduser(argv[0])
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env=dict(environ) if environ is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise SecretError(
            f"{where}: cannot run {clean(argv[0], 200)}: {exc.strerror or exc}",
            hint="install the program, or give its absolute path",
        ) from None
    except ValueError:  # a NUL in an argument or in the environment
        raise SecretError(
            f"{where}: cannot run it: a NUL character in its arguments or environment"
        ) from None
    try:
        out, err, stopped = _collect(process, timeout)
    finally:
        _kill(process)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    if stopped == "timeout":
        raise SecretError(
            f"{where}: no answer within {timeout:g} s; it was stopped",
            hint="the command must print the secret and exit without asking anything",
        )
    if stopped == "too much":
        raise SecretError(f"{where}: printed more than {VALUE_LIMIT} bytes; expected one token")
    if process.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        said = f": {clean(tail, None)}" if tail else ""
        raise SecretError(
            f"{where}: exited with status {process.returncode}{said}",
            hint="run the command yourself on the host to see what it needs",
        )
    try:
        text = out.decode("ascii")
    except UnicodeDecodeError:
        raise SecretError(
            f"{where} gave a value that is not ASCII text; it cannot go into an HTTP header"
        ) from None
    return _checked(text, where)


def read_value(
    source: str, *, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> str:
    """Read a secret's value from its source, on the host.

    Args:
        source: an approved source: ``env:VAR``, ``file:PATH`` or ``command:ARGV``.
        environ: where ``env:`` looks and the environment a command gets (default
            ``os.environ``: the supervisor inherits the environment of the vibebox that
            started the session).
        timeout: how long a ``command:`` may run, in seconds.

    Returns:
        The value, surrounding blanks and line breaks removed: one line of visible ASCII
        (tabs and spaces allowed inside).

    Raises:
        SecretError: the variable is unset, the file cannot be read (a symlink, not a regular
            file, larger than 64 KiB), the command fails, runs too long or prints too much, or
            the value is empty or holds a character a header cannot. The message never holds
            the value.
    """
    kind, _, rest = source.partition(":")
    if kind == "env":
        return _read_env(rest, os.environ if environ is None else environ)
    if kind == "file":
        return _read_file(rest)
    if kind == "command":
        return _run_command(rest, environ, timeout)
    raise SecretError(f"unknown secret source {clean(source, 200)}")


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
