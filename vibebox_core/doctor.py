"""``vibebox doctor``: check the host the way a support engineer would, one line per fact.

Every check returns a :class:`Check`: ``ok`` (✓), ``warn`` (!, true but worth knowing, e.g. a
nested host where ``accel=auto`` falls back to TCG), ``fail`` (✗, with the exact fix) or
``skip`` (-, could not be checked because an earlier check failed). The command exits 0 when
no check failed; warnings do not fail it.

The checks themselves are pure functions of facts (timings, modes, listings) so the unit tests
feed them directly; :func:`run_doctor` gathers the facts from libvirt, the file system and the
session index. When a start fails, :func:`diagnose_failure` runs the cheap part (no timing, no
listing) and appends what does not hold to the error's hint.

What is checked, in order: the configured URI is local (remote libvirt is not supported: the disk,
kernel and shares are local paths, the policy proxy sits on a bridge of the VM's host and SSH goes
to a private address there); libvirt answers, and its version; QEMU's capabilities answer fast twice
in a row (when ``/dev/kvm`` is closed to ``libvirt-qemu`` libvirt re-probes QEMU on every call, 4-8
s each, DESIGN §6); KVM usable, or nested (TCG then); virtiofsd present; QEMU can traverse to the
image store and the project (:mod:`vibebox_core.hypervisor.access`); the nwfilter driver; a free /24
in the session subnet pool; disk space for images; the user may use libvirt (root, or the libvirt
group); no ``vibebox-*`` domains, networks or filters left without a session.

Test seams (for e2e tests on a deliberately broken host): ``VIBEBOX_DOCTOR_VIRTIOFSD`` points
the virtiofsd check at another path, ``VIBEBOX_DOCTOR_POOL`` checks another subnet pool.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import pwd
import shutil
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor import access
from vibebox_core.hypervisor import domain_xml as vm
from vibebox_core.hypervisor.libvirt import translate_libvirt_error
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network import nwfilter
from vibebox_core.paths import ProjectPaths

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
KVM_DEVICE = Path("/dev/kvm")
LIBVIRT_GROUP = "libvirt"

VIRTIOFSD_ENV = "VIBEBOX_DOCTOR_VIRTIOFSD"
POOL_ENV = "VIBEBOX_DOCTOR_POOL"


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


# --------------------------------------------------------------------------- pure checks


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
    used: Iterable[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = vm.SUBNET_POOL
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


@dataclass(frozen=True)
class DomainFact:
    """A ``vibebox-*`` domain as doctor sees it."""

    name: str
    uuid: str
    #: The session id in ``.vibebox/session-id`` next to its disk (None when gone).
    cache_session_id: str | None = None


@dataclass(frozen=True)
class Leftovers:
    """Definitions without a session (names)."""

    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)


def find_leftovers(
    domains: Iterable[DomainFact],
    networks: Iterable[str],
    filters: Iterable[str],
    known: Iterable[str],
) -> Leftovers:
    """The ``vibebox-*`` definitions no session owns.

    A session owns its domain (UUID = session id), its network and filter
    (``vibebox-<session id>``). A session is this index's, or any whose ``.vibebox/`` (next to
    the domain's disk) still names it: another ``VIBEBOX_HOME`` on the same libvirt is not a
    leftover.
    """
    owners = {vm.canonical_session_id(sid) for sid in known}
    left = Leftovers()
    for dom in domains:
        sid = dom.uuid.lower()
        if sid in owners:
            continue
        if dom.cache_session_id is not None and dom.cache_session_id.lower() == sid:
            owners.add(sid)
            continue
        left.domains.append(dom.name)
    for name in networks:
        owner = vm.session_id_from_network_name(name)
        if owner is not None and owner not in owners:
            left.networks.append(name)
    for name in filters:
        owner = vm.session_id_from_network_name(name)
        if owner is not None and owner not in owners:
            left.filters.append(name)
    return left


def check_leftovers(left: Leftovers, *, uri: str) -> Check:
    """Nothing named ``vibebox-*`` is left without a session."""
    virsh = f"virsh -c {uri}"
    commands = [f"{virsh} destroy {name}; {virsh} undefine {name}" for name in left.domains]
    commands += [f"{virsh} net-destroy {n}; {virsh} net-undefine {n}" for n in left.networks]
    commands += [f"{virsh} nwfilter-undefine {name}" for name in left.filters]
    if not commands:
        return Check("leftovers", "ok", "no vibebox domains, networks or filters without a session")
    parts = []
    for what, names in (
        ("domain", left.domains),
        ("network", left.networks),
        ("filter", left.filters),
    ):
        if names:
            plural = "s" if len(names) > 1 else ""
            parts.append(
                f"{len(names)} {what}{plural} ({', '.join(names[:3])}{', …' * (len(names) > 3)})"
            )
    return Check(
        "leftovers",
        "fail",
        "left without a session: " + "; ".join(parts),
        "; ".join(commands[:4]) + ("; …" if len(commands) > 4 else ""),
        items=(*left.domains, *left.networks, *left.filters),
    )


# --------------------------------------------------------------------------- facts


def kvm_closed_to_qemu(device: Path = KVM_DEVICE) -> bool:
    """True when ``device`` exists but ``libvirt-qemu`` may not open it read-write."""
    who = access.qemu_identity()
    if who is None:
        return False
    try:
        st = device.stat()
    except OSError:
        return False
    acl: bytes | None = None
    with contextlib.suppress(OSError):
        acl = os.getxattr(device, access.ACL_XATTR)
    return not access.has_permission(st, acl, who, access.READ | access.WRITE)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _virtiofsd_path() -> Path:
    return Path(os.environ.get(VIRTIOFSD_ENV) or vm.VIRTIOFSD)


def _pool() -> ipaddress.IPv4Network:
    value = os.environ.get(POOL_ENV)
    if value:
        with contextlib.suppress(ValueError):
            return ipaddress.IPv4Network(value, strict=False)
    return vm.SUBNET_POOL


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _group() -> grp.struct_group | None:
    try:
        return grp.getgrnam(LIBVIRT_GROUP)
    except KeyError:
        return None


def _access_targets(project: ProjectPaths | None) -> list[Path]:
    targets = [paths.images_dir()]
    if project is not None:
        targets.append(project.cache)
    return targets


def _host_checks(uri: str, project: ProjectPaths | None) -> list[Check]:
    """The checks that need no libvirt: cheap, and meaningful when libvirt is down."""
    targets = _access_targets(project)
    system = local_kind(uri) == "qemu:///system"
    blocked = access.qemu_blocked_dirs(targets) if system else []
    store = _existing(paths.images_dir())
    return [
        check_virtiofsd(_virtiofsd_path()),
        check_qemu_access(blocked, targets, uri=uri),
        check_disk(store, shutil.disk_usage(store).free),
        check_group(
            uid=os.getuid(),
            user=_user(),
            uri=uri,
            process_gids=os.getgroups(),
            group=_group(),
        ),
    ]


def _open(uri: str) -> tuple[Check, Any]:
    import libvirt

    from vibebox_core.hypervisor.libvirt import _silence_libvirt

    _silence_libvirt()
    try:
        conn = libvirt.open(uri)
        lib, qemu = conn.getLibVersion(), conn.getVersion()
    except libvirt.libvirtError as exc:
        error = translate_libvirt_error(exc, action=f"connect to {uri}", uri=uri)
        return Check("libvirt", "fail", error.message, error.hint), None
    return Check(
        "libvirt", "ok", f"libvirt {version_text(lib)}, QEMU {version_text(qemu)} at {uri}"
    ), conn


def _timed_capabilities(conn: Any, calls: int = 2) -> list[float]:
    timings = []
    for _ in range(calls):
        start = time.monotonic()
        conn.getDomainCapabilities(None, None, None, None, 0)
        timings.append(time.monotonic() - start)
    return timings


def _kvm_check(conn: Any) -> Check:
    import libvirt

    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        capable = True
    except libvirt.libvirtError:
        capable = False
    nested = False
    with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
        root = ET.fromstring(conn.getCapabilities())
        nested = any(f.get("name") == "hypervisor" for f in root.iterfind("host/cpu/feature"))
    return check_kvm(device_exists=KVM_DEVICE.exists(), kvm_capable=capable, nested=nested)


def _nwfilter_check(conn: Any, uri: str) -> Check:
    import libvirt

    try:
        count = len(conn.listAllNWFilters(0))
    except libvirt.libvirtError as exc:
        error = translate_libvirt_error(exc, action="list network filters", uri=uri)
        return Check(
            "nwfilter",
            "fail",
            f"the nwfilter driver does not answer ({error.message}): allowlist sessions cannot "
            "be enforced",
            "install libvirt-daemon (it ships the nwfilter driver) and restart libvirtd",
        )
    return Check("nwfilter", "ok", f"nwfilter driver answers ({count} filters)")


def _subnet_check(conn: Any) -> Check:
    used: list[ipaddress.IPv4Network] = []
    for net in conn.listAllNetworks(0):
        with contextlib.suppress(Exception):  # a network vanishing mid-listing
            used.extend(vm.parse_network_subnets(net.XMLDesc(0)))
    return check_subnets(used, _pool())


def _domain_fact(dom: Any) -> DomainFact:
    name, uuid = dom.name(), dom.UUIDString()
    cache_sid = None
    with contextlib.suppress(Exception):
        root = ET.fromstring(dom.XMLDesc(2))
        for source in root.iterfind("devices/disk/source"):
            disk = source.get("file")
            if disk and Path(disk).parent.name == paths.PROJECT_CACHE:
                cache_sid = read_session_id_file(ProjectPaths(Path(disk).parent.parent))
                break
    return DomainFact(name, uuid, cache_sid)


def _leftovers_check(conn: Any, uri: str) -> Check:
    try:
        known = [entry.id for entry in SessionIndex().entries()]
    except VibeboxError as exc:
        return Check("leftovers", "fail", f"cannot read the session index: {exc.message}", exc.hint)
    domains = []
    for dom in conn.listAllDomains(0):
        with contextlib.suppress(Exception):  # a domain vanishing mid-listing
            if dom.name().startswith("vibebox-"):
                domains.append(_domain_fact(dom))
    networks = [n.name() for n in conn.listAllNetworks(0)]
    filters: list[str] = []
    with contextlib.suppress(Exception):
        filters = [f.name() for f in conn.listAllNWFilters(0)]
    return check_leftovers(find_leftovers(domains, networks, filters, known), uri=uri)


def _guarded(name: str, uri: str, run: Callable[[], Check]) -> Check:
    """Run one libvirt-backed check; a libvirt error becomes that check's failure."""
    import libvirt

    try:
        return run()
    except libvirt.libvirtError as exc:
        error = translate_libvirt_error(exc, action=f"check {name}", uri=uri)
        return Check(name, "fail", error.message, error.hint)


