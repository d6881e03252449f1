"""The hypervisor boundary: a small protocol, and its libvirt implementation.

The rest of vibebox drives VMs only through :class:`Hypervisor`, so the dashboard and its tests can
run on :class:`vibebox_core.hypervisor.fake.FakeHypervisor`. :class:`LibvirtHypervisor` sends the
XML built by :mod:`vibebox_core.hypervisor.domain_xml` through libvirt-python and turns every
``libvirtError`` into a :class:`~vibebox_core.errors.VMError` whose message and hint a user can act
on.

Every method blocks; callers run them in threads (``asyncio.to_thread`` in core,
``@work(thread=True)`` in the TUI). Removal is tolerant: destroying, shutting down or undefining
something that is already gone is not an error.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from vibebox_core.errors import (
    HostNetworkError,
    LibvirtUnreachableError,
    NwfilterError,
    QemuError,
    StorageAccessError,
    VirtiofsdError,
    VMError,
)
from vibebox_core.hypervisor import access
from vibebox_core.hypervisor import domain_xml as vm
from vibebox_core.network import nwfilter

if TYPE_CHECKING:
    import libvirt

VMState = Literal["running", "shut off", "starting", "stopping", "missing", "broken"]

T = TypeVar("T")


@dataclass(frozen=True)
class VMStatus:
    """A session's VM as the hypervisor sees it.

    Attributes:
        state: one of :data:`VMState`. libvirt itself never reports ``starting`` except for a
            domain paused while starting up; "booting until SSH answers" is the runtime's to say.
        reason: why it is ``broken`` (or a note such as ``crashed`` for ``shut off``).
        name: the libvirt domain name, when there is a domain.
    """

    state: VMState
    reason: str = ""
    name: str | None = None


@runtime_checkable
class Hypervisor(Protocol):
    """What vibebox needs from a hypervisor. Domains are addressed by session id (= UUID)."""

    uri: str

    def kvm_available(self) -> bool:
        """True when the hypervisor can run KVM guests (see :func:`vm.resolve_accel`)."""
        ...

    def host_is_virtual(self) -> bool:
        """True when the hypervisor's host is itself a VM (its CPU has the hypervisor flag)."""
        ...

    def state(self, session_id: str) -> VMState:
        """The session VM's state (``missing`` when there is no domain)."""
        ...

    def status(self, session_id: str) -> VMStatus:
        """The state with its reason; per-VM problems are ``broken``, never raised."""
        ...

    def statuses(self) -> dict[str, VMStatus]:
        """The status of every vibebox domain, by session id (one call for a listing)."""
        ...

    def exists(self, session_id: str) -> bool:
        """True when a domain is defined for the session."""
        ...

    def used_subnets(self, *, exclude_session: str | None = None) -> set[ipaddress.IPv4Network]:
        """Subnets of every network, except the given session's own (for vm.pick_subnet)."""
        ...

    def network_subnet(self, session_id: str) -> ipaddress.IPv4Network | None:
        """The subnet of the session's network if it is defined (to keep it on redefine)."""
        ...

    def define_network(self, network_xml: str) -> None:
        """Define (or update the persistent definition of) a network."""
        ...

    def start_network(self, session_id: str, *, restart: bool = False) -> None:
        """Make the session's network active; ``restart`` re-creates an active one."""
        ...

    def define_domain(self, domain_xml: str) -> None:
        """Define (or update) a domain; a renamed project's inactive domain is renamed."""
        ...

    def define(self, domain_xml: str, network_xml: str) -> None:
        """Define the session's network, then its domain."""
        ...

    def start(self, session_id: str) -> None:
        """Start the network if needed, then the domain (no-op if it runs)."""
        ...

    def shutdown(self, session_id: str) -> None:
        """Ask the guest to power off (ACPI power button); no-op if it is not running."""
        ...

    def destroy(self, session_id: str) -> None:
        """Power the VM off at once; no-op if it is not running."""
        ...

    def stop(self, session_id: str, *, timeout: float = 30.0) -> bool:
        """ACPI shutdown, forced after ``timeout`` s; True if the guest stopped by itself."""
        ...

    def undefine(self, session_id: str) -> None:
        """Destroy and remove the domain, the session's network and the domain's ``vibebox-*``
        nwfilter (unless another domain uses it); missing ones are fine."""
        ...

    def undefine_network(self, session_id: str) -> None:
        """Destroy and remove the session's network only; missing is fine."""
        ...

    def lease_ipv4(self, session_id: str) -> str | None:
        """The guest's IPv4 from the network's DHCP leases for the domain's MAC, or None.

        A lease may be left from the previous boot (DESIGN §6): it does not prove the guest is up.
        """
        ...

    def console_tail(self, session_id: str, max_lines: int = 40) -> str:
        """The last lines of the serial console log (printable text only), or ``""``."""
        ...

    def define_nwfilter(self, nwfilter_xml: str) -> None:
        """Define (or update) a libvirt nwfilter (network policy)."""
        ...

    def undefine_nwfilter(self, name: str) -> None:
        """Remove an nwfilter; missing is fine."""
        ...

    def close(self) -> None:
        """Drop the connection (reopened on the next call)."""
        ...


# --------------------------------------------------------------------------- error translation

# libvirt error codes and domains (stable ABI numbers, ``libvirt.VIR_ERR_*`` and
# ``libvirt.VIR_FROM_*``; kept here so this module imports without libvirt).
ERR_INTERNAL_ERROR = 1
ERR_NO_SUPPORT = 3
ERR_NO_CONNECT = 5
ERR_INVALID_ARG = 8
ERR_OPERATION_FAILED = 9
ERR_XML_ERROR = 27
ERR_SYSTEM_ERROR = 38
ERR_RPC = 39
ERR_NO_DOMAIN = 42
ERR_NO_NETWORK = 43
ERR_AUTH_FAILED = 45
ERR_OPERATION_INVALID = 55
ERR_NO_NWFILTER = 62
ERR_BUILD_FIREWALL = 63
ERR_CONFIG_UNSUPPORTED = 67
ERR_OPERATION_TIMEOUT = 68
ERR_ACCESS_DENIED = 88
ERR_AUTH_UNAVAILABLE = 94

