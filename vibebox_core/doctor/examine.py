"""Examining this host: facts gathered from libvirt, the files and the index, then checked."""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import pwd
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.doctor.checks import (
    LIBVIRT_GROUP,
    Check,
    check_capabilities,
    check_disk,
    check_group,
    check_kvm,
    check_qemu_access,
    check_subnets,
    check_uri,
    check_virtiofsd,
    local_kind,
    version_text,
)
from vibebox_core.doctor.leftovers import DomainFact, check_leftovers, find_leftovers
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor import access, network_xml, nwfilter, virtiofs
from vibebox_core.hypervisor.errors import translate_libvirt_error
from vibebox_core.hypervisor.libvirt_connection import silence_libvirt
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths

KVM_DEVICE = Path("/dev/kvm")
#: Test seams (for e2e tests on a deliberately broken host): another virtiofsd path, another
#: subnet pool to check.
VIRTIOFSD_ENV = "VIBEBOX_DOCTOR_VIRTIOFSD"
POOL_ENV = "VIBEBOX_DOCTOR_POOL"


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
    return Path(os.environ.get(VIRTIOFSD_ENV) or virtiofs.VIRTIOFSD)


def _pool() -> ipaddress.IPv4Network:
    value = os.environ.get(POOL_ENV)
    if value:
        with contextlib.suppress(ValueError):
            return ipaddress.IPv4Network(value, strict=False)
    return network_xml.SUBNET_POOL


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
    import libvirt  # deferred: a start imports this module; its cheap checks need no libvirt

    silence_libvirt()
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
    import libvirt  # deferred: a start imports this module; its cheap checks need no libvirt

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
    import libvirt  # deferred: a start imports this module; its cheap checks need no libvirt

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
            used.extend(network_xml.parse_network_subnets(net.XMLDesc(0)))
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
    import libvirt  # deferred: a start imports this module; its cheap checks need no libvirt

    try:
        return run()
    except libvirt.libvirtError as exc:
        error = translate_libvirt_error(exc, action=f"check {name}", uri=uri)
        return Check(name, "fail", error.message, error.hint)


def check_bridge_netfilter(problem: str | None) -> Check:
    """Bridged IPv4 reaches iptables, so the session fence's connection-state rules match.

    Args:
        problem: :func:`vibebox_core.hypervisor.nwfilter.bridge_netfilter_problem`'s answer.
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
