"""The OpenSSH client files of a session: its ``Host`` block and the config ``ssh -F`` reads.

``vibebox shell`` runs plain OpenSSH with ``-F`` and a config vibebox writes
(``.vibebox/ssh_config``), so nothing in the user's ``~/.ssh/config`` (``ForwardAgent yes``, a
``ProxyCommand``, a ``LocalCommand``) applies to a session; ``vibebox ssh-config`` prints the
same block for the user's own config. Both point OpenSSH at the session's pinned
``.vibebox/known_hosts`` (:mod:`vibebox_core.ssh.keys`) with strict checking on. The project
path, the alias and the guest's address are checked or escaped before they reach the file.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from vibebox_core.config.schema import GUEST_USER
from vibebox_core.errors import SSHError
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor.names import sanitise_project_name
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.ssh.connect import CIPHERS


def host_alias(project: ProjectPaths) -> str:
    """The OpenSSH ``Host`` name of a project's session: ``vibebox-<project>``."""
    return f"vibebox-{sanitise_project_name(project.name)}"


#: What vibebox's own OpenSSH config says for every session, whatever the user's
#: ``~/.ssh/config`` or ``/etc/ssh/ssh_config`` say (``ssh -F`` reads neither). The guest is
#: hostile (SECURITY.md, "Who the adversary is"): nothing of the host may reach it through
#: the connection, so agent, X11, port and socket forwarding, tunnels and the SSH agent are
#: off; the key is vibebox's own and the host key the pinned one, checked strictly and never
#: learnt or updated; no command runs on the host (LocalCommand, ProxyCommand,
#: KnownHostsCommand, keysign). The ciphers are the dashboard's own (AES-GCM first,
#: :data:`vibebox_core.ssh.connect.CIPHERS`).
OPENSSH_OPTIONS: tuple[tuple[str, str], ...] = (
    ("Port", "22"),
    ("Ciphers", ",".join(CIPHERS)),
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