FROM_NONE = 0
FROM_RPC = 7
FROM_CONF = 9
FROM_QEMU = 10
FROM_REMOTE = 13
FROM_STORAGE = 18
FROM_NETWORK = 19
FROM_DOMAIN = 20
FROM_SECURITY = 24
FROM_NWFILTER = 33
FROM_FIREWALL = 59
FROM_POLKIT = 60

#: What failed, as the error names it. One entry of :data:`ERROR_TABLE` per component (and
#: optionally per error code within it).
Component = Literal[
    "connection",
    "virtiofsd",
    "dnsmasq",
    "firewall",
    "subnet",
    "kvm",
    "memory",
    "qemu",
    "storage",
    "nwfilter",
    "network",
    "domain",
    "definition",
    "busy",
    "libvirt",
]

#: A program or resource that names itself in the message is the component that failed, whatever
#: libvirt module reported it (virtiofsd's refusal arrives as a QEMU error about its socket,
#: ``chr-vu-fs0`` / ``fs0-fs.sock``; dnsmasq's as a network error).
_NAMED: tuple[tuple[str, Component], ...] = (
    ("virtiofs", "virtiofsd"),
    ("chr-vu-fs", "virtiofsd"),
    ("-fs.sock", "virtiofsd"),
    ("dnsmasq", "dnsmasq"),
    ("iptables", "firewall"),
    ("ip6tables", "firewall"),
    ("ebtables", "firewall"),
    ("nftables", "firewall"),
    ("domaintype=kvm", "kvm"),
    ("/dev/kvm", "kvm"),
    ("kvm is not available", "kvm"),
    ("kvm_create_vm", "kvm"),
)

#: Error codes that say by themselves what failed.
_BY_CODE: dict[int, Component] = {
    ERR_NO_CONNECT: "connection",
    ERR_AUTH_FAILED: "connection",
    ERR_AUTH_UNAVAILABLE: "connection",
    ERR_ACCESS_DENIED: "connection",
    ERR_RPC: "connection",
    ERR_NO_NWFILTER: "nwfilter",
    ERR_BUILD_FIREWALL: "firewall",
    ERR_NO_NETWORK: "network",
    ERR_NO_DOMAIN: "domain",
    ERR_OPERATION_TIMEOUT: "busy",
    ERR_XML_ERROR: "definition",
    ERR_CONFIG_UNSUPPORTED: "definition",
}

#: The libvirt module that reported the error, when the code is a generic one.
_BY_DOMAIN: dict[int, Component] = {
    FROM_RPC: "connection",
    FROM_REMOTE: "connection",
    FROM_POLKIT: "connection",
    FROM_NWFILTER: "nwfilter",
    FROM_FIREWALL: "firewall",
    FROM_STORAGE: "storage",
    FROM_SECURITY: "storage",
    FROM_NETWORK: "network",
    FROM_QEMU: "qemu",
    FROM_DOMAIN: "definition",
    FROM_CONF: "definition",
}

#: Only for errors that carry neither a telling code nor a module (``VIR_FROM_NONE``, e.g. the
#: network driver's "already in use"): libvirt's fixed wording of that condition.
_UNATTRIBUTED: tuple[tuple[str, Component], ...] = (
    ("failed to connect socket", "connection"),
    ("unable to connect to server", "connection"),
    ("cannot connect", "connection"),
    ("already in use by interface", "subnet"),
    ("network is already in use", "subnet"),
    ("already exists with uuid", "definition"),
    ("is already defined with uuid", "definition"),
    ("state change lock", "busy"),
    ("cannot allocate memory", "memory"),
    ("out of memory", "memory"),
    ("cannot access storage file", "storage"),
    ("unable to stat", "storage"),
    ("could not open", "storage"),
)

#: errno values libvirt's system errors carry (``virError.int1``), and their strerror text for
#: callers that only have the message.
_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ECONNREFUSED, errno.ENOMEM, errno.ENOSPC)

# libvirt quotes paths with ASCII or typographic quotes, depending on the message.
_QUOTED_PATH = re.compile("['\u2018\"](/[^'\u2019\"]+)['\u2019\"]")
_BARE_PATH = re.compile(r"(?<![\w.])(/[^\s:'\"\u2018\u2019,;]+)")


@dataclass(frozen=True)
class LibvirtFailure:
    """One libvirt error, taken apart for the table.

    Attributes:
        code: ``virError.code`` (``libvirt.VIR_ERR_*``).
        domain: ``virError.domain``: the libvirt module that reported it (``VIR_FROM_*``).
        message: libvirt's message.
        errno: the system errno of a ``VIR_ERR_SYSTEM_ERROR`` (``virError.int1``), else None.
        action: what vibebox was doing ("start VM vibebox-p-0192abcd").
        uri: the libvirt connection URI.
        component: what failed (:func:`failed_component`).
    """

    code: int
    domain: int
    message: str
    errno: int | None
    action: str
    uri: str
    component: Component

    @property
    def path(self) -> Path | None:
        """The first path the message names, if any."""
        match = _QUOTED_PATH.search(self.message) or _BARE_PATH.search(self.message)
        return Path(match.group(1)) if match else None

    @property
    def base(self) -> str:
        return f"could not {self.action}: {self.message}"


def _errno_from(message: str) -> int | None:
    low = message.lower()
    for number in _ERRNOS:
        if os.strerror(number).lower() in low:
            return number
    return None


