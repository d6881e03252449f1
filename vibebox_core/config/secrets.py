"""Checking ``[[secrets]]``: the credentials a project asks the host to keep for the guest.

A secret makes the *host* do things: read an environment variable, a file or the output of a
command, and send that value out to the listed hosts. The file is guest-writable, so every
part of a secret is checked here (and again when an approved snapshot is read back,
:func:`secrets_from_canonical`): the name must be a plain environment variable that does not
replace one the guest's tools depend on (``PATH``, the proxy and CA variables, ``VIBEBOX_*``),
the hosts must be domain names (no IP literal, no wildcard, no top-level domain alone: one
approved line must not send a token to every ``.com``), and the source one of three forms,
shown whole in the approval dialog because a ``command:`` runs on the host.

The pure checks raise :class:`ValueError`; :func:`validate_secrets` turns them into a
:class:`~vibebox_core.errors.ConfigError` naming the file, the table and the line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from vibebox_core.config.hostnames import normalize_entry, parse_ip_literal
from vibebox_core.config.lines import FileLines
from vibebox_core.config.schema import SECRET_HOSTS_MAX, SECRETS_MAX, Secret
from vibebox_core.sanitize import clean

#: The keys of one ``[[secrets]]`` table, all required.
SECRET_KEYS = ("name", "hosts", "source")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
#: Variables the guest's shells and tools need as vibebox sets them: a placeholder in one of
#: them would break the guest (``PATH``) or steer its traffic and trust (proxy, CA bundle).
#: Compared case-insensitively: tools read ``http_proxy`` and ``HTTP_PROXY`` alike, and no
#: credential needs to be called ``Path``.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "PWD",
        "LANG",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "ftp_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "PIP_CERT",
        "GIT_SSL_CAINFO",
    )
)
_RESERVED_PREFIXES = ("lc_", "ld_", "vibebox_")
#: A source is one line the approval dialog shows whole; a longer one is a script in disguise.
SOURCE_MAX_CHARS = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(text: str, limit: int = 80) -> str:
    """A string from the file, quoted, cut to ``limit`` and safe for a terminal."""
    return clean(repr(text if len(text) <= limit else text[:limit] + "…"), None)


def check_name(name: Any) -> str:
    """Return ``name`` when it may name a secret's guest variable.

    Raises:
        ValueError: not a string matching ``[A-Za-z_][A-Za-z0-9_]{0,63}``, or a reserved name.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        got = shown(name) if isinstance(name, str) else f"a {type(name).__name__}"
        raise ValueError(
            f"expected an environment variable name (letters, digits and _, not starting with "
            f"a digit, at most 64 characters), got {got}"
        )
    lowered = name.lower()
    if lowered in _RESERVED or lowered.startswith(_RESERVED_PREFIXES):
        raise ValueError(
            f"{name} is reserved: the guest's shells, proxy or certificates need it as vibebox "
            "sets it (PATH, HOME, LANG, LC_*, LD_*, the *_proxy and CA bundle variables and "
            "VIBEBOX_* are reserved); pick another name"
        )
    return name


def check_host(raw: Any) -> str:
    """Return the normalised domain of one ``hosts`` value.

    Raises:
        ValueError: not a domain name of at least two labels (an IP literal in any spelling,
            a wildcard, a scheme, a port or a path are refused).
    """
    if not isinstance(raw, str):
        raise ValueError(f"expected a domain name as a string, got a {type(raw).__name__}")
    if "*" in raw:
        raise ValueError(
            f"{shown(raw)}: no wildcards; a host covers its subdomains already, so write "
            "'example.com' for '*.example.com'"
        )
    host = normalize_entry(raw)
    if parse_ip_literal(host) is not None:
        raise ValueError(f"{shown(raw)}: IP addresses are not supported, write a domain name")
    if "." not in host:
        raise ValueError(
            f"{shown(raw)}: expected a domain such as 'api.example.com'; a single label would "
            "send the secret to every host under it"
        )
    return host


