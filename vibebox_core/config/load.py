"""``vibebox.toml``: a project's settings, read, validated and written with tomlkit.

The file is meant to be committed, so people edit it by hand; vibebox writes it with tomlkit
so their comments and layout survive. Every value is checked before anything starts, and a
bad one is refused with the file, the key, the line and what was expected. Unknown keys are
refused too: a typo such as ``cpu = 8`` would otherwise be silently ignored, which is worse
than an error that names the key and suggests the right one.

The project directory itself is always mounted (read-write, at ``~/<project-name>`` in the
guest); ``[box] mounts`` only lists the extra ones (see :func:`all_mounts`).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import posixpath
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError, TOMLKitError
from tomlkit.toml_document import TOMLDocument

from vibebox_core import paths
from vibebox_core.config.projectfile import read_bounded
from vibebox_core.errors import ConfigError
from vibebox_core.network.rules import normalize_entry
from vibebox_core.paths import PROJECT_CACHE as PROJECT_CACHE_NAME
from vibebox_core.paths import PROJECT_CONFIG, ProjectPaths, vibebox_home

GUEST_USER = "vibecoder"
GUEST_HOME = "/home/vibecoder"

ACCEL_ENV = "VIBEBOX_ACCEL"

Accel = Literal["auto", "kvm", "tcg"]
NetworkMode = Literal["allowlist", "blocklist"]
ACCELS: tuple[Accel, ...] = ("auto", "kvm", "tcg")
NETWORK_MODES: tuple[NetworkMode, ...] = ("allowlist", "blocklist")

# Inclusive limits. The lower ones keep a Debian guest bootable; the upper ones catch a unit
# mistake (e.g. memory in bytes) before libvirt reports something obscure.
CPUS_RANGE = (1, 512)
MEMORY_MB_RANGE = (256, 4 * 1024 * 1024)
DISK_GB_RANGE = (1, 64 * 1024)
AUTO_SHUTDOWN_MS_RANGE = (0, 7 * 24 * 3600 * 1000)
PORT_RANGE = (1, 65535)

_READ_ONLY_WORDS = {"ro": True, "read-only": True, "rw": False, "read-write": False}

# Guest paths a mount may not cover: the guest would not boot or vibebox could not reach it.
_RESERVED_GUEST_PATHS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        GUEST_HOME,
    }
)
# Nothing may be mounted below these (kernel and runtime file systems, the seed share).
_RESERVED_GUEST_TREES = ("/proc", "/sys", "/dev", "/run")

DEFAULT_CONFIG_TEXT = f"""\
# vibebox settings for this project. Commit this file; vibebox keeps your comments.
# Every key is described in vibebox's README ("Configuration").

[box]
cpus = 2                        # virtual CPUs
memory_mb = 2048                # guest memory in MiB
disk_gb = 10                    # size of the instance disk in GiB
accel = "auto"                  # auto | kvm | tcg  (the environment variable {ACCEL_ENV} wins)
libvirt_uri = "qemu:///system"  # this machine's libvirt: qemu:///system or qemu:///session
# Extra folders shared with the guest: "host:guest[:ro|rw]" (default rw). "~" is your home on
# the host side and {GUEST_HOME} on the guest side. This project is always mounted
# read-write at ~/<project-name>.
mounts = []                     # e.g. ["~/datasets:~/datasets:ro"]

[network]
mode = "blocklist"              # allowlist | blocklist
entries = []                    # domains; an entry matches the domain and its subdomains
ports = []                      # "8000" or "host:guest": host loopback -> guest, while attached