def failed_component(code: int, domain: int, message: str) -> Component:
    """Which component failed: the program the message names, else the error code, else the
    libvirt module that reported it, else (unattributed errors only) libvirt's fixed wording."""
    low = message.lower()
    for marker, component in _NAMED:
        if marker in low:
            return component
    if code in _BY_CODE:
        return _BY_CODE[code]
    if domain in _BY_DOMAIN:
        return _BY_DOMAIN[domain]
    for marker, component in _UNATTRIBUTED:
        if marker in low:
            return component
    return "libvirt"


def _permission_hint(path: Path | None) -> str:
    if path is None:
        return (
            "QEMU runs as libvirt-qemu and must be able to enter every directory above the "
            "disk, kernel and initrd; grant it with `setfacl -m u:libvirt-qemu:x DIR`"
        )
    blocked = access.qemu_blocked_dirs([path])
    if blocked:
        return (
            f"QEMU runs as libvirt-qemu and cannot enter {', '.join(map(str, blocked))}; "
            f"allow it with `{access.setfacl_command(blocked)}` (what virt-manager offers), "
            "or keep the project and VIBEBOX_HOME where that user can reach them"
        )
    return (
        f"QEMU runs as libvirt-qemu and cannot open {path}; check the file's permissions and "
        "that every directory above it allows libvirt-qemu in (`setfacl -m u:libvirt-qemu:x DIR`)"
    )


Rule = Callable[[LibvirtFailure], VMError]


def _connection(f: LibvirtFailure) -> VMError:
    where = f"cannot reach libvirt at {f.uri}: {f.message}"
    if f.code == ERR_NO_CONNECT:
        return LibvirtUnreachableError(
            where,
            hint=f"libvirt has no driver for {f.uri}: install libvirt-daemon-driver-qemu, or fix "
            'libvirt_uri under [box] in vibebox.toml ("qemu:///system" or "qemu:///session")',
        )
    if f.errno in (errno.EACCES, errno.EPERM) or f.code in (
        ERR_AUTH_FAILED,
        ERR_ACCESS_DENIED,
        ERR_AUTH_UNAVAILABLE,
    ):
        return LibvirtUnreachableError(
            where,
            hint=f"your user may not use {f.uri}: add it to the libvirt group "
            "(`sudo adduser $USER libvirt`, then log in again) or set libvirt_uri in "
            "vibebox.toml",
        )
    if f.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return LibvirtUnreachableError(
            f"cannot reach libvirt at {f.uri}: libvirtd is not running ({f.message})",
            hint="start it (`sudo systemctl start libvirtd`, or `libvirtd -d`), then try "
            "again; `vibebox doctor` checks the rest of the host",
        )
    return LibvirtUnreachableError(
        f"cannot reach libvirt at {f.uri} (to {f.action}): {f.message}",
        hint="is libvirtd running, or was it restarted? try again; `vibebox doctor` checks "
        "the host",
    )


def _virtiofsd(f: LibvirtFailure) -> VMError:
    path = f.path
    low = f.message.lower()
    if "does not exist" in low and path is not None:
        return VirtiofsdError(
            f"could not {f.action}: the shared directory {path} does not exist",
            hint="create it, or remove it from mounts under [box] in vibebox.toml",
        )
    if "satisfying virtiofsd" in low or "binary" in low:
        return VirtiofsdError(
            f.base,
            hint=f"virtiofs shares need {vm.VIRTIOFSD} (Debian package qemu-system-x86); "
            "`vibebox doctor` checks it",
        )
    return VirtiofsdError(
        f"could not {f.action}: virtiofsd refused to serve one of the VM's shares "
        f"(QEMU said: {f.message})",
        hint="every mounted host directory must exist and be a real directory, not a symlink "
        "(use its `realpath` in mounts under [box] in vibebox.toml); virtiofsd's own log is "
        "/var/log/libvirt/qemu/NAME-fsN-virtiofsd.log",
    )


def _dnsmasq(f: LibvirtFailure) -> VMError:
    return HostNetworkError(
        f.base, hint="libvirt networks need dnsmasq: install dnsmasq-base, then try again"
    )


def _firewall(f: LibvirtFailure) -> VMError:
    return HostNetworkError(
        f.base,
        hint="libvirt could not set up the network's firewall rules: install iptables and "
        "check that the kernel has netfilter (NAT) support",
    )


def _subnet(f: LibvirtFailure) -> VMError:
    return HostNetworkError(
        f.base,
        hint="the session network's subnet collides with another interface on the host; "
        f"delete the session network (`vibebox delete` or `virsh -c {f.uri} net-undefine NAME`) "
        "so a free subnet is picked next time",
    )


def _kvm(f: LibvirtFailure) -> VMError:
    return QemuError(
        f.base,
        hint=vm.boot_stalled_hint("kvm")
        if "hang" in f.message.lower()
        else 'KVM is not usable here: set accel = "tcg" under [box] in vibebox.toml '
        "(or export VIBEBOX_ACCEL=tcg)",
    )


def _memory(f: LibvirtFailure) -> VMError:
    return QemuError(
        f.base, hint="the host is short of memory: lower memory_mb under [box] in vibebox.toml"
    )


def _qemu(f: LibvirtFailure) -> VMError:
    if f.errno == errno.ENOMEM:
        return _memory(f)
    return QemuError(
        f"could not {f.action}: QEMU refused it: {f.message}",
        hint="QEMU's own log of the domain is /var/log/libvirt/qemu/NAME.log; a damaged "
        "instance disk is replaced by recreating the session (`:new`, or `vibebox delete`)",
    )