def check_bridge_netfilter(problem: str | None) -> Check:
    """Bridged IPv4 reaches iptables, so the session fence's connection-state rules match.

    Args:
        problem: :func:`vibebox_core.network.nwfilter.bridge_netfilter_problem`'s answer.
    """
    if problem is None:
        return Check("bridge-netfilter", "ok", "bridged traffic passes iptables (br_netfilter)")
    return Check(
        "bridge-netfilter",
        "fail",
        f"{problem}: the guest fence's stateful rules would never match, so sessions are refused",
        "sudo modprobe br_netfilter && sudo sysctl -w net.bridge.bridge-nf-call-iptables=1",
    )


def configured_uri(project: ProjectPaths | None) -> tuple[str, Check | None]:
    """The project's libvirt URI (default ``qemu:///system``), and a failed ``config`` check
    when its ``vibebox.toml`` cannot be read."""
    if project is None or not project.config.is_file():
        return "qemu:///system", None
    try:
        return load_config(project, create=False).box.libvirt_uri, None
    except VibeboxError as exc:
        return "qemu:///system", Check("config", "fail", exc.message, exc.hint)


def run_doctor(uri: str | None = None, project: ProjectPaths | None = None) -> list[Check]:
    """Every check, in order (blocking: libvirt calls, two of them timed).

    Args:
        uri: the libvirt URI to check (default: the project's, else ``qemu:///system``).
        project: a project directory whose ``.vibebox/`` QEMU must reach, if any.
    """
    checks: list[Check] = []
    if uri is None:
        uri, problem = configured_uri(project)
        if problem is not None:
            checks.append(problem)
    checks.append(check_uri(uri))
    libvirt_names = ("libvirt", "capabilities", "kvm", "nwfilter", "subnet", "leftovers")
    if checks[-1].holds:
        first, conn = _open(uri)
    else:
        first, conn = Check("libvirt", "skip", "not contacted: the URI is not supported"), None
    checks.append(first)
    if conn is None:
        why = "libvirt does not answer" if first.status == "fail" else "the URI is not supported"
        checks += [Check(name, "skip", f"not checked: {why}") for name in libvirt_names[1:]]
        checks += _host_checks(uri, project)
        return checks
    try:
        closed = kvm_closed_to_qemu() if local_kind(uri) == "qemu:///system" else False
        checks.append(
            _guarded(
                "capabilities",
                uri,
                lambda: check_capabilities(_timed_capabilities(conn), kvm_closed_to_qemu=closed),
            )
        )
        checks.append(_guarded("kvm", uri, lambda: _kvm_check(conn)))
        host = _host_checks(uri, project)
        checks += host[:1]  # virtiofsd, next to the QEMU facts
        checks.append(_guarded("nwfilter", uri, lambda: _nwfilter_check(conn, uri)))
        checks.append(check_bridge_netfilter(nwfilter.bridge_netfilter_problem()))
        checks.append(_guarded("subnet", uri, lambda: _subnet_check(conn)))
        checks += host[1:]
        checks.append(_guarded("leftovers", uri, lambda: _leftovers_check(conn, uri)))
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return checks