[supervisor]
auto_shutdown_ms = 20000        # grace after the last vibebox detaches, then the VM shuts down
"""


@dataclass(frozen=True)
class Mount:
    """A host directory shared with the guest.

    Attributes:
        host: absolute, ``~``-expanded host directory.
        guest: absolute POSIX path in the guest (``~`` already mapped to :data:`GUEST_HOME`).
        read_only: True when the guest may not write (enforced on the host).
        default: True only for the implicit project mount.
    """

    host: Path
    guest: str
    read_only: bool
    default: bool = False

    @property
    def access(self) -> str:
        """``"ro"`` or ``"rw"``."""
        return "ro" if self.read_only else "rw"


@dataclass(frozen=True)
class PortForward:
    """A host loopback port forwarded to a guest port while a vibebox is attached."""

    host_port: int
    guest_port: int

    def __str__(self) -> str:
        if self.host_port == self.guest_port:
            return str(self.host_port)
        return f"{self.host_port}:{self.guest_port}"


@dataclass(frozen=True)
class BoxConfig:
    """``[box]``: the VM's size, accelerator, libvirt connection and extra mounts."""

    cpus: int = 2
    memory_mb: int = 2048
    disk_gb: int = 10
    accel: Accel = "auto"
    libvirt_uri: str = "qemu:///system"
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: the policy mode, its (normalised) domain entries and port forwards."""

    mode: NetworkMode = "blocklist"
    entries: tuple[str, ...] = ()
    ports: tuple[PortForward, ...] = ()


@dataclass(frozen=True)
class SupervisorConfig:
    """``[supervisor]``: how long a session outlives its last attached vibebox."""

    auto_shutdown_ms: int = 20000


@dataclass(frozen=True)
class Config:
    """A project's validated settings.

    Attributes:
        path: the ``vibebox.toml`` they came from (it may not exist when loaded with
            ``create=False``; then every value is the default).
    """

    path: Path
    box: BoxConfig = field(default_factory=BoxConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


# ---------------------------------------------------------------------------------------------
# Public API


def load_config(project: ProjectPaths, *, create: bool = True, env: bool = True) -> Config:
    """Read and validate ``<project>/vibebox.toml``.

    The file is guest-writable: what it says drives nothing on the host until it is approved
    (:mod:`vibebox_core.config.approval` keeps the approved values outside the project). Use this
    for what the *file* says; use :func:`vibebox_core.config.approval.enforced_config` for what is
    in force.

    Args:
        project: the project's paths.
        create: when the file is missing, write the commented defaults (True) or just use the
            defaults without writing anything (False).
        env: apply ``$VIBEBOX_ACCEL`` (True) or return the file's own values (False).

    Returns:
        The validated config. ``$VIBEBOX_ACCEL`` (auto|kvm|tcg), when set and ``env``,
        replaces ``[box] accel``.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or holds a bad value. The message
            names the file, the key, the line where known, and what was expected. Nothing is
            written in that case.
    """
    path = project.config
    if not path.exists() and not path.is_symlink():
        if create:
            _write_defaults(project)
        else:
            return _apply_env(Config(path=path)) if env else Config(path=path)
    text = _read_text(path)
    doc = _parse(path, text)
    config = _validate(project, path, text, doc)
    return _apply_env(config) if env else config


def project_mount(project: ProjectPaths) -> Mount:
    """Return the implicit mount of the project directory (read-write, at ``~/<name>``)."""
    return Mount(
        host=project.root,
        guest=posixpath.join(GUEST_HOME, project.name),
        read_only=False,
        default=True,
    )


def all_mounts(config: Config, project: ProjectPaths) -> tuple[Mount, ...]:
    """Return every mount of a session: the project mount first, then ``[box] mounts``."""
    return (project_mount(project), *config.box.mounts)


def default_config_text() -> str:
    """Return the commented file :func:`load_config` writes for a new project."""
    return DEFAULT_CONFIG_TEXT


def set_value(project: ProjectPaths, table: str, key: str, value: Any) -> Config:
    """Change one value in ``vibebox.toml``, keeping every comment and the layout.

    The new document is validated first; nothing is written when it is refused.

    Args:
        project: the project's paths (the file is created with the defaults if missing).
        table: ``"box"``, ``"network"`` or ``"supervisor"``.
        key: a key of that table, e.g. ``"cpus"``.
        value: a plain TOML value (int, str, list of str ...).

    Returns:
        The validated config as written.

    Raises:
        ConfigError: the table, key or value is not valid.
    """
    if table not in _SCHEMA:
        raise ConfigError(
            f"{project.config}: unknown table [{table}]",
            hint=f"vibebox.toml has the tables {_names(_SCHEMA)}",
        )
    if key not in _SCHEMA[table]:
        raise ConfigError(
            f"{project.config}: unknown key {table}.{key}",
            hint=f"[{table}] has the keys {_names(_SCHEMA[table])}",
        )
    load_config(project, create=True)
    path = project.config
    doc = _parse(path, _read_text(path))
    section = doc.get(table)
    if section is None:
        section = tomlkit.table()
        doc[table] = section
    section[key] = value
    text = tomlkit.dumps(doc)
    config = _apply_env(_validate(project, path, text, _parse(path, text)))
    _atomic_write(path, text)
    return config


# ---------------------------------------------------------------------------------------------
# Reading


def _read_text(path: Path) -> str:
    # The guest can replace the file (a symlink to /dev/zero, a FIFO, a huge file): only a
    # regular file of bounded size is read, and a symlink is refused (projectfile).
    try:
        data = read_bounded(path, what=PROJECT_CONFIG)
    except FileNotFoundError:
        raise ConfigError(
            f"cannot read {path}: it was removed while vibebox read it",
            hint="run the command again; vibebox then writes the defaults",
        ) from None
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: a NUL byte; expected TOML text",
            hint="save vibebox.toml as UTF-8 text, or delete it to get the defaults",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: not valid UTF-8 text",
            hint="save vibebox.toml as UTF-8",
        ) from None


def _parse(path: Path, text: str) -> TOMLDocument:
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        if "\\x00" in reason or "\x00" in reason:
            reason = "the file ends in the middle of a value"
        raise ConfigError(
            f"{path}, line {exc.line}, column {exc.col}: not valid TOML: {reason}",
            hint="fix the syntax (see https://toml.io), or delete the file to get the defaults",
        ) from None
    except KeyAlreadyPresent as exc:
        match = re.search(r'Key "(.*)" already exists', str(exc))
        key = match.group(1) if match else ""
        line = _duplicate_line(text, key) if key else None
        raise ConfigError(
            f"{path}{_at(line)}: the key {key!r} is set twice; expected each key once",
            hint="remove one of the two lines",
        ) from None
    except (TOMLKitError, ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
        # tomlkit raises more than ParseError for some malformed documents.
        raise ConfigError(
            f"{path}: not valid TOML ({type(exc).__name__})",
            hint="fix the syntax (see https://toml.io), or delete the file to get the defaults",
        ) from None
    if not doc:
        raise ConfigError(
            f"{path} is empty: expected the tables [box], [network] and [supervisor]",
            hint="delete the file and vibebox writes a commented default one",
        )
    return doc


def _duplicate_line(text: str, key: str) -> int | None:
    """The line where ``key`` is given the second time (a key or a table header)."""
    name = re.escape(key)
    pattern = re.compile(rf"(^|[{{,.\s\[])[\"']?{name}[\"']?\s*(=|\])", re.MULTILINE)
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0]
        hits = len(pattern.findall(stripped))
        if hits and seen + hits >= 2:
            return number
        seen += hits
    return None


def apply_env(config: Config) -> Config:
    """Return ``config`` with ``$VIBEBOX_ACCEL`` (when set) in place of ``[box] accel``.

    Raises:
        ConfigError: the variable holds something other than auto, kvm or tcg.
    """
    return _apply_env(config)


def _apply_env(config: Config) -> Config:
    raw = os.environ.get(ACCEL_ENV)
    if raw is None or raw == "":
        return config
    accel = raw.strip().lower()
    if accel not in ACCELS:
        raise ConfigError(
            f"environment variable {ACCEL_ENV}={raw!r}: expected one of {_names(ACCELS)}",
            hint=f"unset {ACCEL_ENV} or set it to auto, kvm or tcg",
        )
    if accel == config.box.accel:
        return config
    box = BoxConfig(
        cpus=config.box.cpus,
        memory_mb=config.box.memory_mb,
        disk_gb=config.box.disk_gb,
        accel=accel,
        libvirt_uri=config.box.libvirt_uri,
        mounts=config.box.mounts,
    )
    return Config(path=config.path, box=box, network=config.network, supervisor=config.supervisor)


# ---------------------------------------------------------------------------------------------
# Validation


class _Ctx:
    """Where a value came from, to build error messages that point at it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None = None) -> int | None:
        """Find the line of ``[table]`` or of ``key = ...`` inside it (1-based)."""
        current: str | None = None
        header = re.compile(r"^\s*\[\s*([A-Za-z0-9_\-\"']+)\s*\]")
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        dotted = re.compile(rf"^\s*{re.escape(table)}\s*\.\s*{re.escape(key or '')}\s*=")
        for number, line in enumerate(self.lines, start=1):
            match = header.match(line)
            if match:
                current = match.group(1).strip("\"'")
                if key is None and current == table:
                    return number
                continue
            if key is None:
                continue
            if current == table and key_re is not None and key_re.match(line):
                return number
            if current is None and dotted.match(line):
                return number
        return None

    def line_of_item(self, table: str, key: str, needle: str) -> int | None:
        """Find the line, at or after ``key``, that holds the array element ``needle``."""
        start = self.line_of(table, key)
        if start is None:
            return None
        for number in range(start, len(self.lines) + 1):
            if needle in self.lines[number - 1]:
                return number
        return start

    def error(
        self,
        table: str,
        key: str | None,
        problem: str,
        *,
        hint: str = "",
        line: int | None = None,
    ) -> ConfigError:
        where = f"[{table}]" if key is None else f"{table}.{key}"
        if line is None:
            line = self.line_of(table, key)
        at = f", line {line}" if line else ""
        if not hint:
            hint = f"fix {where} in {self.path.name}; the README's Configuration section lists "
            hint += "every key with an example"
        return ConfigError(f"{self.path}{at}: {where}: {problem}", hint=hint)


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