def _storage(f: LibvirtFailure) -> VMError:
    path = f.path
    number = f.errno if f.errno is not None else _errno_from(f.message)
    if number in (errno.EACCES, errno.EPERM):
        return StorageAccessError(f.base, hint=_permission_hint(path))
    if number == errno.ENOENT:
        what = str(path) if path else "a file of the VM"
        return StorageAccessError(
            f"could not {f.action}: {what} is missing ({f.message})",
            hint="a missing kernel, initrd or base disk comes back with `vibebox image build "
            "--if-missing`; a missing instance disk with `vibebox stop` then `vibebox`",
        )
    if number == errno.ENOSPC:
        return StorageAccessError(f.base, hint="the host disk is full: free some space")
    return StorageAccessError(f.base, hint=_permission_hint(path))


def _nwfilter(f: LibvirtFailure) -> VMError:
    name = re.findall(r"'([^']+)'", f.message)
    filter_name = name[0] if name else "NAME"
    if f.code == ERR_OPERATION_FAILED and "uuid" in f.message.lower():
        return NwfilterError(
            f.base,
            hint=f"a stale filter {filter_name!r} is in the way: remove it with "
            f"`virsh -c {f.uri} nwfilter-undefine {filter_name}`, then start again",
        )
    if f.code == ERR_NO_SUPPORT:
        return NwfilterError(
            f.base,
            hint="this libvirt has no nwfilter driver, which allowlist mode needs: install "
            'libvirt-daemon-driver-nwfilter (or use mode = "blocklist")',
        )
    return NwfilterError(
        f.base,
        hint=f"the network filter {filter_name!r} of this session is missing: `vibebox stop` "
        "then `vibebox` defines it again",
    )


def _network(f: LibvirtFailure) -> VMError:
    return HostNetworkError(
        f.base,
        hint="the session's libvirt network is missing or broken: `vibebox stop` then "
        "`vibebox` defines it again, or recreate the session (`:new`)",
    )


def _domain(f: LibvirtFailure) -> VMError:
    return VMError(
        f"could not {f.action}: the VM is gone ({f.message})",
        hint="it was removed outside vibebox (`virsh undefine`?); `vibebox` in the project "
        "defines it again",
    )


def _definition(f: LibvirtFailure) -> VMError:
    if "uuid" in f.message.lower() and "already" in f.message.lower():
        names = re.findall(r"'([^']+)'", f.message)
        name = names[0] if names else "?"
        return VMError(
            f.base,
            hint=f"another libvirt domain uses the name {name!r}; if it is stale remove it with "
            f"`virsh -c {f.uri} undefine {name}` (or `vibebox delete` its session), or rename "
            "this project directory",
        )
    return VMError(
        f.base,
        hint="vibebox built a definition this libvirt refuses; please report it with "
        "`virsh version` output",
    )


def _busy(f: LibvirtFailure) -> VMError:
    return VMError(
        f.base,
        hint=f"libvirt is busy with this VM; try again, or force it off with "
        f"`virsh -c {f.uri} destroy NAME`",
    )


def _libvirt(f: LibvirtFailure) -> VMError:
    if f.code in (ERR_INVALID_ARG,):
        return _definition(f)
    return VMError(
        f.base,
        hint=f"check libvirt's log and `virsh -c {f.uri} list --all`; `vibebox doctor` "
        "checks the host",
    )


#: The table: (component, error code) first, then (component, None) for the component's other codes.
#: Every rule returns a VMError subclass that names the component and the next step; unit-tested
#: with the messages libvirt really gave (tests/core/hypervisor/test_libvirt_errors.py).
ERROR_TABLE: dict[tuple[Component, int | None], Rule] = {
    ("connection", None): _connection,
    ("virtiofsd", None): _virtiofsd,
    ("dnsmasq", None): _dnsmasq,
    ("firewall", None): _firewall,
    ("subnet", None): _subnet,
    ("kvm", None): _kvm,
    ("memory", None): _memory,
    ("qemu", None): _qemu,
    ("storage", None): _storage,
    ("nwfilter", None): _nwfilter,
    ("network", ERR_INTERNAL_ERROR): _subnet,
    ("network", None): _network,
    ("domain", None): _domain,
    ("definition", None): _definition,
    ("busy", None): _busy,
    ("libvirt", None): _libvirt,
}


def translate_error(
    code: int,
    message: str,
    *,
    action: str,
    uri: str,
    domain: int = FROM_NONE,
    errno_value: int | None = None,
) -> VMError:
    """Turn one libvirt error into a :class:`VMError` subclass with a hint a user can act on.

    Looked up in :data:`ERROR_TABLE` by the component that failed (:func:`failed_component`)
    and the error code.

    Args:
        code: ``libvirtError.get_error_code()``.
        message: ``libvirtError.get_error_message()``.
        action: what vibebox was doing, as a verb phrase ("start the VM of session 0192…").
        uri: the libvirt connection URI.
        domain: ``libvirtError.get_error_domain()`` (``VIR_FROM_*``).
        errno_value: the errno of a system error (``libvirtError.err[7]``), when known.
    """
    text = message.strip() or "unknown libvirt error"
    if errno_value is None or errno_value <= 0:
        errno_value = _errno_from(text) if code == ERR_SYSTEM_ERROR or not domain else None
    failure = LibvirtFailure(
        code=code,
        domain=domain,
        message=text,
        errno=errno_value,
        action=action,
        uri=uri,
        component=failed_component(code, domain, text),
    )
    rule = ERROR_TABLE.get((failure.component, code)) or ERROR_TABLE[(failure.component, None)]
    return rule(failure)


def translate_libvirt_error(exc: Any, *, action: str, uri: str) -> VMError:
    """:func:`translate_error` for a ``libvirt.libvirtError``, reading all its fields."""
    code = int(exc.get_error_code() or 0)
    fields: tuple[Any, ...] = tuple(getattr(exc, "err", None) or ())
    number = fields[7] if len(fields) > 7 and isinstance(fields[7], int) else None
    return translate_error(
        code,
        exc.get_error_message() or str(exc),
        action=action,
        uri=uri,
        domain=int(exc.get_error_domain() or 0),
        errno_value=number if code == ERR_SYSTEM_ERROR else None,
    )


