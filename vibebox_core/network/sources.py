"""Reading a secret's value on the host from its approved source: env:, file: or command:.

Called by the session's supervisor when a request needs the value
(:class:`vibebox_core.network.secrets.SecretVault`), never at start and never in the guest. The
value goes into an HTTP header, so a value with a line break (header injection) or any character
outside visible ASCII, space and tab is refused. A source is approved by the host user
(``vibebox approve`` shows it whole), but a ``command:`` still runs without a shell, with no
stdin, from ``/`` (a relative path must not depend on where the supervisor runs), in its own
process group (a timeout kills its children too), with a bound on what it prints; its stdout
is never quoted, since that is the value, and neither is the value anywhere else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from vibebox_core.config.secrets import command_argv
from vibebox_core.errors import SecretError
from vibebox_core.sanitize import clean

#: The most a source may yield: a file read or a command's stdout (a token is a few hundred
#: bytes; a header far less than this).
VALUE_LIMIT = 64 * 1024
#: How much of a failing command's stderr is quoted (its last characters).
_STDERR_TAIL = 300
_HEADER_SAFE = re.compile(r"[\t\x20-\x7e]*")


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
