"""The project's settings as types: the tables of ``vibebox.toml``, their limits and defaults.

Each table of the file is one frozen dataclass (:class:`BoxConfig`, :class:`NetworkConfig`,
:class:`SupervisorConfig`, :class:`ProvisionConfig`, one :class:`Secret` per ``[[secrets]]``),
gathered in :class:`Config`; a field's default is the value a missing key takes.
:data:`DEFAULT_CONFIG_TEXT` is the commented file a new project gets.
Reading and checking a file is :mod:`vibebox_core.config.load`; the project directory itself is
always mounted (read-write, at ``~/<project-name>`` in the guest), and ``[box] mounts`` only
lists the extra ones (:func:`vibebox_core.config.mounts.all_mounts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vibebox_core.config.hostnames import matches

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
#: ``[provision] run``: at most this many steps, each at most this many characters. The list
#: is guest-writable and each step is recorded and shown on the host: both stay bounded.
PROVISION_MAX_STEPS = 64
PROVISION_MAX_CHARS = 4096
#: ``[[secrets]]``: at most this many secrets, each for at most this many hosts.
SECRETS_MAX = 16
SECRET_HOSTS_MAX = 32

SecretSourceKind = Literal["env", "file", "command"]
SECRET_SOURCE_KINDS: tuple[SecretSourceKind, ...] = ("env", "file", "command")

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

[provision]
# Commands run once in a new session (its first start, and after :new), in order, with
# `bash -lc` as {GUEST_USER} in the project directory; `vibebox provision` runs them again.
run = []                        # e.g. ["sudo apt-get install -y jq", "pip install --user ruff"]

# Credentials the host keeps (one [[secrets]] table each; they need your approval): the guest
# sees only a placeholder in $name, and the host puts the real value into requests to `hosts`.
# [[secrets]]
# name = "GITHUB_TOKEN"         # the variable in the guest
# hosts = ["api.github.com"]    # a host and its subdomains
# source = "env:GITHUB_TOKEN"   # read on the host: env:VAR, file:PATH or command:ARGV (no shell)
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
class ProvisionConfig:
    """``[provision]``: commands run once in a new session's guest (never on the host).

    Nothing here needs approval: the commands run inside the guest, through its network
    policy, as the guest user could run them anyway.
    """

    run: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """``[[secrets]]``: a credential the host keeps; the guest holds a placeholder.

    The host reads the value from :attr:`source` when a request needs it
    (:mod:`vibebox_core.network.secrets`) and sends it only to :attr:`hosts`; the value itself is
    never part of a config, a snapshot or the index.

    Attributes:
        name: the guest environment variable that holds the placeholder, e.g. ``GITHUB_TOKEN``.
        hosts: normalised domain entries (:func:`~vibebox_core.config.hostnames.normalize_entry`);
            an entry covers the domain and its subdomains, like ``[network]`` entries.
        source: ``"env:VAR"``, ``"file:PATH"`` or ``"command:ARGV"`` (ARGV split like a shell
            would, but run without one).
    """

    name: str
    hosts: tuple[str, ...]
    source: str

    @property
    def source_kind(self) -> SecretSourceKind:
        """``"env"``, ``"file"`` or ``"command"``: where the host reads the value."""
        kind = self.source.split(":", 1)[0]
        return "env" if kind == "env" else "file" if kind == "file" else "command"

    def covers(self, host: str) -> bool:
        """True when ``host`` (any case, a trailing dot ignored) is one of :attr:`hosts` or
        a subdomain of one."""
        return matches(host, self.hosts)


@dataclass(frozen=True)
class Config:
    """A project's validated settings.

    Attributes:
        path: the ``vibebox.toml`` they came from (it may not exist when loaded with
            ``create=False``; then every value is the default).
        secrets: the ``[[secrets]]`` tables, in file order (names unique).
    """

    path: Path
    box: BoxConfig = field(default_factory=BoxConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    provision: ProvisionConfig = field(default_factory=ProvisionConfig)
    secrets: tuple[Secret, ...] = ()


def default_config_text() -> str:
    """Return the commented file :func:`vibebox_core.config.load.load_config` writes for a new
    project."""
    return DEFAULT_CONFIG_TEXT