#: Where libvirtd (as root, qemu:///system) writes each virtiofsd's output.
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")


def virtiofsd_log_reason(domain_name: str, log_dir: Path = QEMU_LOG_DIR) -> str:
    """The last line virtiofsd wrote for the newest share of ``domain_name``, or ``""``.

    libvirt logs each share's virtiofsd to ``NAME-fsN-virtiofsd.log``; when one refuses its
    share (bookworm's C virtiofsd: "source is not a directory" for a symlink) QEMU only
    reports that the socket refused, so this line is the real cause.
    """
    try:
        logs = sorted(
            log_dir.glob(f"{glob.escape(domain_name)}-fs*-virtiofsd.log"),
            key=lambda p: p.stat().st_mtime,
        )
    except OSError:
        return ""
    for log in reversed(logs):
        tail = read_console_tail(log, max_lines=1)
        if tail:
            return tail[:300]
    return ""


# --------------------------------------------------------------------------- console log

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def read_console_tail(path: Path, max_lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """Return the last ``max_lines`` printable lines of a console log, or ``""``."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = _ANSI.sub("", data.decode("utf-8", "replace").replace("\r\n", "\n"))
    lines = [
        "".join(ch for ch in line if ch.isprintable() or ch == "\t").rstrip()
        for line in text.replace("\r", "\n").split("\n")
    ]
    lines = [line for line in lines if line]
    return "\n".join(lines[-max_lines:])


# --------------------------------------------------------------------------- libvirt

# virDomainState values.
_NOSTATE, _RUNNING, _BLOCKED, _PAUSED, _SHUTDOWN, _SHUTOFF, _CRASHED, _PMSUSPENDED = range(8)
_PAUSED_REASONS = {
    1: "paused by a user (`virsh resume` continues it)",
    2: "paused for migration",
    3: "paused while saving",
    4: "paused for a core dump",
    5: "paused after a disk I/O error (is the host disk full?)",
    6: "paused by the watchdog",
    7: "paused after a snapshot restore",
    9: "paused for a snapshot",
    10: "paused after a guest crash",
    12: "paused in post-copy migration",
    13: "paused: post-copy migration failed",
    14: "paused after an API error",
}
_PAUSED_STARTING_UP = 11
_PAUSED_SHUTTING_DOWN = 8
_SHUTOFF_REASONS = {3: "crashed", 6: "failed to start", 8: "libvirtd stopped it"}
_IPV4 = 0
_UNDEFINE_FLAGS = 1 | 2  # also drop a managed save image and snapshot metadata
_ACPI_POWER_BTN = 1
_XML_INACTIVE = 2

_silenced = False
_silence_lock = threading.Lock()


def _silence_libvirt() -> None:
    """Stop libvirt from printing every error on stderr; vibebox reports them itself."""
    global _silenced
    with _silence_lock:
        if _silenced:
            return
        import libvirt

        def _ignore(_ctx: object, _err: object) -> None:
            return None

        libvirt.registerErrorHandler(_ignore, None)
        _silenced = True


def _status_from(state: int, reason: int, name: str) -> VMStatus:
    if state in (_RUNNING, _BLOCKED):
        return VMStatus("running", name=name)
    if state == _SHUTOFF:
        return VMStatus("shut off", _SHUTOFF_REASONS.get(reason, ""), name=name)
    if state == _SHUTDOWN:
        return VMStatus("stopping", name=name)
    if state == _PAUSED:
        if reason == _PAUSED_STARTING_UP:
            return VMStatus("starting", name=name)
        if reason == _PAUSED_SHUTTING_DOWN:
            return VMStatus("stopping", name=name)
        return VMStatus("broken", _PAUSED_REASONS.get(reason, "paused"), name=name)
    if state == _CRASHED:
        return VMStatus("broken", "the guest crashed (`vibebox stop` then start again)", name)
    if state == _PMSUSPENDED:
        return VMStatus("broken", "suspended by the guest's power management", name=name)
    return VMStatus("starting", name=name)


class LibvirtHypervisor:
    """:class:`Hypervisor` on libvirt-python. Thread-safe; the connection opens lazily.

    Args:
        uri: libvirt connection URI, e.g. ``qemu:///system`` or ``qemu+ssh://host/system``.
        poll_interval: seconds between state checks in :meth:`stop`.
        repress_interval: seconds between ACPI power-button presses in :meth:`stop`.
    """

    def __init__(
        self,
        uri: str = "qemu:///system",
        *,
        poll_interval: float = 0.2,
        repress_interval: float = 5.0,
    ) -> None:
        self.uri = uri
        self.poll_interval = poll_interval
        self.repress_interval = repress_interval
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        import libvirt

        try:
            yield
        except libvirt.libvirtError as exc:
            raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc

    def _connection(self) -> libvirt.virConnect:
        import libvirt

        _silence_libvirt()
        with self._lock:
            conn = self._conn
            if conn is not None:
                # A cheap round trip: without an event loop libvirt notices a restarted daemon
                # only when a call fails, so check here and reconnect instead of failing.
                try:
                    conn.getLibVersion()
                    return conn
                except libvirt.libvirtError:
                    with contextlib.suppress(libvirt.libvirtError):
                        conn.close()
                self._conn = None
            with self._errors(f"connect to {self.uri}"):
                conn = libvirt.open(self.uri)
            if conn is None:  # pragma: no cover - old bindings returned None
                raise VMError(f"cannot reach libvirt at {self.uri}")
            self._conn = conn
            return conn

    def close(self) -> None:
        """Drop the connection (reopened on the next call)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection must not raise
                conn.close()

    @staticmethod
    def _code(exc: Any) -> int:
        return int(exc.get_error_code() or 0)

    def _lookup(self, session_id: str) -> libvirt.virDomain | None:
        """The session's domain, or None when there is none."""
        import libvirt

        conn = self._connection()
        sid = vm.canonical_session_id(session_id)
        try:
            return conn.lookupByUUIDString(sid)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_DOMAIN:
                return None
            raise translate_libvirt_error(
                exc, action=f"look up the VM of session {sid}", uri=self.uri
            ) from exc

    def _network(self, session_id: str) -> libvirt.virNetwork | None:
        return self._network_by_name(vm.network_name(session_id))

    def _network_by_name(self, name: str) -> libvirt.virNetwork | None:
        import libvirt

        conn = self._connection()
        try:
            return conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_NETWORK:
                return None
            raise translate_libvirt_error(
                exc, action=f"look up network {name}", uri=self.uri
            ) from exc

    def _tolerant(self, action: str, call: Callable[[], T], *ignore: int) -> T | None:
        """Run ``call``; return None for the ``ignore`` error codes, translate the others."""
        import libvirt

        try:
            return call()
        except libvirt.libvirtError as exc:
            if self._code(exc) in ignore:
                return None
            raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc

    # ---------------------------------------------------------------- queries

    def kvm_available(self) -> bool:
        """True when libvirt reports KVM domain capabilities for x86_64."""
        import libvirt

        conn = self._connection()
        try:
            conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        except libvirt.libvirtError:
            return False
        return True

    def host_is_virtual(self) -> bool:
        """True when libvirt's host CPU reports the ``hypervisor`` feature (a nested host)."""
        import xml.etree.ElementTree as ET

        conn = self._connection()
        with self._errors("read the host capabilities"):
            caps = conn.getCapabilities()
        try:
            root = ET.fromstring(caps)
        except ET.ParseError:
            return False
        return any(f.get("name") == "hypervisor" for f in root.iterfind("host/cpu/feature"))

    def state(self, session_id: str) -> VMState:
        """The session VM's state (``missing`` when there is no domain)."""
        return self.status(session_id).state

    def status(self, session_id: str) -> VMStatus:
        """The state with its reason; a domain whose network is gone is ``broken``."""
        dom = self._lookup(session_id)
        if dom is None:
            return VMStatus("missing")
        return self._domain_status(dom, session_id, None)

    def _domain_status(
        self, dom: libvirt.virDomain, session_id: str, networks: set[str] | None
    ) -> VMStatus:
        import libvirt

        try:
            name = dom.name()
            state, reason = dom.state()
            status = _status_from(state, reason, name)
            if status.state == "shut off":
                _, net_name = vm.parse_domain_interface(dom.XMLDesc(_XML_INACTIVE))
                if net_name is not None:
                    present = (
                        net_name in networks
                        if networks is not None
                        else self._network_by_name(net_name) is not None
                    )
                    if not present:
                        return VMStatus(
                            "broken",
                            f"its network {net_name} is missing (recreate the session: `:new`, "
                            "or `vibebox delete` and start again)",
                            name,
                        )
            return status
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_DOMAIN:
                return VMStatus("missing")
            return VMStatus("broken", exc.get_error_message() or str(exc))

    def statuses(self) -> dict[str, VMStatus]:
        """The status of every domain named ``vibebox-*``, by session id."""
        conn = self._connection()
        with self._errors("list VMs"):
            domains = conn.listAllDomains(0)
            networks = {net.name() for net in conn.listAllNetworks(0)}
        result: dict[str, VMStatus] = {}
        for dom in domains:
            try:
                name = dom.name()
                sid = dom.UUIDString()
            except Exception:  # a domain vanishing mid-listing is not an error
                continue
            if name.startswith("vibebox-"):
                result[sid] = self._domain_status(dom, sid, networks)
        return result

    def exists(self, session_id: str) -> bool:
        """True when a domain is defined for the session."""
        return self._lookup(session_id) is not None

    def used_subnets(self, *, exclude_session: str | None = None) -> set[ipaddress.IPv4Network]:
        """IPv4 subnets of every libvirt network (active or not), minus one session's own."""
        conn = self._connection()
        skip = vm.network_name(exclude_session) if exclude_session else None
        used: set[ipaddress.IPv4Network] = set()
        with self._errors("list networks"):
            networks = conn.listAllNetworks(0)
        for net in networks:
            try:
                if net.name() == skip:
                    continue
                used.update(vm.parse_network_subnets(net.XMLDesc(0)))
            except Exception:  # a network vanishing mid-listing is not an error
                continue
        return used

    def network_subnet(self, session_id: str) -> ipaddress.IPv4Network | None:
        """The subnet of the session's network if it is defined."""
        net = self._network(session_id)
        if net is None:
            return None
        with self._errors(f"read network {vm.network_name(session_id)}"):
            subnets = vm.parse_network_subnets(net.XMLDesc(0))
        return subnets[0] if subnets else None

    def _mac(self, session_id: str) -> str:
        dom = self._lookup(session_id)
        if dom is not None:
            with self._errors(f"read the VM of session {session_id}"):
                mac, _ = vm.parse_domain_interface(dom.XMLDesc(_XML_INACTIVE))
            if mac:
                return mac.lower()
        return vm.mac_address(session_id)

    def lease_ipv4(self, session_id: str) -> str | None:
        """The newest IPv4 DHCP lease of the session network for the domain's MAC."""
        net = self._network(session_id)
        if net is None:
            return None
        mac = self._mac(session_id)
        leases = self._tolerant(
            f"read the DHCP leases of {vm.network_name(session_id)}",
            lambda: net.DHCPLeases(mac, 0),
            ERR_NO_NETWORK,
            ERR_OPERATION_INVALID,  # network not active
        )
        v4 = [lease for lease in leases or [] if lease.get("type") == _IPV4]
        if not v4:
            return None
        newest = max(v4, key=lambda lease: int(lease.get("expirytime") or 0))
        address = newest.get("ipaddr")
        return str(address) if address else None

    def console_tail(self, session_id: str, max_lines: int = 40) -> str:
        """The end of the console log named in the domain's serial ``<log>``."""
        dom = self._lookup(session_id)
        if dom is None:
            return ""
        with self._errors(f"read the VM of session {session_id}"):
            path = vm.parse_console_log(dom.XMLDesc(_XML_INACTIVE))
        return read_console_tail(path, max_lines) if path is not None else ""

    # ---------------------------------------------------------------- definitions

    def define_network(self, network_xml: str) -> None:
        """Define a network, or update the persistent definition of an existing one."""
        conn = self._connection()
        with self._errors("define the session network"):
            conn.networkDefineXML(network_xml)

    def start_network(self, session_id: str, *, restart: bool = False) -> None:
        """Make the session's network active (re-create it first when ``restart``)."""
        name = vm.network_name(session_id)
        net = self._network(session_id)
        if net is None:
            raise VMError(
                f"the network {name} of session {session_id} is not defined",
                hint="recreate the session (`:new`), or delete it with `vibebox delete`",
            )
        with self._errors(f"start network {name}"):
            active = bool(net.isActive())
        if active and restart:
            self._tolerant(f"stop network {name}", net.destroy, ERR_OPERATION_INVALID)
            active = False
        if not active:
            # OPERATION_INVALID: another thread or process started it meanwhile.
            self._tolerant(f"start network {name}", net.create, ERR_OPERATION_INVALID)

    def define_domain(self, domain_xml: str) -> None:
        """Define a domain (or update it). Handles a project renamed since the last define:
        an inactive domain is renamed, a running one keeps its old name until it stops."""
        import xml.etree.ElementTree as ET

        root = ET.fromstring(domain_xml)
        uuid_el, name_el = root.find("uuid"), root.find("name")
        if uuid_el is None or name_el is None or not uuid_el.text or not name_el.text:
            raise VMError("domain XML without <uuid> or <name> (a vibebox bug)")
        sid, wanted = uuid_el.text, name_el.text
        dom = self._lookup(sid)
        conn = self._connection()
        with self._errors(f"define VM {wanted}"):
            if dom is not None and dom.name() != wanted:
                if dom.isActive():
                    name_el.text = dom.name()
                    domain_xml = ET.tostring(root, encoding="unicode")
                else:
                    dom.rename(wanted, 0)
            conn.defineXML(domain_xml)

    def define(self, domain_xml: str, network_xml: str) -> None:
        """Define the session's network, then its domain."""
        self.define_network(network_xml)
        self.define_domain(domain_xml)

    def define_nwfilter(self, nwfilter_xml: str) -> None:
        """Define (or update) an nwfilter, keeping the UUID libvirt already has for its name.

        libvirt refuses a redefinition that carries another UUID ("already exists with
        uuid", DESIGN §6), so an existing filter's UUID wins. On this host, a filter is only
        defined when bridged traffic reaches iptables (its connection-state layer).

        Raises:
            NwfilterError: ``br_netfilter`` is off here, or libvirt refused the filter.
        """
        import libvirt

        if self.uri.startswith("qemu:///"):
            problem = nwfilter.bridge_netfilter_problem()
            if problem is not None:
                raise NwfilterError(
                    f"cannot fence the session's network: {problem}, so the VM's connection "
                    "filter would not apply",
                    hint="run `sudo modprobe br_netfilter && sudo sysctl -w "
                    "net.bridge.bridge-nf-call-iptables=1`, then start again",
                )
        conn = self._connection()
        name = nwfilter.filter_name(nwfilter_xml)
        try:
            existing = conn.nwfilterLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) != ERR_NO_NWFILTER:
                raise translate_libvirt_error(
                    exc, action=f"find filter {name}", uri=self.uri
                ) from exc
        else:
            with self._errors(f"read filter {name}"):
                nwfilter_xml = nwfilter.with_uuid(nwfilter_xml, existing.UUIDString())
        with self._errors("define the network filter"):
            conn.nwfilterDefineXML(nwfilter_xml)

    def undefine_nwfilter(self, name: str) -> None:
        """Remove an nwfilter; missing is fine."""
        import libvirt

        conn = self._connection()
        try:
            nwfilter = conn.nwfilterLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_NWFILTER:
                return
            raise translate_libvirt_error(exc, action=f"find filter {name}", uri=self.uri) from exc
        self._tolerant(f"remove filter {name}", nwfilter.undefine, ERR_NO_NWFILTER)

    # ---------------------------------------------------------------- lifecycle

    def _require(self, session_id: str, action: str) -> libvirt.virDomain:
        dom = self._lookup(session_id)
        if dom is None:
            raise VMError(
                f"cannot {action}: session {session_id} has no VM defined",
                hint="`vibebox` in the project directory defines it again",
            )
        return dom

    def start(self, session_id: str) -> None:
        """Start the network if needed, then the domain (no-op if it runs)."""
        dom = self._require(session_id, "start the VM")
        with self._errors(f"start VM {dom.name()}"):
            if dom.isActive():
                return
            _, net_name = vm.parse_domain_interface(dom.XMLDesc(_XML_INACTIVE))
        if net_name is not None and net_name == vm.network_name(session_id):
            self.start_network(session_id)
        name = dom.name()
        try:
            self._tolerant(f"start VM {name}", dom.create, ERR_OPERATION_INVALID)
        except VirtiofsdError as exc:
            # QEMU only saw virtiofsd's socket refuse; virtiofsd's own log says why.
            reason = virtiofsd_log_reason(name) if self.uri.startswith("qemu:///") else ""
            if not reason:
                raise
            raise VirtiofsdError(
                f"could not start VM {name}: virtiofsd refused to serve one of its shares: "
                f"{reason}",
                hint=exc.hint,
            ) from exc

    def shutdown(self, session_id: str) -> None:
        """Press the ACPI power button; no-op if the VM is missing or not running."""
        dom = self._lookup(session_id)
        if dom is None:
            return
        import libvirt

        action = f"shut down VM {session_id}"
        active = self._tolerant(action, dom.isActive, ERR_NO_DOMAIN)
        if not active:
            return
        try:
            dom.shutdownFlags(_ACPI_POWER_BTN)
            return
        except libvirt.libvirtError as exc:
            code = self._code(exc)
            if code in (ERR_OPERATION_INVALID, ERR_NO_DOMAIN):
                return
            if code not in (ERR_INVALID_ARG, ERR_NO_SUPPORT):
                raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc
        # A driver without the ACPI flag: its default shutdown method.
        self._tolerant(action, dom.shutdown, ERR_OPERATION_INVALID, ERR_NO_DOMAIN)

    def destroy(self, session_id: str) -> None:
        """Power off at once; no-op if the VM is missing or not running."""
        dom = self._lookup(session_id)
        if dom is None:
            return
        if not self._tolerant(f"force off VM {session_id}", dom.isActive, ERR_NO_DOMAIN):
            return
        self._tolerant(
            f"force off VM {session_id}", dom.destroy, ERR_OPERATION_INVALID, ERR_NO_DOMAIN
        )

    def stop(self, session_id: str, *, timeout: float = 30.0) -> bool:
        """ACPI shutdown, forced after ``timeout`` seconds; True if the guest stopped itself.

        The power button is pressed again every :attr:`repress_interval` seconds: a press that
        comes before the guest's systemd-logind listens (early in boot) is lost otherwise.
        """
        if self.state(session_id) in ("missing", "shut off"):
            return True
        start = time.monotonic()
        deadline = start + timeout
        next_press = start
        while time.monotonic() < deadline:
            if time.monotonic() >= next_press:
                self.shutdown(session_id)
                next_press = time.monotonic() + self.repress_interval
            time.sleep(self.poll_interval)
            if self.state(session_id) in ("missing", "shut off"):
                return True
        self.destroy(session_id)
        return False

    def undefine(self, session_id: str) -> None:
        """Destroy and remove the domain, then the session's network and the domain's
        ``vibebox-*`` nwfilter (kept while another domain uses it); missing ones are fine."""
        import libvirt

        dom = self._lookup(session_id)
        nwfilter = None
        if dom is not None:
            self.destroy(session_id)
            xml = self._tolerant(
                f"read the VM of session {session_id}",
                lambda: dom.XMLDesc(_XML_INACTIVE),
                ERR_NO_DOMAIN,  # removed meanwhile by another vibebox deleting it
            )
            if xml is not None:
                nwfilter = vm.parse_domain_filter(xml)
                self._undefine_domain(dom, session_id)
        self.undefine_network(session_id)
        if nwfilter is not None and nwfilter.startswith("vibebox-"):
            if self._filter_users(nwfilter):
                return
            try:
                self.undefine_nwfilter(nwfilter)
            except VMError as exc:
                cause = exc.__cause__
                in_use = isinstance(cause, libvirt.libvirtError) and (
                    self._code(cause) == ERR_OPERATION_INVALID
                )
                if not in_use:
                    raise

    def _filter_users(self, nwfilter: str) -> list[str]:
        """Names of the defined domains whose interface references ``nwfilter``.

        libvirt refuses to remove a filter only while a *running* domain uses it; an inactive
        domain left pointing at a removed filter would fail to start.
        """
        import libvirt

        conn = self._connection()
        with self._errors("list VMs"):
            domains = conn.listAllDomains(0)
        users = []
        for dom in domains:
            try:
                if vm.parse_domain_filter(dom.XMLDesc(_XML_INACTIVE)) == nwfilter:
                    users.append(dom.name())
            except libvirt.libvirtError:  # a domain vanishing mid-listing is not a user
                continue
        return users

    def _undefine_domain(self, dom: libvirt.virDomain, session_id: str) -> None:
        import libvirt

        action = f"remove VM {session_id}"
        # NO_DOMAIN: gone already; OPERATION_INVALID: transient, so gone with destroy.
        ignore = (ERR_NO_DOMAIN, ERR_OPERATION_INVALID)
        try:
            dom.undefineFlags(_UNDEFINE_FLAGS)
            return
        except libvirt.libvirtError as exc:
            code = self._code(exc)
            if code in ignore or self._lookup(session_id) is None:  # removed meanwhile
                return
            if code not in (ERR_INVALID_ARG, ERR_NO_SUPPORT):
                raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc
        self._tolerant(action, dom.undefine, *ignore)  # a driver without those flags

    def undefine_network(self, session_id: str) -> None:
        """Destroy and remove the session's network; missing is fine."""
        net = self._network(session_id)
        if net is None:
            return
        name = vm.network_name(session_id)
        try:
            self._tolerant(
                f"stop network {name}", net.destroy, ERR_OPERATION_INVALID, ERR_NO_NETWORK
            )
            self._tolerant(
                f"remove network {name}", net.undefine, ERR_NO_NETWORK, ERR_OPERATION_INVALID
            )
        except VMError:
            # Another vibebox deleting the same session removed it meanwhile: libvirt then
            # fails on the config file it already deleted ("cannot remove config file").
            if self._network(session_id) is not None:
                raise


if TYPE_CHECKING:
    _conforms: Hypervisor = LibvirtHypervisor()