def check_hosts(value: Any) -> tuple[str, ...]:
    """Return the normalised hosts of a secret, de-duplicated and sorted (as in the canonical
    form, so a secret read from the file equals the one rebuilt from its approval).

    Raises:
        ValueError: not a non-empty array of at most :data:`SECRET_HOSTS_MAX` domain names.
    """
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("expected a non-empty array of domain names, e.g. ['api.github.com']")
    if len(value) > SECRET_HOSTS_MAX:
        raise ValueError(f"{len(value)} hosts; expected at most {SECRET_HOSTS_MAX}")
    return tuple(sorted({check_host(item) for item in value}))


def command_argv(rest: str) -> list[str]:
    """Split the ARGV of a ``command:`` source the way a shell would (no shell runs it).

    Raises:
        ValueError: unbalanced quotes, no words, an empty first word, or a relative program
            path (it would depend on the directory the host runs it from).
    """
    try:
        argv = shlex.split(rest)
    except ValueError as exc:
        raise ValueError(f"cannot split the command ({exc})") from None
    if not argv or not argv[0]:
        raise ValueError("expected a command after 'command:', e.g. 'command:gh auth token'")
    program = argv[0]
    if "/" in program and not program.startswith(("/", "~")):
        raise ValueError(
            f"{shown(program)}: name a program on PATH or give an absolute path (a relative "
            "path would depend on where the host runs it)"
        )
    return argv


def check_source(value: Any) -> str:
    """Return the normalised form of a secret's ``source``.

    ``env:VAR`` (a variable name), ``file:PATH`` (absolute or ``~``-prefixed) or
    ``command:ARGV`` (split like a shell, run without one). Surrounding blanks are dropped.

    Raises:
        ValueError: none of those forms, a control character, or longer than
            :data:`SOURCE_MAX_CHARS`.
    """
    expected = "expected 'env:VAR', 'file:PATH' or 'command:ARGV'"
    if not isinstance(value, str):
        raise ValueError(f"{expected}, got a {type(value).__name__}")
    source = value.strip()
    if len(source) > SOURCE_MAX_CHARS:
        raise ValueError(f"{len(source)} characters; expected at most {SOURCE_MAX_CHARS}")
    control = _CONTROL.search(source)
    if control is not None:
        raise ValueError(f"holds the control character {control.group()!r} in {shown(source)}")
    kind, colon, rest = source.partition(":")
    rest = rest.strip()
    if not colon or kind not in ("env", "file", "command"):
        raise ValueError(f"{expected}, got {shown(source)}")
    if kind == "env":
        if not _ENV_VAR.fullmatch(rest):
            raise ValueError(f"expected 'env:' and a variable name, got {shown(source)}")
    elif kind == "file":
        if not rest.startswith(("/", "~")):
            raise ValueError(
                f"expected 'file:' and an absolute or '~/' path, got {shown(source)} (a relative "
                "path would depend on where the host reads it)"
            )
    else:
        command_argv(rest)
    return f"{kind}:{rest}"


def make_secret(name: Any, hosts: Any, source: Any) -> Secret:
    """Check one secret's three values and build it.

    Raises:
        ValueError: a bad value; the message starts with the key it is about.
    """
    checked: dict[str, Any] = {}
    for key, check, value in (
        ("name", check_name, name),
        ("hosts", check_hosts, hosts),
        ("source", check_source, source),
    ):
        try:
            checked[key] = check(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return Secret(name=checked["name"], hosts=checked["hosts"], source=checked["source"])


def _check_set(secrets: Sequence[Secret]) -> None:
    if len(secrets) > SECRETS_MAX:
        raise ValueError(f"{len(secrets)} secrets; expected at most {SECRETS_MAX}")
    names = [s.name for s in secrets]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"the secret {name} is defined twice; expected each name once")


def canonical_secrets(secrets: Sequence[Secret]) -> list[dict[str, Any]]:
    """The secrets as canonical JSON data: sorted by name, each one's hosts sorted."""
    return [
        {"name": s.name, "hosts": sorted(set(s.hosts)), "source": s.source}
        for s in sorted(secrets, key=lambda s: s.name)
    ]


