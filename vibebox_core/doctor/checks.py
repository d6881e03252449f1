"""What ``vibebox doctor`` checks, as pure functions of facts: each returns one :class:`Check`."""

from __future__ import annotations

import grp
import ipaddress
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from vibebox_core.hypervisor import access, network_xml

Status = Literal["ok", "warn", "fail", "skip"]

#: How each status is shown at the start of its line.
MARKS: dict[Status, str] = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}

#: A capabilities call slower than this (seconds) means libvirt re-probes QEMU each time
#: (measured here: 0.0005 s cached, 4.7-8.0 s re-probing).
SLOW_CAPABILITIES = 1.5
#: Free space the image store needs (bytes): a base image is ~0.7 GB, its build tree ~1.5 GB,
#: and every session's overlay grows from there.
MIN_FREE_BYTES = 3 * 1024**3
#: URIs vibebox supports: the libvirt on this machine.
LOCAL_URIS = ("qemu:///system", "qemu:///session")
LIBVIRT_GROUP = "libvirt"


@dataclass(frozen=True)
class Check:
    """One line of ``vibebox doctor``.

    Attributes:
        name: a short stable id (``libvirt``, ``capabilities``, ...), the key in ``--json``.
        status: ``ok``, ``warn``, ``fail`` or ``skip``.
        summary: what holds, or what is wrong (one line).
        fix: the next step when not ``ok`` (a command when there is one), else ``""``.
        items: every thing the check names, in full (the summary line shortens long lists);
            only in ``--json``.
    """

    name: str
    status: Status
    summary: str
    fix: str = ""
    items: tuple[str, ...] = ()

    @property
    def holds(self) -> bool:
        """True unless the check failed (a warning holds)."""
        return self.status != "fail"

    def line(self) -> str:
        """``✓ name: summary`` and, when not ok, `` — fix``."""
        text = f"{MARKS[self.status]} {self.name}: {self.summary}"
        return f"{text} — {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, object]:
        """A JSON-able view (``vibebox doctor --json``)."""
        view = asdict(self)
        view["items"] = list(self.items)
        return view


def all_hold(checks: Iterable[Check]) -> bool:
    """True when no check failed (warnings and skips are fine)."""
    return all(check.holds for check in checks)


def local_kind(uri: str) -> str | None:
    """``qemu:///system`` or ``qemu:///session`` for a URI of this machine's QEMU driver
    (a ``?socket=`` query or ``qemu+unix`` is still local), else None."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("qemu", "qemu+unix") or parsed.netloc:
        return None
    if parsed.path in ("/system", "/session"):
        return f"qemu://{parsed.path}"
    return None


def check_uri(uri: str) -> Check:
    """The URI is the libvirt on this machine (remote libvirt is not supported)."""
    if local_kind(uri) is not None:
        return Check("uri", "ok", f"{uri} (local)")
    fix = 'set libvirt_uri = "qemu:///system" (or "qemu:///session") under [box] in vibebox.toml'
    if "://" in uri and (urllib.parse.urlsplit(uri).netloc or "+" in uri.split(":", 1)[0]):
        return Check(
            "uri",
            "fail",
            f"{uri} is a remote libvirt, which vibebox does not support: the disk, kernel and "
            "shares are local paths, the policy proxy sits on a bridge of the VM's host and "
            "SSH goes to a private address there",
            fix,
        )
    return Check("uri", "fail", f"{uri} is not this machine's QEMU driver", fix)


def version_text(number: int) -> str:
    """libvirt's packed version (``major * 1e6 + minor * 1e3 + micro``) as ``9.0.0``."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def check_capabilities(timings: Sequence[float], *, kvm_closed_to_qemu: bool) -> Check:
    """Two capability calls were fast; if not, name the ``/dev/kvm`` cause when it is that."""
    shown = ", ".join(f"{t:.3f} s" for t in timings)
    if timings and max(timings) < SLOW_CAPABILITIES:
        return Check("capabilities", "ok", f"QEMU capabilities answer fast ({shown})")
    if kvm_closed_to_qemu:
        return Check(
            "capabilities",
            "fail",
            f"every libvirt call is slow ({shown}): /dev/kvm is closed to libvirt-qemu, so "
            "libvirt re-probes QEMU's capabilities on each call",
            f"setfacl -m u:{access.QEMU_USER}:rw /dev/kvm",
        )
    return Check(
        "capabilities",
        "fail",
        f"libvirt answers slowly ({shown}): it re-probes QEMU, or the host is overloaded",
        "check /var/log/libvirt/libvirtd.log and that the QEMU binary does not change; "
        "restart libvirtd",
    )


