"""Connecting to a session's guest over SSH while it boots, and what an SSH failure means.

vibebox logs in with the session's client key and checks the guest against the pinned host
key (:mod:`vibebox_core.ssh.keys`): asyncssh is always given ``.vibebox/known_hosts`` (never
``known_hosts=None``) and never reads the user's ``~/.ssh/config``. While the guest boots,
:func:`connect` retries with a short, bounded backoff; a changed host key or a refused client
key stops it at once. :func:`ssh_error` turns asyncssh and OS errors into an
:class:`~vibebox_core.errors.SSHError` that names the next step. :func:`guest_command` is the
command line a connection runs in the guest's shell.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vibebox_core.config.schema import GUEST_USER
from vibebox_core.errors import SSHAuthError, SSHError
from vibebox_core.paths import ProjectPaths

if TYPE_CHECKING:
    import asyncssh

#: Seconds one connection attempt may take (TCP connect + handshake + auth).
ATTEMPT_TIMEOUT = 10.0
#: Delays between attempts while the guest boots: start small, grow, stay small enough that
#: a cold start loses little time to waiting after sshd is already up.
FIRST_DELAY = 0.1
MAX_DELAY = 0.25


CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
"""The ciphers vibebox's SSH offers the guest, AES-GCM first (OpenSSH, and asyncssh, put
ChaCha20-Poly1305 first). All three are authenticated encryption. asyncssh takes four
cryptography calls a packet for ChaCha20-Poly1305 and one for AES-GCM: 12.6 against 2.9 us per
1.5 KB packet here, and a flood is thousands of such packets (the guest's PTY hands sshd a few
KB at a time). The guest under TCG spent no more on AES-GCM either (``tests/bench/``). OpenSSH
gets the same list (:data:`vibebox_core.ssh.openssh.OPENSSH_OPTIONS`)."""


def _options(project: ProjectPaths, timeout: float) -> asyncssh.SSHClientConnectionOptions:
    import asyncssh

    for path in (project.client_key, project.known_hosts):
        if not path.is_file():
            raise SSHError(
                f"{path} is missing",
                hint="start the session with `vibebox` (it makes the keys again)",
            )
    return asyncssh.SSHClientConnectionOptions(
        username=GUEST_USER,
        client_keys=[str(project.client_key)],
        known_hosts=str(project.known_hosts),
        agent_path=None,
        # None, not []: asyncssh reads ~/.ssh/config for an empty list (and again in
        # connect()), so a ProxyCommand there ran on the host and ForwardAgent applied.
        config=None,
        agent_forwarding=False,
        password=None,
        kbdint_auth=False,
        gss_host=None,
        connect_timeout=timeout,
        login_timeout=timeout,
        encryption_algs=list(CIPHERS),
        keepalive_interval=15,
        keepalive_count_max=4,
    )


def ssh_error(exc: BaseException, ipv4: str, project: ProjectPaths) -> SSHError:
    """Turn an asyncssh or OS error into an :class:`SSHError` a user can act on."""
    import asyncssh

    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return SSHAuthError(
            f"refusing to connect to {ipv4}: the guest's SSH host key is not the one pinned in "
            f"{project.known_hosts} ({exc.reason})",
            hint="something other than this session's VM answered, or its key was replaced; "
            "if you re-created the keys on purpose, recreate the session (`:new`)",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return SSHAuthError(
            f"the guest at {ipv4} refused vibebox's key for user {GUEST_USER}",
            hint="the guest setup may have failed: read .vibebox/console.log, then restart the "
            "session (`vibebox stop`, then `vibebox`)",
        )
    if isinstance(exc, asyncssh.DisconnectError):
        return SSHError(
            f"the SSH connection to {ipv4} was closed: {exc.reason}",
            hint="the guest may be shutting down; try again",
        )
    if isinstance(exc, TimeoutError):
        return SSHError(
            f"SSH to {ipv4} timed out",
            hint="the VM may be overloaded or still booting; try again, or read "
            ".vibebox/console.log",
        )
    if isinstance(exc, OSError):
        return SSHError(
            f"cannot reach the guest's SSH server at {ipv4}: {exc.strerror or exc}",
            hint="is the VM running? `vibebox list` shows its state; .vibebox/console.log "
            "shows its boot",
        )
    return SSHError(f"SSH to {ipv4} failed: {exc}")


async def connect_once(
    project: ProjectPaths, ipv4: str, *, timeout: float = ATTEMPT_TIMEOUT, port: int = 22
) -> asyncssh.SSHClientConnection:
    """One connection attempt with the client key and the pinned host key.

    Raises:
        SSHError: translated from asyncssh/OS errors.
    """
    import asyncssh

    options = _options(project, timeout)
    try:
        return await asyncssh.connect(ipv4, port, options=options, config=None)
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise ssh_error(exc, ipv4, project) from exc


def _retryable(exc: BaseException) -> bool:
    """Errors that mean "the guest is not up yet" (sshd not listening, not routable yet)."""
    import asyncssh

    if isinstance(exc, (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied)):
        return False
    return isinstance(exc, (OSError, asyncssh.Error, TimeoutError))


async def connect(
    project: ProjectPaths,
    ipv4: str,
    *,
    deadline: float | None = None,
    attempt_timeout: float = ATTEMPT_TIMEOUT,
    still_booting: Callable[[], Awaitable[bool]] | None = None,
    port: int = 22,
) -> asyncssh.SSHClientConnection:
    """Connect to the guest with the client key and the pinned host key, retrying with a
    short, bounded backoff while it boots.

    Args:
        project: the project (keys and known-hosts file).
        ipv4: the guest's address.
        deadline: ``time.monotonic()`` value after which to give up; None means one attempt.
        attempt_timeout: seconds for one attempt.
        port: the guest's SSH port.
        still_booting: awaited between attempts; False stops retrying (the VM is gone) and
            the last error is raised.

    Raises:
        SSHError: at once for a changed host key or a refused client key, else when the
            deadline passes (the last error).
    """
    import asyncssh

    delay = FIRST_DELAY
    while True:
        remaining = attempt_timeout
        if deadline is not None:
            remaining = max(1.0, min(attempt_timeout, deadline - time.monotonic()))
        options = _options(project, remaining)
        try:
            return await asyncssh.connect(ipv4, port, options=options, config=None)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            if not _retryable(exc):
                raise ssh_error(exc, ipv4, project) from exc
            last: BaseException = exc
        if deadline is None or time.monotonic() + delay > deadline:
            break
        if still_booting is not None and not await still_booting():
            break
        await asyncio.sleep(delay)
        delay = min(MAX_DELAY, delay * 1.5)
    raise ssh_error(last, ipv4, project) from last


def guest_command(argv: list[str] | tuple[str, ...], cwd: str | None = None) -> str:
    """The command line for the guest shell: ``argv`` quoted word by word (shlex.join).

    With ``cwd`` the command runs there when it exists (the project mount).
    """
    if not argv:
        raise SSHError("no command given", hint="usage: vibebox exec -- COMMAND [ARG...]")
    command = shlex.join(argv)
    if cwd:
        return f"cd {shlex.quote(cwd)} 2>/dev/null; {command}"
    return command
