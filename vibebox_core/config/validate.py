"""Checking a parsed ``vibebox.toml``: each table, key and value against the schema.

Every value is checked before anything starts, and a bad one is refused with the file, the
key, the line and what was expected. Unknown keys are refused too: a typo such as
``cpu = 8`` would otherwise be silently ignored, which is worse than an error that names the
key and suggests the right one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomlkit.toml_document import TOMLDocument

from vibebox_core.config.hostnames import normalize_entry
from vibebox_core.config.lines import FileLines, at_line, top_level_line
from vibebox_core.config.mounts import mount_refusal, parse_mount, project_mount
from vibebox_core.config.schema import (
    ACCELS,
    AUTO_SHUTDOWN_MS_RANGE,
    CPUS_RANGE,
    DISK_GB_RANGE,
    MEMORY_MB_RANGE,
    NETWORK_MODES,
    PORT_RANGE,
    PROVISION_MAX_CHARS,
    PROVISION_MAX_STEPS,
    BoxConfig,
    Config,
    Mount,
    NetworkConfig,
    PortForward,
    ProvisionConfig,
    Secret,
    SupervisorConfig,
)
from vibebox_core.config.secrets import validate_secrets
from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _int(
    ctx: FileLines, table: str, key: str, value: Any, bounds: tuple[int, int], unit: str
) -> int:
    low, high = bounds
    expected = f"a whole number of {unit} from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(table, key, f"expected {expected}, got {_describe(value)}")
    if not low <= value <= high:
        raise ctx.error(table, key, f"expected {expected}, got {value}")
    return value


def _choice(ctx: FileLines, table: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        got = _describe(value)
        raise ctx.error(
            table, key, f"expected one of {_names(repr(c) for c in choices)}, got {got}"
        )
    return value


def _str_list(ctx: FileLines, table: str, key: str, value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise ctx.error(table, key, f"expected an array of {what}, got {_describe(value)}")
    for item in value:
        if not isinstance(item, str):
            raise ctx.error(
                table,
                key,
                f"expected an array of {what}, found {_describe(item)}",
                line=ctx.line_of_item(table, key, str(item)),
            )
    return list(value)


#: The only libvirt connections vibebox drives: the local system and session daemons.
LIBVIRT_URIS = ("qemu:///system", "qemu:///session")


def check_libvirt_uri(uri: str) -> str | None:
    """Say why ``uri`` cannot be used as ``[box] libvirt_uri``; None when it can.

    Only :data:`LIBVIRT_URIS` are accepted. A session's disk, kernel, seed and shares are
    paths on this machine, so a remote libvirt cannot run it; and some transports run a
    program on the host (``ext``, ``ssh`` with ``command=``, ``?socket=`` ...), so a URI from a
    guest-writable file must never reach libvirt.
    """
    if uri in LIBVIRT_URIS:
        return None
    lowered = uri.lower()
    scheme = lowered.split(":", 1)[0]
    runs_program = (
        "+ext" in scheme
        or scheme.endswith("+ssh")
        or scheme.endswith("+libssh")
        or scheme.endswith("+libssh2")
        or any(f"{word}=" in lowered for word in ("command", "socket", "keyfile", "netcat"))
    )
    if runs_program:
        return (
            "this transport can run a program on the host, so vibebox never uses it; "
            "remote libvirt is not supported"
        )
    return (
        "remote or custom libvirt connections are not supported: a session's disk, kernel "
        "and shares are paths on this machine"
    )


def _libvirt_uri(ctx: FileLines, value: Any) -> str:
    if not isinstance(value, str):
        raise ctx.error(
            "box",
            "libvirt_uri",
            f"expected 'qemu:///system' or 'qemu:///session', got {_describe(value)}",
        )
    uri = value.strip()
    why = check_libvirt_uri(uri)
    if why is not None:
        raise ctx.error(
            "box",
            "libvirt_uri",
            f"{why}; expected the libvirt URI 'qemu:///system' or 'qemu:///session', "
            f"got {_shown(uri)}",
            hint='set libvirt_uri to "qemu:///system" (or "qemu:///session"), or remove '
            "the line; vibebox runs sessions on this machine's libvirt only",
        )
    return uri


def _shown(text: str, limit: int = 80) -> str:
    """A value from the file, quoted with control characters escaped and cut to ``limit``."""
    quoted = repr(text if len(text) <= limit else text[:limit] + "…")
    return quoted


def _mounts(ctx: FileLines, project: ProjectPaths, value: Any) -> tuple[Mount, ...]:
    specs = _str_list(ctx, "box", "mounts", value, "'host:guest[:ro|rw]' strings")
    implicit = project_mount(project)
    seen: dict[str, str] = {implicit.guest: f"the project mount ({project.root})"}
    mounts: list[Mount] = []
    for spec in specs:
        line = ctx.line_of_item("box", "mounts", spec)
        try:
            mount = parse_mount(spec, project.root)
        except ValueError as exc:
            raise ctx.error("box", "mounts", str(exc), line=line) from None
        refused = mount_refusal(mount.host, project)
        if refused is not None:
            raise ctx.error(
                "box",
                "mounts",
                f"{spec!r}: {refused}",
                line=line,
                hint="pick a directory outside the project's .vibebox/ and vibebox's home "
                f"that does not contain the project (the project is always mounted at "
                f"{implicit.guest})",
            )
        if mount.guest in seen:
            raise ctx.error(
                "box",
                "mounts",
                f"{spec!r}: the guest path {mount.guest} is already used by {seen[mount.guest]}; "
                "expected each guest path once",
                line=line,
            )
        seen[mount.guest] = repr(spec)
        mounts.append(mount)
    return tuple(mounts)


def parse_port(raw: str | int) -> PortForward:
    """Parse one ``[network] ports`` value: ``8000``, ``"8000"`` or ``"8080:80"``.

    Raises:
        ValueError: not a port or a ``host:guest`` pair of ports from 1 to 65535.
    """
    expected = "expected a port ('8000') or 'host:guest' ('8080:80'), ports from 1 to 65535"
    if isinstance(raw, bool):
        raise ValueError(f"{expected}, got {_describe(raw)}")
    if isinstance(raw, int):
        parts = [str(raw)]
    elif isinstance(raw, str):
        parts = raw.strip().split(":")
    else:
        raise ValueError(f"{expected}, got {_describe(raw)}")
    if len(parts) not in (1, 2) or not all(re.fullmatch(r"[0-9]{1,5}", p) for p in parts):
        raise ValueError(f"{raw!r}: {expected}")
    numbers = [int(p) for p in parts]
    low, high = PORT_RANGE
    if not all(low <= n <= high for n in numbers):
        raise ValueError(f"{raw!r}: {expected}")
    return PortForward(host_port=numbers[0], guest_port=numbers[-1])


def _ports(ctx: FileLines, value: Any) -> tuple[PortForward, ...]:
    if not isinstance(value, list):
        raise ctx.error(
            "network",
            "ports",
            f"expected an array of ports or 'host:guest' strings, got {_describe(value)}",
        )
    ports: list[PortForward] = []
    used: set[int] = set()
    for item in value:
        line = ctx.line_of_item("network", "ports", str(item))
        try:
            port = parse_port(item)
        except ValueError as exc:
            raise ctx.error("network", "ports", str(exc), line=line) from None
        if port.host_port in used:
            raise ctx.error(
                "network",
                "ports",
                f"host port {port.host_port} is forwarded twice; expected each host port once",
                line=line,
            )
        used.add(port.host_port)
        ports.append(port)
    return tuple(ports)


def _entries(ctx: FileLines, value: Any) -> tuple[str, ...]:
    raw_entries = _str_list(ctx, "network", "entries", value, "domain names")
    entries: list[str] = []
    for raw in raw_entries:
        try:
            entry = normalize_entry(raw)
        except ValueError as exc:
            raise ctx.error(
                "network",
                "entries",
                f"{exc}; expected domain names such as 'example.com' or '*.example.com'",
                line=ctx.line_of_item("network", "entries", raw),
            ) from None
        if entry not in entries:
            entries.append(entry)
    return tuple(entries)


#: Control characters a provisioning step may not hold: every C0 one but tab, newline and
#: carriage return (a multi-line script is fine, from a file saved with CRLF too), and DEL.
#: A NUL would cut the command short in the guest; the others would only hide what the step
#: does when it is shown.
_STEP_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _provision_run(ctx: FileLines, value: Any) -> tuple[str, ...]:
    steps = _str_list(ctx, "provision", "run", value, "command strings")
    if len(steps) > PROVISION_MAX_STEPS:
        raise ctx.error(
            "provision",
            "run",
            f"{len(steps)} steps; expected at most {PROVISION_MAX_STEPS} commands "
            "(put a longer script in a file of the project and run that)",
        )
    for number, step in enumerate(steps, start=1):
        first_line = step.strip().split("\n", 1)[0]
        line = ctx.line_of_item("provision", "run", first_line) if first_line else None

        def refuse(problem: str, number: int = number, line: int | None = line) -> ConfigError:
            return ctx.error("provision", "run", f"step {number}: {problem}", line=line)

        if not step.strip():
            raise refuse("an empty command; expected a shell command such as 'make setup'")
        if len(step) > PROVISION_MAX_CHARS:
            raise refuse(
                f"{len(step)} characters; expected at most {PROVISION_MAX_CHARS} (put a longer "
                "script in a file of the project and run that)"
            )
        control = _STEP_CONTROL.search(step)
        if control is not None:
            raise refuse(
                f"holds the control character {control.group()!r} in {_shown(step)}; expected "
                "text (tabs and line breaks are fine)"
            )
    return tuple(steps)


_Validator = Callable[[FileLines, ProjectPaths, Any], Any]

_SCHEMA: dict[str, dict[str, _Validator]] = {
    "box": {
        "cpus": lambda c, p, v: _int(c, "box", "cpus", v, CPUS_RANGE, "CPUs"),
        "memory_mb": lambda c, p, v: _int(c, "box", "memory_mb", v, MEMORY_MB_RANGE, "MiB"),
        "disk_gb": lambda c, p, v: _int(c, "box", "disk_gb", v, DISK_GB_RANGE, "GiB"),
        "accel": lambda c, p, v: _choice(c, "box", "accel", v, ACCELS),
        "libvirt_uri": lambda c, p, v: _libvirt_uri(c, v),
        "mounts": _mounts,
    },
    "network": {
        "mode": lambda c, p, v: _choice(c, "network", "mode", v, NETWORK_MODES),
        "entries": lambda c, p, v: _entries(c, v),
        "ports": lambda c, p, v: _ports(c, v),
    },
    "supervisor": {
        "auto_shutdown_ms": lambda c, p, v: _int(
            c, "supervisor", "auto_shutdown_ms", v, AUTO_SHUTDOWN_MS_RANGE, "milliseconds"
        ),
    },
    "provision": {
        "run": lambda c, p, v: _provision_run(c, v),
    },
}


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_key(path: Path, table: str, key: str) -> None:
    """Refuse a table or key that ``vibebox.toml`` does not have (before it is written).

    Raises:
        ConfigError: an unknown table, or an unknown key of that table.
    """
    if table not in _SCHEMA:
        raise ConfigError(
            f"{path}: unknown table [{table}]",
            hint=f"vibebox.toml has the tables {_names(_SCHEMA)}",
        )
    if key not in _SCHEMA[table]:
        raise ConfigError(
            f"{path}: unknown key {table}.{key}",
            hint=f"[{table}] has the keys {_names(_SCHEMA[table])}",
        )


def validate(project: ProjectPaths, path: Path, text: str, doc: TOMLDocument) -> Config:
    """Check every table, key and value of ``doc`` (parsed from ``text``, read from ``path``).

    Returns:
        The validated config (``$VIBEBOX_ACCEL`` not applied).

    Raises:
        ConfigError: an unknown table or key, or a bad value; names the file, key and line.
    """
    ctx = FileLines(path, text)
    values: dict[str, dict[str, Any]] = {name: {} for name in _SCHEMA}
    secrets: tuple[Secret, ...] = ()
    for table_name, table in doc.items():
        if table_name == "secrets":  # an array of tables, one per secret (config.secrets)
            secrets = validate_secrets(ctx, _plain(table))
            continue
        if table_name not in _SCHEMA:
            if isinstance(_plain(table), dict):
                raise ConfigError(
                    f"{path}{at_line(ctx.line_of(table_name))}: unknown table [{table_name}]"
                    f"{_suggest(table_name, _SCHEMA)}",
                    hint=f"vibebox.toml has the tables {_names(f'[{t}]' for t in _SCHEMA)} "
                    "and [[secrets]]",
                )
            raise ConfigError(
                f"{path}{at_line(top_level_line(ctx, table_name))}: unknown top-level key "
                f"{table_name!r}{_suggest(table_name, _SCHEMA)}; expected the tables "
                f"{_names(f'[{t}]' for t in _SCHEMA)}",
                hint="put settings under their table, e.g. cpus under [box]",
            )
        plain = _plain(table)
        if not isinstance(plain, dict):
            raise ctx.error(table_name, None, f"expected a table, got {_describe(plain)}")
        schema = _SCHEMA[table_name]
        for key, value in plain.items():
            if key not in schema:
                raise ctx.error(
                    table_name,
                    key,
                    f"unknown key{_suggest(key, schema)}",
                    hint=f"[{table_name}] has the keys {_names(schema)}",
                )
            values[table_name][key] = schema[key](ctx, project, value)
    box = BoxConfig(**values["box"])
    network = NetworkConfig(**values["network"])
    supervisor = SupervisorConfig(**values["supervisor"])
    provision = ProvisionConfig(**values["provision"])
    return Config(
        path=path,
        box=box,
        network=network,
        supervisor=supervisor,
        provision=provision,
        secrets=secrets,
    )
