"""SSH into a session: keypairs, the pinned host key, connecting while the guest boots.

The host makes both keys of every session (DESIGN §3): the client key vibebox logs in with and
the guest's ed25519 host key. Both live in ``<project>/.vibebox/`` (private halves 0600) and
reach the guest through the read-only seed share at boot. Because the host key is made here,
vibebox never has to trust a key on first use: ``.vibebox/known_hosts`` pins it, asyncssh is
always given that file (never ``known_hosts=None``), and ``vibebox ssh-config`` points OpenSSH at
the same file with strict checking on. Plain OpenSSH (``vibebox shell``) runs with ``-F`` and a
config vibebox writes, so nothing in the user's ``~/.ssh/config`` (``ForwardAgent yes``, a
``ProxyCommand``, a ``LocalCommand``) applies to a session.

The known-hosts line uses the pattern ``*``: the file belongs to one session only, and the
guest's address may change when its network is re-created, so the pin is on the key, not on
the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from vibebox_core.errors import SSHError
from vibebox_core.fileio import write_atomic
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean

#: The guest user (same as ``config.GUEST_USER``; kept here so ssh has no config import).
GUEST_USER = "vibecoder"
#: Key algorithm for both the client key and the guest host key.
KEY_ALGORITHM = "ssh-ed25519"
#: Seconds one connection attempt may take (TCP connect + handshake + auth).
ATTEMPT_TIMEOUT = 10.0
#: Delays between attempts while the guest boots: start small, grow, stay small enough that
#: a cold start loses little time to waiting after sshd is already up.
FIRST_DELAY = 0.1
MAX_DELAY = 0.25


def host_alias(project: ProjectPaths) -> str:
    """The OpenSSH ``Host`` name of a project's session: ``vibebox-<project>``."""
    from vibebox_core.hypervisor.domain_xml import sanitise_project_name

    return f"vibebox-{sanitise_project_name(project.name)}"


# --------------------------------------------------------------------------- keys


def _ensure_keypair(private: Path, public: Path, comment: str) -> asyncssh.SSHKey:
    """Load the keypair at ``private``/``public``, making it when missing or damaged."""
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


# --------------------------------------------------------------------------- connect


def _options(project: ProjectPaths, timeout: float) -> asyncssh.SSHClientConnectionOptions:
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
        keepalive_interval=15,
        keepalive_count_max=4,
    )


