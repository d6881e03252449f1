"""libvirt errors translated by table into :class:`~vibebox_core.errors.VMError` subclasses.

:data:`ERROR_TABLE` maps (component, error code) — the component from
:func:`vibebox_core.hypervisor.failure.failed_component` — to a rule that returns the
:class:`VMError` subclass naming that component and the next step, with the message libvirt
gave. :func:`translate_libvirt_error` is the one door: the libvirt adapter and ``vibebox
doctor`` turn every ``libvirtError`` into a user's error through it.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vibebox_core.errors import (
    HostNetworkError,
    LibvirtUnreachableError,
    NwfilterError,
    QemuError,
    StorageAccessError,
    SubnetInUseError,
    VirtiofsdError,
    VMError,
)
from vibebox_core.hypervisor import access
from vibebox_core.hypervisor.accelerator import boot_stalled_hint
from vibebox_core.hypervisor.failure import (
    ERR_ACCESS_DENIED,
    ERR_AUTH_FAILED,
    ERR_AUTH_UNAVAILABLE,
    ERR_INTERNAL_ERROR,
    ERR_INVALID_ARG,
    ERR_NO_CONNECT,
    ERR_NO_SUPPORT,
    ERR_OPERATION_FAILED,
    ERR_SYSTEM_ERROR,
    FROM_NONE,
    Component,
    LibvirtFailure,
    errno_from,
    failed_component,
)
from vibebox_core.hypervisor.virtiofs import VIRTIOFSD


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
            hint=f"virtiofs shares need {VIRTIOFSD} (Debian package qemu-system-x86); "
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
    return SubnetInUseError(
        f.base,
        hint="the session network's subnet collides with another interface on the host; "
        f"delete the session network (`vibebox delete` or `virsh -c {f.uri} net-undefine NAME`) "
        "so a free subnet is picked next time",
    )


def _kvm(f: LibvirtFailure) -> VMError:
    return QemuError(
        f.base,
        hint=boot_stalled_hint("kvm")
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
    number = f.errno if f.errno is not None else errno_from(f.message)
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


def libvirt_error(
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
        errno_value = errno_from(text) if code == ERR_SYSTEM_ERROR or not domain else None
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
    """:func:`libvirt_error` for a ``libvirt.libvirtError``, reading all its fields."""
    code = int(exc.get_error_code() or 0)
    fields: tuple[Any, ...] = tuple(getattr(exc, "err", None) or ())
    number = fields[7] if len(fields) > 7 and isinstance(fields[7], int) else None
    return libvirt_error(
        code,
        exc.get_error_message() or str(exc),
        action=action,
        uri=uri,
        domain=int(exc.get_error_domain() or 0),
        errno_value=number if code == ERR_SYSTEM_ERROR else None,
    )