def cheap_checks(uri: str, project: ProjectPaths | None = None) -> list[Check]:
    """The part of doctor that is quick and needs no listing: URI, files, access, disk,
    group, and whether ``/dev/kvm`` is closed to QEMU (what makes every call slow)."""
    checks = [check_uri(uri)]
    checks += _host_checks(uri, project)
    checks.append(check_bridge_netfilter(nwfilter.bridge_netfilter_problem()))
    if local_kind(uri) == "qemu:///system" and kvm_closed_to_qemu():
        checks.append(
            Check(
                "kvm-device",
                "fail",
                "/dev/kvm is closed to libvirt-qemu: libvirt re-probes QEMU on every call",
                f"setfacl -m u:{access.QEMU_USER}:rw /dev/kvm",
            )
        )
    return checks


def diagnose_failure(error: VibeboxError, uri: str, project: ProjectPaths | None) -> VibeboxError:
    """Add what :func:`cheap_checks` finds wrong to ``error``'s hint (the same error object).

    Called when a start fails: the error says what failed, the checks what on the host
    explains it. Never raises.
    """
    try:
        failed = [check for check in cheap_checks(uri, project) if not check.holds]
    except Exception:  # the diagnosis must never hide the real error
        return error
    if failed:
        found = "; ".join(check.line() for check in failed)
        error.hint = f"{error.hint}; vibebox doctor: {found}" if error.hint else found
    return error