def translate_error(exc: BaseException, ipv4: str, project: ProjectPaths) -> SSHError:
    """Turn an asyncssh or OS error into an :class:`SSHError` a user can act on."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return SSHError(
            f"refusing to connect to {ipv4}: the guest's SSH host key is not the one pinned in "
            f"{project.known_hosts} ({exc.reason})",
            hint="something other than this session's VM answered, or its key was replaced; "
            "if you re-created the keys on purpose, recreate the session (`:new`)",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return SSHError(
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
    options = _options(project, timeout)
    try:
        return await asyncssh.connect(ipv4, port, options=options, config=None)
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise translate_error(exc, ipv4, project) from exc


def _retryable(exc: BaseException) -> bool:
    """Errors that mean "the guest is not up yet" (sshd not listening, not routable yet)."""
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
                raise translate_error(exc, ipv4, project) from exc
            last: BaseException = exc
        if deadline is None or time.monotonic() + delay > deadline:
            break
        if still_booting is not None and not await still_booting():
            break
        await asyncio.sleep(delay)
        delay = min(MAX_DELAY, delay * 1.5)
    raise translate_error(last, ipv4, project) from last


# --------------------------------------------------------------------------- OpenSSH

#: What vibebox's own OpenSSH config says for every session, whatever the user's
#: ``~/.ssh/config`` or ``/etc/ssh/ssh_config`` say (``ssh -F`` reads neither). The guest is
#: hostile (DESIGN §5): nothing of the host may reach it through the connection, so agent,
#: X11, port and socket forwarding, tunnels and the SSH agent are off; the key is vibebox's
#: own and the host key the pinned one, checked strictly and never learnt or updated; no
#: command runs on the host (LocalCommand, ProxyCommand, KnownHostsCommand, keysign).
OPENSSH_OPTIONS: tuple[tuple[str, str], ...] = (
    ("Port", "22"),
    ("User", GUEST_USER),
    ("IdentitiesOnly", "yes"),
    ("IdentityAgent", "none"),
    ("AddKeysToAgent", "no"),
    ("ForwardAgent", "no"),
    ("ForwardX11", "no"),
    ("ForwardX11Trusted", "no"),
    ("ClearAllForwardings", "yes"),
    ("ExitOnForwardFailure", "yes"),
    ("Tunnel", "no"),
    ("PermitLocalCommand", "no"),
    ("ProxyCommand", "none"),
    ("ProxyJump", "none"),
    ("KnownHostsCommand", "none"),
    ("EnableSSHKeysign", "no"),
    ("ControlMaster", "no"),
    ("ControlPath", "none"),
    ("StrictHostKeyChecking", "yes"),
    ("GlobalKnownHostsFile", "/dev/null"),
    ("UpdateHostKeys", "no"),
    ("CheckHostIP", "no"),
    ("HashKnownHosts", "no"),
    ("VerifyHostKeyDNS", "no"),
    ("PubkeyAuthentication", "yes"),
    ("PasswordAuthentication", "no"),
    ("KbdInteractiveAuthentication", "no"),
    ("HostbasedAuthentication", "no"),
    ("GSSAPIAuthentication", "no"),
    ("PKCS11Provider", "none"),
    ("ServerAliveInterval", "15"),
    ("ServerAliveCountMax", "4"),
    ("LogLevel", "ERROR"),
)

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _config_path(path: Path) -> str:
    """``path`` as one ssh_config argument that OpenSSH reads back as exactly ``path``.

    Always in double quotes (spaces and ``#`` stay inside the word); ``\\`` and ``"`` are
    escaped as OpenSSH's tokenizer un-escapes them; ``%`` is written ``%%`` (OpenSSH expands
    ``%`` tokens in file names). What cannot be written safely is refused: a control
    character (a newline would start a new option) and ``${`` (OpenSSH expands environment
    variables in file names and has no escape for it).

    Raises:
        SSHError: the path cannot be written into an ssh_config safely.
    """
    text = str(path)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text) or "${" in text:
        raise SSHError(
            f"cannot write an OpenSSH config for {clean(text)}: the path holds a control "
            "character or '${'",
            hint="move the project to a directory whose path has neither (a newline or "
            "'${' in it would change what OpenSSH reads), then run vibebox there",
        )
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _checked_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias):
        raise SSHError(
            f"{clean(alias)!r} cannot be an OpenSSH Host name",
            hint="use letters, digits, '.', '_' and '-' only",
        )
    return alias


def _checked_address(ipv4: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ipv4.strip()))
    except ValueError:
        raise SSHError(
            f"the guest's recorded address {clean(ipv4)!r} is not an IPv4 address",
            hint="restart the session (`vibebox stop`, then `vibebox`); it records it again",
        ) from None


def ssh_config_block(project: ProjectPaths, ipv4: str, *, alias: str | None = None) -> str:
    """An OpenSSH ``Host`` block for the session, for ``vibebox ssh-config`` and ``ssh -F``.

    Plain ``ssh``, ``scp`` and editors reach the session with it, using vibebox's key and the
    pinned host key with strict checking (never trust on first use), with every forwarding
    and host-side command off (:data:`OPENSSH_OPTIONS`). Safe for any project path: each
    path is quoted and escaped for ssh_config, or refused (:func:`_config_path`); the alias
    and the address are checked.

    Raises:
        SSHError: the project path, the alias or the address cannot be written safely.
    """
    name = _checked_alias(alias or host_alias(project))
    lines = [
        f"Host {name}",
        f"    HostName {_checked_address(ipv4)}",
        f"    IdentityFile {_config_path(project.client_key)}",
        f"    UserKnownHostsFile {_config_path(project.known_hosts)}",
        *(f"    {key} {value}" for key, value in OPENSSH_OPTIONS),
    ]
    return "\n".join(lines) + "\n"


def write_openssh_config(project: ProjectPaths, ipv4: str) -> Path:
    """Write ``.vibebox/ssh_config`` (0600): vibebox's own OpenSSH config for the session.

    Raises:
        SSHError: see :func:`ssh_config_block`; or the file cannot be written.
    """
    text = (
        "# Written by vibebox for `ssh -F` (the user's ~/.ssh/config is not read).\n"
        + ssh_config_block(project, ipv4)
    )
    path = project.ssh_config
    try:
        write_atomic(path, text.encode(), mode=0o600)
    except OSError as exc:
        raise SSHError(
            f"cannot write {clean(path)}: {exc.strerror or exc}",
            hint=f"check that {clean(project.cache)} is writable by you",
        ) from exc
    return path


def openssh_argv(project: ProjectPaths, ipv4: str, *extra: str) -> list[str]:
    """The ``ssh`` command line for ``vibebox shell``: ``ssh -F <vibebox's file> ... ALIAS``.

    Writes the session's config first (:func:`write_openssh_config`). ``-F`` makes OpenSSH
    read that file only: neither ``~/.ssh/config`` nor ``/etc/ssh/ssh_config`` can turn a
    forwarding, a proxy or a local command back on.
    """
    config = write_openssh_config(project, ipv4)
    return ["ssh", "-F", str(config), *extra, "--", host_alias(project)]


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