def _int(ctx: _Ctx, table: str, key: str, value: Any, bounds: tuple[int, int], unit: str) -> int:
    low, high = bounds
    expected = f"a whole number of {unit} from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(table, key, f"expected {expected}, got {_describe(value)}")
    if not low <= value <= high:
        raise ctx.error(table, key, f"expected {expected}, got {value}")
    return value


def _choice(ctx: _Ctx, table: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        got = _describe(value)
        raise ctx.error(
            table, key, f"expected one of {_names(repr(c) for c in choices)}, got {got}"
        )
    return value


def _str_list(ctx: _Ctx, table: str, key: str, value: Any, what: str) -> list[str]:
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


def _libvirt_uri(ctx: _Ctx, value: Any) -> str:
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


def map_guest_path(raw: str) -> str:
    """Map ``~`` / ``~/x`` on the guest side to :data:`GUEST_HOME` and normalise the path.

    Returns the path unchanged apart from that (it may still be relative; callers check).
    """
    if raw == "~":
        return GUEST_HOME
    if raw.startswith("~/"):
        return posixpath.normpath(posixpath.join(GUEST_HOME, raw[2:]))
    if raw.startswith("/"):
        return posixpath.normpath(raw)
    return raw


def parse_mount(spec: str, project_root: Path) -> Mount:
    """Parse one ``host:guest[:ro|rw|read-only|read-write]`` spec.

    The host side has ``~`` expanded and, when relative, is taken relative to the project
    directory; it must be an existing directory. The guest side maps ``~`` to the guest user's
    home and must then be an absolute path outside the guest's system directories.

    Raises:
        ValueError: the spec is malformed; the message says what was expected.
    """
    form = "expected 'host:guest' or 'host:guest:ro|rw'"
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{spec!r}: {form} (paths may not contain ':')")
    host_raw, guest_raw = parts[0].strip(), parts[1].strip()
    read_only = False
    if len(parts) == 3:
        word = parts[2].strip()
        if word not in _READ_ONLY_WORDS:
            raise ValueError(
                f"{spec!r}: unknown access {word!r}, expected ro, rw, read-only or read-write"
            )
        read_only = _READ_ONLY_WORDS[word]
    if not host_raw:
        raise ValueError(f"{spec!r}: the host path is empty; {form}")
    if not guest_raw:
        raise ValueError(f"{spec!r}: the guest path is empty; {form}")
    if any(not ch.isprintable() for ch in host_raw + guest_raw):
        raise ValueError(f"{spec!r}: a path holds a control character; expected plain paths")
    try:
        host = Path(host_raw).expanduser()
    except (RuntimeError, KeyError):  # no home directory, or an unknown ~user
        host = Path(host_raw)
    if host_raw.startswith("~") and not host.is_absolute():
        raise ValueError(f"{spec!r}: cannot expand {host_raw.split('/')[0]!r} on the host")
    if not host.is_absolute():
        host = project_root / host
    # Resolved (symlinks and ``..`` followed) so the rules below compare real directories;
    # the approved snapshot keeps this resolved path, so a symlink swapped later shows up as
    # a change that needs approval.
    try:
        host = Path(os.path.realpath(host))
        is_dir, exists = host.is_dir(), host.exists()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{spec!r}: cannot resolve the host path: {reason}") from None
    if not is_dir:
        problem = "is not a directory" if exists else "does not exist"
        raise ValueError(f"{spec!r}: the host path {host} {problem}; expected a directory")
    if guest_raw.startswith("~") and not (guest_raw == "~" or guest_raw.startswith("~/")):
        raise ValueError(
            f"{spec!r}: on the guest side only '~' (= {GUEST_HOME}) is understood, "
            f"not {guest_raw.split('/')[0]!r}"
        )
    guest = map_guest_path(guest_raw)
    if not guest.startswith("/"):
        raise ValueError(
            f"{spec!r}: the guest path {guest_raw!r} is relative; expected an absolute path "
            f"such as /data or ~/data (= {GUEST_HOME}/data)"
        )
    if guest in _RESERVED_GUEST_PATHS or any(
        guest.startswith(tree + "/") for tree in _RESERVED_GUEST_TREES
    ):
        raise ValueError(
            f"{spec!r}: cannot mount over the guest's {guest}; pick a path such as "
            f"{GUEST_HOME}/data, /data or /opt/data"
        )
    return Mount(host=host, guest=guest, read_only=read_only)


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def mount_refusal(host: Path, project: ProjectPaths) -> str | None:
    """Say why the (resolved) host directory ``host`` may not be shared; None when it may.

    A mount may not be the project (it is always mounted, with ``.vibebox/`` masked) or a
    directory above it (that would share the project again, unmasked), may not be, contain
    or sit under the project's ``.vibebox/`` (SSH keys, disk, seed), and may not be, contain
    or sit in what vibebox keeps under its home (``VIBEBOX_HOME``: the index, the approvals,
    the images, the supervisor sockets).
    Every path is compared resolved, so ``..`` and symlinks cannot hide any of these.
    """
    real = Path(os.path.realpath(host))
    root = Path(os.path.realpath(project.root))
    cache = root / PROJECT_CACHE_NAME
    home = Path(os.path.realpath(vibebox_home()))
    if real == root:
        return (
            f"the host path {real} is the project itself, which would expose its .vibebox/ "
            "(SSH keys, disk) to the guest"
        )
    if real in root.parents:
        return (
            f"the host path {real} contains the project, which would expose its .vibebox/ "
            "(SSH keys, disk) to the guest"
        )
    if _within(real, cache):
        return f"the host path {real} is inside the project's .vibebox/ (SSH keys, disk, seed)"
    if real == home or real in home.parents:
        return (
            f"the host path {real} is or contains vibebox's home {home} "
            "(session index, approvals, images)"
        )
    if any(_within(real, home / name) for name in _HOME_ENTRIES):
        return f"the host path {real} is inside vibebox's home {home} (its {real.name} files)"
    return None


# What vibebox keeps under its home; a mount may sit under the home (a test's temporary
# directory often holds both), never under one of these.
_HOME_ENTRIES = (
    paths.SESSIONS_INDEX,
    paths.SESSIONS_LOCK,
    paths.IMAGES_DIR,
    paths.RUN_DIR,
    paths.BIN_DIR,
    "approved",
)


def _mounts(ctx: _Ctx, project: ProjectPaths, value: Any) -> tuple[Mount, ...]:
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


def _ports(ctx: _Ctx, value: Any) -> tuple[PortForward, ...]:
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


def _entries(ctx: _Ctx, value: Any) -> tuple[str, ...]:
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


_Validator = Callable[[_Ctx, ProjectPaths, Any], Any]

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
}


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _validate(project: ProjectPaths, path: Path, text: str, doc: TOMLDocument) -> Config:
    ctx = _Ctx(path, text)
    values: dict[str, dict[str, Any]] = {name: {} for name in _SCHEMA}
    for table_name, table in doc.items():
        if table_name not in _SCHEMA:
            if isinstance(_plain(table), dict):
                raise ConfigError(
                    f"{path}{_at(ctx.line_of(table_name))}: unknown table [{table_name}]"
                    f"{_suggest(table_name, _SCHEMA)}",
                    hint=f"vibebox.toml has the tables {_names(f'[{t}]' for t in _SCHEMA)}",
                )
            raise ConfigError(
                f"{path}{_at(_top_level_line(ctx, table_name))}: unknown top-level key "
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
    return Config(path=path, box=box, network=network, supervisor=supervisor)


def _at(line: int | None) -> str:
    return f", line {line}" if line else ""


def _top_level_line(ctx: _Ctx, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[=.]")
    for number, line in enumerate(ctx.lines, start=1):
        if line.lstrip().startswith("["):
            return None
        if pattern.match(line):
            return number
    return None


# ---------------------------------------------------------------------------------------------
# Writing


def _write_defaults(project: ProjectPaths) -> None:
    if not project.root.is_dir():
        raise ConfigError(
            f"project directory {project.root} does not exist",
            hint="create it, or run vibebox in an existing directory",
        )
    # Another vibebox may write it first (FileExistsError); then we read theirs.
    with contextlib.suppress(FileExistsError):
        _atomic_write(project.config, DEFAULT_CONFIG_TEXT, exclusive=True)


def _atomic_write(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path`` through a temp file + rename, so readers never see half."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        mode = 0o666 & ~_umask()
        if path.exists():
            mode = path.stat().st_mode & 0o7777
        os.chmod(tmp, mode)
        if exclusive:
            # link() fails when the target exists, so two first runs never clobber each other.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: check, then rename
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable",
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