def secrets_from_canonical(data: Mapping[str, Any]) -> tuple[Secret, ...]:
    """Build the secrets of a canonical policy (or approved values) dict, checking each again.

    A damaged or hand-edited snapshot or index entry never makes the host read or send
    anything the rules refuse. No ``"secrets"`` key means no secrets.

    Raises:
        ValueError: a bad secret, a name twice, or too many.
    """
    raw = data.get("secrets", [])
    if not isinstance(raw, list):
        raise ValueError("approved secrets are not a list")
    secrets: list[Secret] = []
    for item in raw:
        if not isinstance(item, Mapping) or set(item) != set(SECRET_KEYS):
            raise ValueError("a bad approved secret")
        try:
            secrets.append(make_secret(item["name"], item["hosts"], item["source"]))
        except ValueError as exc:
            raise ValueError(f"a bad approved secret: {exc}") from None
    _check_set(secrets)
    return tuple(secrets)


# ---------------------------------------------------------------------------------------------
# The [[secrets]] tables of vibebox.toml

_SECRETS_HEADER = re.compile(r"^\s*\[\[\s*[\"']?secrets[\"']?\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")


def _line_of(ctx: FileLines, number: int, key: str | None) -> int | None:
    """The line of the ``number``-th ``[[secrets]]`` header (1-based), or of ``key`` in it."""
    headers = [i for i, line in enumerate(ctx.lines, start=1) if _SECRETS_HEADER.match(line)]
    if number > len(headers):
        return None  # written inline (secrets = [{...}]): no header to point at
    start = headers[number - 1]
    if key is None:
        return start
    key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for at in range(start + 1, len(ctx.lines) + 1):
        line = ctx.lines[at - 1]
        if _ANY_HEADER.match(line):
            break
        if key_re.match(line):
            return at
    return start


def validate_secrets(ctx: FileLines, value: Any) -> tuple[Secret, ...]:
    """Check the ``[[secrets]]`` array of tables of a parsed ``vibebox.toml``.

    Args:
        ctx: the file's lines, for the error's line number.
        value: the plain (unwrapped) value of the ``secrets`` key.

    Raises:
        ConfigError: not an array of tables, an unknown or missing key, a bad value, a name
            twice, or more than :data:`~vibebox_core.config.schema.SECRETS_MAX` secrets.
    """
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ctx.error(
            "secrets",
            None,
            "expected [[secrets]] tables, each with name, hosts and source",
            line=_line_of(ctx, 1, None),
        )
    if len(value) > SECRETS_MAX:
        raise ctx.error(
            "secrets",
            None,
            f"{len(value)} secrets; expected at most {SECRETS_MAX}",
            line=_line_of(ctx, SECRETS_MAX + 1, None),
        )
    secrets: list[Secret] = []
    for number, table in enumerate(value, start=1):
        where = f"secrets[{number}]"
        for key in table:
            if key not in SECRET_KEYS:
                plain = re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(key))
                raise ctx.error(
                    where,
                    str(key) if plain else shown(str(key)),
                    "unknown key",
                    line=_line_of(ctx, number, str(key)),
                    hint="a [[secrets]] table has the keys name, hosts and source",
                )
        for key in SECRET_KEYS:
            if key not in table:
                raise ctx.error(
                    where,
                    None,
                    f"the key {key} is missing; each [[secrets]] table needs name, hosts and "
                    "source",
                    line=_line_of(ctx, number, None),
                )
        try:
            secret = make_secret(table["name"], table["hosts"], table["source"])
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise ctx.error(where, key, problem, line=_line_of(ctx, number, key)) from None
        if any(s.name == secret.name for s in secrets):
            raise ctx.error(
                where,
                "name",
                f"the secret {secret.name} is defined twice; expected each name once",
                line=_line_of(ctx, number, "name"),
            )
        secrets.append(secret)
    return tuple(secrets)