def check_kvm(*, device_exists: bool, kvm_capable: bool, nested: bool) -> Check:
    """KVM usable, or why ``accel=auto`` uses TCG. Never a failure: TCG works, only slower."""
    if not device_exists or not kvm_capable:
        why = "there is no /dev/kvm" if not device_exists else "libvirt reports no KVM"
        return Check(
            "kvm",
            "warn",
            f"{why}: guests run under TCG (software emulation, several times slower)",
            "enable virtualisation (load the kvm_intel or kvm_amd module) if this host has it",
        )
    if nested:
        return Check(
            "kvm",
            "warn",
            "this host is itself a VM (nested virtualisation): accel=auto uses TCG, because "
            "KVM guests can hang right after the kernel starts on such hosts",
            'set accel = "kvm" under [box] in vibebox.toml only if nested KVM works here',
        )
    return Check("kvm", "ok", "KVM is usable: accel=auto uses it")


def check_virtiofsd(path: Path) -> Check:
    """The virtiofsd binary every share needs exists and is executable."""
    if path.is_file() and os.access(path, os.X_OK):
        return Check("virtiofsd", "ok", str(path))
    return Check(
        "virtiofsd",
        "fail",
        f"{path} is missing: project and mount shares cannot be served",
        "apt-get install qemu-system-x86 (it ships /usr/lib/qemu/virtiofsd)",
    )


def check_qemu_access(blocked: Sequence[Path], reached: Sequence[Path], *, uri: str) -> Check:
    """QEMU (``libvirt-qemu``) may traverse down to the image store and the project."""
    if local_kind(uri) != "qemu:///system":
        return Check("qemu-access", "ok", f"under {uri} QEMU runs as you")
    where = ", ".join(str(p) for p in reached)
    if not blocked:
        return Check("qemu-access", "ok", f"{access.QEMU_USER} can reach {where}")
    return Check(
        "qemu-access",
        "fail",
        f"{access.QEMU_USER} cannot enter {', '.join(map(str, blocked))} on the way to {where}",
        access.setfacl_command(blocked),
    )


def check_subnets(
    used: Iterable[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = network_xml.SUBNET_POOL
) -> Check:
    """At least one /24 of the pool overlaps no libvirt network."""
    taken = list(used)
    candidates = list(pool.subnets(new_prefix=max(24, pool.prefixlen)))
    free = [c for c in candidates if not any(c.overlaps(other) for other in taken)]
    if free:
        return Check("subnet", "ok", f"{len(free)} of {len(candidates)} /24s free in {pool}")
    return Check(
        "subnet",
        "fail",
        f"no free /24 left in {pool}: every one overlaps a libvirt network",
        "delete sessions you no longer need (`vibebox list`, `vibebox delete ID`) or remove "
        "other libvirt networks in that range (`virsh net-list --all`)",
    )


def check_disk(where: Path, free_bytes: int, need: int = MIN_FREE_BYTES) -> Check:
    """Enough free space where images and instance disks go."""
    gib = free_bytes / 1024**3
    if free_bytes >= need:
        return Check("disk", "ok", f"{gib:.1f} GiB free at {where}")
    return Check(
        "disk",
        "fail",
        f"only {gib:.1f} GiB free at {where} (a base image and its build need "
        f"{need / 1024**3:.0f} GiB)",
        "free some space, or set VIBEBOX_HOME to a larger disk",
    )


def check_group(
    *, uid: int, user: str, uri: str, process_gids: Iterable[int], group: grp.struct_group | None
) -> Check:
    """The user may use the system libvirt: root, or a member of the libvirt group."""
    if uid == 0:
        return Check("group", "ok", "running as root")
    if local_kind(uri) != "qemu:///system":
        return Check("group", "ok", f"{uri} needs no group")
    if group is None:
        return Check(
            "group",
            "fail",
            f"there is no {LIBVIRT_GROUP} group: {user} cannot use qemu:///system",
            "apt-get install libvirt-daemon-system",
        )
    if group.gr_gid in set(process_gids):
        return Check("group", "ok", f"{user} is in the {LIBVIRT_GROUP} group")
    if user in group.gr_mem:
        return Check(
            "group",
            "fail",
            f"{user} was added to the {LIBVIRT_GROUP} group after this login",
            "log out and in again (or `newgrp libvirt`)",
        )
    return Check(
        "group",
        "fail",
        f"{user} is not in the {LIBVIRT_GROUP} group, so qemu:///system refuses it",
        f"sudo adduser {user} {LIBVIRT_GROUP}, then log in again",
    )
