"""Pure builders for the libvirt side of a session: names, domain XML and network XML.

Everything here is a function of plain data, so it is unit-tested without a hypervisor; the
libvirt adapter in :mod:`vibebox_core.hypervisor.libvirt` only sends what these functions build.

Decisions worth knowing:

* The domain's UUID is the session id; its name is ``vibebox-<project>-<first 8 hex>``
  (DESIGN §3). UUIDv7 ids share their first 8 hex digits for about 65 s (they are the top bits
  of a millisecond timestamp), so everything that must be unique per session on its own — the
  network name, the bridge, the MAC address, the subnet — is derived from the whole id instead.
* Each session gets its own NAT network (or an isolated one in allowlist mode, DESIGN §5) on a
  free /24 of ``10.213.0.0/16``, with a fixed DHCP host entry for the domain's MAC, so the guest
  always receives the same address.
* libvirt 9.0 refuses ``<readonly/>`` on virtiofs shares ("virtiofs does not yet support
  read-only mode") and bookworm's virtiofsd has no read-only option. Shares are therefore
  served through small wrappers (:func:`virtiofsd_wrapper_script`) that run virtiofsd in a
  private mount namespace on a bind mount of the source — read-only for read-only shares — with
  ``.vibebox/`` covered by an empty tmpfs. The host kernel enforces both, so root in the guest
  cannot undo them (a guest-side mask alone could be unmounted by guest root, who could then
  swap the instance disk or console log for symlinks that libvirt follows as root).
  Sessions now give every share its own wrapper (:attr:`Share.binary`) from the share guard
  (:mod:`vibebox_core.share.guard`), which does the same in C from a pinned directory and
  also keeps setuid bits, device nodes and foreign owners off the host; the shell wrappers
  below remain for callers that pass no per-share binary.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import stat
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from vibebox_core import paths
from vibebox_core.errors import VMError

Accel = Literal["kvm", "tcg"]
AccelSetting = Literal["auto", "kvm", "tcg"]

#: virtiofsd shipped by Debian 12's qemu (DESIGN §6).
VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")
#: Kernel command line for direct kernel boot of the image's ext4 root on the virtio disk.
DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw"
#: Private range the per-session /24 networks are carved from.
SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")
#: Hostname the DHCP host entry hands out (the guest sets the same one itself).
GUEST_HOSTNAME = "vibebox"
#: virtio-fs limits a mount tag to 36 bytes.
MAX_TAG_BYTES = 36
#: Linux interface names are at most 15 characters (IFNAMSIZ - 1).
MAX_BRIDGE_NAME = 15
#: The longest project part kept in a domain name.
MAX_PROJECT_PART = 40

DNSMASQ_XMLNS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
VIBEBOX_XMLNS = "https://github.com/vibebox/vibebox/xmlns/session/1"

_NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


# --------------------------------------------------------------------------- names


def canonical_session_id(session_id: str) -> str:
    """Return ``session_id`` as a lower-case hyphenated UUID.

    Raises:
        VMError: the id is not a UUID (libvirt needs one for the domain).
    """
    try:
        return str(uuid.UUID(session_id))
    except (ValueError, AttributeError, TypeError):
        raise VMError(
            f"session id {session_id!r} is not a UUID",
            hint="the id in .vibebox/session-id is damaged; `vibebox list` shows the real one",
        ) from None


def _short(session_id: str) -> str:
    return canonical_session_id(session_id).replace("-", "")[:8]


def _digest(session_id: str, purpose: str) -> bytes:
    """Stable per-session bytes for one purpose (MAC, subnet, bridge), from the whole id."""
    data = f"vibebox:{purpose}:{canonical_session_id(session_id)}".encode()
    return hashlib.sha256(data).digest()


def sanitise_project_name(project_name: str) -> str:
    """Turn a directory name into something safe inside a libvirt name and a shell word.

    Lower-case; every run of characters outside ``[a-z0-9._-]`` becomes one ``-``; leading and
    trailing ``-``/``.`` are dropped; at most :data:`MAX_PROJECT_PART` characters; ``project``
    when nothing is left.
    """
    cleaned = _NAME_UNSAFE.sub("-", project_name.lower()).strip("-.")
    cleaned = cleaned[:MAX_PROJECT_PART].rstrip("-.")
    return cleaned or "project"


def domain_name(project_name: str, session_id: str) -> str:
    """Return the readable domain name ``vibebox-<project>-<first 8 hex of the id>``."""
    return f"vibebox-{sanitise_project_name(project_name)}-{_short(session_id)}"


def network_name(session_id: str) -> str:
    """Return the name of the session's libvirt network: ``vibebox-<session id>``.

    The whole id, because UUIDv7 prefixes repeat for sessions created within a minute.
    """
    return f"vibebox-{canonical_session_id(session_id)}"


def network_uuid(session_id: str) -> str:
    """Return the network's UUID, derived from the session id.

    libvirt refuses to redefine a network whose definition carries another UUID (and makes up
    a random one when none is given), so the XML always names this stable one.
    """
    return str(uuid.uuid5(uuid.UUID(canonical_session_id(session_id)), "vibebox-network"))


def bridge_name(session_id: str) -> str:
    """Return the session network's bridge: ``vbx`` + 12 hex digits (15 characters)."""
    return "vbx" + _digest(session_id, "bridge").hex()[: MAX_BRIDGE_NAME - 3]


def mac_address(session_id: str) -> str:
    """Return the guest NIC's stable MAC: ``52:54:00`` (QEMU's prefix) + 3 bytes from the id."""
    tail = _digest(session_id, "mac")[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def session_id_from_network_name(name: str) -> str | None:
    """Return the session id a vibebox network name encodes, or None for other networks."""
    if not name.startswith("vibebox-"):
        return None
    try:
        return str(uuid.UUID(name.removeprefix("vibebox-")))
    except ValueError:
        return None


# --------------------------------------------------------------------------- accel


def kvm_device_usable(device: Path = Path("/dev/kvm")) -> bool:
    """Return True when ``device`` exists and this process can open it read-write."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def resolve_accel(requested: str, *, kvm_available: bool, nested: bool = False) -> Accel:
    """Decide the accelerator for a domain.

    Rule: ``tcg`` and ``kvm`` are taken as asked. ``auto`` means ``kvm`` when the hypervisor
    reports KVM usable (:meth:`Hypervisor.kvm_available`) *and* its host is not itself a
    virtual machine (``nested``, :meth:`Hypervisor.host_is_virtual`), else ``tcg``: on
    nested-virtualisation hosts a KVM guest can hang right after the kernel starts (DESIGN §6),
    and ``/dev/kvm`` existing proves nothing there. Who knows nested KVM works on their host
    sets ``accel = "kvm"``. Whatever was chosen, a boot that shows no progress ends in an error
    naming ``accel`` (:func:`boot_stalled_hint`). ``VIBEBOX_ACCEL`` is applied by the config
    loader before this is called.

    Args:
        requested: ``auto``, ``kvm`` or ``tcg`` (any case, surrounding blanks ignored).
        kvm_available: libvirt can run KVM guests.
        nested: the hypervisor's host is a virtual machine itself.

    Raises:
        VMError: ``kvm`` was asked for but is not available, or ``requested`` is unknown.
    """
    setting = requested.strip().lower()
    if setting == "tcg":
        return "tcg"
    if setting == "kvm":
        if not kvm_available:
            raise VMError(
                'accel = "kvm" was asked for, but KVM is not available to libvirt here',
                hint='set accel = "tcg" under [box] in vibebox.toml (or VIBEBOX_ACCEL=tcg), '
                "or load the kvm module and give libvirt access to /dev/kvm",
            )
        return "kvm"
    if setting == "auto":
        return "kvm" if kvm_available and not nested else "tcg"
    raise VMError(
        f"unknown accel {requested!r}",
        hint='use one of "auto", "kvm" or "tcg" (vibebox.toml [box] accel, or VIBEBOX_ACCEL)',
    )


def boot_stalled_hint(accel: Accel) -> str:
    """Return the next step for a guest that showed no progress while booting under ``accel``."""
    if accel == "kvm":
        return (
            "the VM ran with accel=kvm; on hosts with nested virtualisation KVM guests can hang "
            'right after the kernel starts: set accel = "tcg" under [box] in vibebox.toml '
            "(or export VIBEBOX_ACCEL=tcg) and start again"
        )
    return (
        "the VM ran with accel=tcg (software emulation, slow); check the console log above, "
        'and if KVM works on this host set accel = "kvm" (or "auto") under [box] in vibebox.toml'
    )


# --------------------------------------------------------------------------- subnets


def pick_subnet(
    session_id: str,
    used: Iterable[ipaddress.IPv4Network],
    *,
    pool: ipaddress.IPv4Network = SUBNET_POOL,
    prefix: int = 24,
) -> ipaddress.IPv4Network:
    """Pick the session's subnet: a /``prefix`` of ``pool`` that overlaps nothing in ``used``.

    The first candidate is derived from the session id (so a session keeps its subnet when it
    is free), then the following ones in order, wrapping around.

    Raises:
        VMError: every candidate overlaps a used network.
    """
    candidates = list(pool.subnets(new_prefix=prefix))
    taken = list(used)
    start = int.from_bytes(_digest(session_id, "subnet")[:4], "big") % len(candidates)
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise VMError(
        f"no free /{prefix} left in {pool} for the session's network",
        hint="delete sessions you no longer need (`vibebox list`, `vibebox delete <id>`) or "
        "remove other libvirt networks in that range (`virsh net-list --all`)",
    )


# --------------------------------------------------------------------------- network XML


@dataclass(frozen=True)
class NetworkSpec:
    """One session's libvirt network.

    Attributes:
        session_id: the session it belongs to.
        name: libvirt network name (:func:`network_name`).
        bridge: bridge device, at most 15 characters (:func:`bridge_name`).
        subnet: the /24 (or other prefix) the network owns; the gateway is its first address,
            the guest's fixed address its second.
        mac: the guest NIC's MAC, given a fixed DHCP host entry.
        isolated: no ``<forward>``: no route out (allowlist mode, DESIGN §5).
        dns_enabled: run libvirt's DNS on the gateway (DHCP works either way).
        dns_forwarder: ``"ADDR"`` or ``"ADDR#PORT"``: dnsmasq sends every query there and
            ignores resolv.conf and /etc/hosts (the network policy's DNS filter decides).
            ``<dns><forwarder>`` cannot carry a port, so dnsmasq options are used.
        dnsmasq_options: extra raw dnsmasq options (libvirt's dnsmasq namespace).
        host_name: the name the DHCP host entry gives the guest.
    """

    session_id: str
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    mac: str
    isolated: bool = False
    dns_enabled: bool = True
    dns_forwarder: str | None = None
    dnsmasq_options: tuple[str, ...] = ()
    host_name: str = GUEST_HOSTNAME

    @classmethod
    def for_session(
        cls,
        session_id: str,
        used_subnets: Iterable[ipaddress.IPv4Network] = (),
        *,
        isolated: bool = False,
        dns_enabled: bool = True,
        dns_forwarder: str | None = None,
        dnsmasq_options: tuple[str, ...] = (),
        current: ipaddress.IPv4Network | None = None,
    ) -> NetworkSpec:
        """Build the spec with every derived value (name, bridge, MAC, a free subnet).

        Args:
            session_id: the session.
            used_subnets: subnets of the other networks (``Hypervisor.used_subnets(
                exclude_session=session_id)``).
            isolated, dns_enabled, dns_forwarder, dnsmasq_options: see the attributes.
            current: the subnet the session's network has now
                (``Hypervisor.network_subnet``); kept when it collides with nothing, so a
                redefinition never moves the guest to a new address.
        """
        used = list(used_subnets)
        subnet = current
        if subnet is None or any(subnet.overlaps(other) for other in used):
            subnet = pick_subnet(session_id, used)
        return cls(
            session_id=canonical_session_id(session_id),
            name=network_name(session_id),
            bridge=bridge_name(session_id),
            subnet=subnet,
            mac=mac_address(session_id),
            isolated=isolated,
            dns_enabled=dns_enabled,
            dns_forwarder=dns_forwarder,
            dnsmasq_options=dnsmasq_options,
        )

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the network (DHCP, DNS and the policy proxy live here)."""
        return self.subnet.network_address + 1

    @property
    def guest_ip(self) -> ipaddress.IPv4Address:
        """The fixed address the DHCP host entry hands the guest."""
        return self.subnet.network_address + 2

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """First and last dynamic DHCP address (the guest's fixed one is inside)."""
        return self.subnet.network_address + 2, self.subnet.broadcast_address - 1


def _parse_forwarder(value: str) -> str:
    """Validate ``ADDR`` / ``ADDR#PORT`` and return it in dnsmasq ``server=`` syntax."""
    addr, sep, port = value.partition("#")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise VMError(f"DNS forwarder {value!r} is not an IP address (ADDR or ADDR#PORT)") from None
    if sep and not (port.isdigit() and 0 < int(port) < 65536):
        raise VMError(f"DNS forwarder {value!r} has a bad port (ADDR#PORT, 1-65535)")
    return value


def network_xml(spec: NetworkSpec) -> str:
    """Build the libvirt ``<network>`` XML for ``spec``."""
    if len(spec.bridge) > MAX_BRIDGE_NAME:
        raise VMError(f"bridge name {spec.bridge!r} is longer than {MAX_BRIDGE_NAME} characters")
    if spec.subnet.num_addresses < 4:
        raise VMError(f"subnet {spec.subnet} is too small for a gateway and a guest")
    mac = spec.mac.lower()
    if not _MAC_RE.match(mac):
        raise VMError(f"MAC address {spec.mac!r} is malformed")

    ET.register_namespace("dnsmasq", DNSMASQ_XMLNS)
    net = ET.Element("network")
    ET.SubElement(net, "name").text = spec.name
    ET.SubElement(net, "uuid").text = network_uuid(spec.session_id)
    if not spec.isolated:
        # NAT out through the host; libvirt's rules still keep sessions from reaching each other.
        forward = ET.SubElement(net, "forward", mode="nat")
        ET.SubElement(forward, "nat").append(ET.Element("port", start="1024", end="65535"))
    ET.SubElement(net, "bridge", name=spec.bridge, stp="on", delay="0")
    if not spec.dns_enabled:
        ET.SubElement(net, "dns", enable="no")
    ip = ET.SubElement(net, "ip", address=str(spec.gateway), netmask=str(spec.subnet.netmask))
    dhcp = ET.SubElement(ip, "dhcp")
    first, last = spec.dhcp_range
    ET.SubElement(dhcp, "range", start=str(first), end=str(last))
    ET.SubElement(dhcp, "host", mac=mac, name=spec.host_name, ip=str(spec.guest_ip))

    options: list[str] = []
    if spec.dns_forwarder is not None and spec.dns_enabled:
        options += ["no-resolv", "no-hosts", f"server={_parse_forwarder(spec.dns_forwarder)}"]
    options += list(spec.dnsmasq_options)
    if options:
        opts = ET.SubElement(net, f"{{{DNSMASQ_XMLNS}}}options")
        for value in options:
            ET.SubElement(opts, f"{{{DNSMASQ_XMLNS}}}option", value=value)
    ET.indent(net)
    return ET.tostring(net, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- domain XML


class Share(NamedTuple):
    """One virtiofs share: host directory, mount tag, read-only in the guest.

    ``binary`` is the program libvirt runs as this share's virtiofsd: the per-share wrapper of
    the share guard (:func:`vibebox_core.share.guard.guard_shares`). None falls back to
    :attr:`DomainSpec.virtiofsd` / :attr:`DomainSpec.virtiofsd_readonly`.
    """

    source: Path
    tag: str
    read_only: bool
    binary: Path | None = None


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML needs, already resolved (no ``auto`` left).

    Attributes:
        session_id: becomes the domain UUID.
        name: the readable domain name (:func:`domain_name`).
        cpus: virtual CPUs.
        memory_mb: guest memory in MiB.
        accel: ``kvm`` or ``tcg`` (:func:`resolve_accel`).
        kernel, initrd: direct kernel boot files from the image.
        disk: the instance qcow2 overlay (the guest's root on ``/dev/vda``).
        console_log: file the serial console is logged to (by virtlogd, as root).
        network: the session network's name.
        mac: the NIC's MAC (:func:`mac_address`), matching the network's DHCP host entry.
        cmdline: kernel command line.
        filesystems: virtiofs shares; the first one of each tag only.
        virtiofsd: virtiofsd for read-write shares: ``install_virtiofsd_wrappers().readwrite``
            hides ``.vibebox/`` on the host side. Left at the default (the bare binary) while
            ``virtiofsd_readonly`` is a wrapper, the read-write wrapper beside it is used, so
            the session cache is never shared by accident.
        virtiofsd_readonly: for read-only shares: ``install_virtiofsd_wrappers().readonly``;
            required when any share is read-only.
        nwfilter: a libvirt nwfilter to attach to the NIC (network policy), or None.
        nwfilter_params: ``<parameter>`` values for that filter (e.g. ``GATEWAY``).
        console_append: keep earlier boots in the console log. Off by default, so the log's
            tail always belongs to the current boot (used in boot-timeout errors).
        project_dir: recorded in the domain's metadata (seen in ``virsh dumpxml``).
    """

    session_id: str
    name: str
    cpus: int
    memory_mb: int
    accel: Accel
    kernel: Path
    initrd: Path
    disk: Path
    console_log: Path
    network: str
    mac: str
    cmdline: str = DEFAULT_CMDLINE
    filesystems: tuple[Share, ...] = ()
    virtiofsd: Path = VIRTIOFSD
    virtiofsd_readonly: Path | None = None
    nwfilter: str | None = None
    nwfilter_params: Mapping[str, str] = field(default_factory=dict)
    console_append: bool = False
    project_dir: Path | None = None


def _require_absolute(what: str, path: Path) -> str:
    if not path.is_absolute():
        raise VMError(f"{what} path {str(path)!r} must be absolute")
    return str(path)


def _validate_share(spec: DomainSpec, share: Share, seen: set[str]) -> None:
    tag = share.tag
    if not _TAG_RE.match(tag) or len(tag.encode()) > MAX_TAG_BYTES:
        raise VMError(
            f"virtiofs tag {tag!r} is invalid (letters, digits, . _ -; at most {MAX_TAG_BYTES})"
        )
    if tag in seen:
        raise VMError(f"virtiofs tag {tag!r} is used twice")
    seen.add(tag)
    if share.binary is not None:
        # The share guard's launcher undoes libvirt's comma escaping itself.
        _require_absolute("virtiofsd", share.binary)
        return
    if share.read_only:
        if spec.virtiofsd_readonly is None:
            raise VMError(
                f"share {tag!r} is read-only but no read-only virtiofsd wrapper was given",
                hint="pass vm.install_virtiofsd_wrappers().readonly",
            )
        if "," in str(share.source):
            # libvirt passes the source inside `-o source=...` with commas doubled; the wrapper
            # does not undo that, so refuse instead of sharing the wrong directory.
            raise VMError(
                f"read-only mount {str(share.source)!r} contains a comma",
                hint="rename the directory or mount it read-write",
            )


def _readwrite_virtiofsd(spec: DomainSpec) -> Path:
    if spec.virtiofsd == VIRTIOFSD and spec.virtiofsd_readonly is not None:
        return spec.virtiofsd_readonly.parent / paths.VIRTIOFSD_READWRITE
    return spec.virtiofsd


def domain_xml(spec: DomainSpec) -> str:
    """Build the libvirt ``<domain>`` XML for ``spec``.

    Raises:
        VMError: a value libvirt would refuse or misread (bad UUID, MAC, tag, relative path).
    """
    session_id = canonical_session_id(spec.session_id)
    if spec.accel not in ("kvm", "tcg"):
        raise VMError(f"accel {spec.accel!r} must be resolved to 'kvm' or 'tcg' first")
    if spec.cpus < 1:
        raise VMError(f"cpus = {spec.cpus}: a VM needs at least one CPU")
    if spec.memory_mb < 128:
        raise VMError(f"memory_mb = {spec.memory_mb}: Debian needs at least 128 MiB")
    mac = spec.mac.lower()
    if not _MAC_RE.match(mac):
        raise VMError(f"MAC address {spec.mac!r} is malformed")
    seen: set[str] = set()
    for share in spec.filesystems:
        _validate_share(spec, share, seen)

    ET.register_namespace("vibebox", VIBEBOX_XMLNS)
    dom = ET.Element("domain", type="kvm" if spec.accel == "kvm" else "qemu")
    ET.SubElement(dom, "name").text = spec.name
    ET.SubElement(dom, "uuid").text = session_id
    ET.SubElement(dom, "title").text = f"vibebox session {session_id}"
    if spec.project_dir is not None:
        ET.SubElement(dom, "description").text = f"vibebox session for {spec.project_dir}"
        meta = ET.SubElement(dom, "metadata")
        ET.SubElement(
            meta, f"{{{VIBEBOX_XMLNS}}}session", id=session_id, directory=str(spec.project_dir)
        )
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mb)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(spec.memory_mb)
    if spec.filesystems:
        # virtiofs needs guest memory the virtiofsd processes can map.
        backing = ET.SubElement(dom, "memoryBacking")
        ET.SubElement(backing, "source", type="memfd")
        ET.SubElement(backing, "access", mode="shared")
    ET.SubElement(dom, "vcpu", placement="static").text = str(spec.cpus)

    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    ET.SubElement(os_el, "kernel").text = _require_absolute("kernel", spec.kernel)
    ET.SubElement(os_el, "initrd").text = _require_absolute("initrd", spec.initrd)
    ET.SubElement(os_el, "cmdline").text = spec.cmdline

    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")  # ACPI shutdown (the supervisor's graceful stop) needs it
    ET.SubElement(features, "apic")
    if spec.accel == "kvm":
        ET.SubElement(dom, "cpu", mode="host-passthrough", check="none", migratable="off")
    else:
        # TCG's "max" model: modern instruction sets (x86-64-v3) for the guest's tools.
        ET.SubElement(dom, "cpu", mode="maximum", check="none")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", file=_require_absolute("disk", spec.disk))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")

    iface = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(iface, "mac", address=mac)
    ET.SubElement(iface, "source", network=spec.network)
    ET.SubElement(iface, "model", type="virtio")
    if spec.nwfilter is not None:
        ref = ET.SubElement(iface, "filterref", filter=spec.nwfilter)
        for key, value in spec.nwfilter_params.items():
            ET.SubElement(ref, "parameter", name=key, value=value)

    for share in spec.filesystems:
        fs = ET.SubElement(devices, "filesystem", type="mount", accessmode="passthrough")
        ET.SubElement(fs, "driver", type="virtiofs", queue="1024")
        binary = share.binary
        if binary is None:
            binary = spec.virtiofsd_readonly if share.read_only else _readwrite_virtiofsd(spec)
        assert binary is not None  # checked in _validate_share
        ET.SubElement(fs, "binary", path=_require_absolute("virtiofsd", binary))
        ET.SubElement(fs, "source", dir=_require_absolute("share", share.source))
        ET.SubElement(fs, "target", dir=share.tag)

    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(
        serial,
        "log",
        file=_require_absolute("console log", spec.console_log),
        append="on" if spec.console_append else "off",
    )
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")

    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    ET.SubElement(devices, "memballoon", model="none")

    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- virtiofsd wrappers


class VirtiofsdWrappers(NamedTuple):
    """The two wrappers libvirt runs instead of virtiofsd (see :func:`virtiofsd_wrapper_script`)."""

    readwrite: Path
    readonly: Path


def virtiofsd_wrapper_script(*, read_only: bool, real: Path = VIRTIOFSD) -> str:
    """Return a wrapper that serves a virtiofs share with the session cache hidden.

    libvirtd runs it as root with virtiofsd's arguments (``--fd=N -o source=DIR,...``). It
    enters a private mount namespace, bind-mounts DIR onto itself, covers ``DIR/.vibebox`` with
    an empty read-only tmpfs, makes DIR read-only when ``read_only`` and execs the real virtiofsd
    there (same pid, so libvirt's pid file stays right). virtiofsd's sandbox inherits these
    mounts, so the guest, even as root, can neither write a read-only share nor reach
    ``.vibebox/``: the instance disk, keys and console log there are opened by libvirt, QEMU and
    virtlogd on the host, and a guest able to swap them for symlinks could make root on the host
    write or share any file.
    """
    mode = "read-only, " if read_only else ""
    remount = 'mount -o remount,bind,ro -- "$src"\n' if read_only else ""
    return f"""#!/bin/sh
# vibebox: run virtiofsd on a {mode}view of its shared directory with .vibebox/ hidden. Written by
# vibebox (vibebox_core/hypervisor/domain_xml.py); libvirt 9.0 refuses <readonly/> on virtiofs.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
if [ "${{1:-}}" != "--vibebox-stage2" ]; then
    exec unshare --mount --propagation private -- "$0" --vibebox-stage2 "$@"
fi
shift
src=""
for arg in "$@"; do
    case "$arg" in
        source=*) src="${{arg#source=}}"; src="${{src%%,*}}" ;;
    esac
done
if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "vibebox virtiofsd wrapper: no source directory in: $*" >&2
    exit 1
fi
mount --bind -- "$src" "$src"
if [ -d "$src/{paths.PROJECT_CACHE}" ] && [ ! -L "$src/{paths.PROJECT_CACHE}" ]; then
    mount -t tmpfs -o ro,nosuid,nodev,noexec,mode=0555,size=4k vibebox-masked \
        "$src/{paths.PROJECT_CACHE}"
fi
{remount}exec {real} "$@"
"""


def _install_script(target: Path, content: str) -> None:
    try:
        if target.read_text() == content and os.access(target, os.X_OK):
            return
    except OSError:
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.replace(tmp, target)
    except OSError as exc:
        raise VMError(
            f"cannot write the virtiofs helper {target}: {exc.strerror or exc}",
            hint=f"check that {target.parent} is writable",
        ) from exc


def install_virtiofsd_wrappers(
    directory: Path | None = None, real: Path = VIRTIOFSD
) -> VirtiofsdWrappers:
    """Write both virtiofsd wrappers (mode 0755) where missing or outdated.

    Args:
        directory: where; default ``$VIBEBOX_HOME/bin``.
        real: the virtiofsd they run.

    Returns:
        Their paths, for :attr:`DomainSpec.virtiofsd` and :attr:`DomainSpec.virtiofsd_readonly`.
    """
    rw = (
        paths.virtiofsd_readwrite_path()
        if directory is None
        else directory / paths.VIRTIOFSD_READWRITE
    )
    ro = (
        paths.virtiofsd_readonly_path()
        if directory is None
        else directory / paths.VIRTIOFSD_READONLY
    )
    _install_script(rw, virtiofsd_wrapper_script(read_only=False, real=real))
    _install_script(ro, virtiofsd_wrapper_script(read_only=True, real=real))
    return VirtiofsdWrappers(readwrite=rw, readonly=ro)


def install_readonly_virtiofsd(path: Path | None = None, real: Path = VIRTIOFSD) -> Path:
    """Install both wrappers (in ``path``'s directory) and return the read-only one.

    Kept for callers written before :func:`install_virtiofsd_wrappers`; given this path as
    :attr:`DomainSpec.virtiofsd_readonly`, read-write shares use the read-write wrapper next to
    it as well.
    """
    return install_virtiofsd_wrappers(path.parent if path is not None else None, real).readonly


# --------------------------------------------------------------------------- reading XML back


def parse_network_subnets(xml: str) -> list[ipaddress.IPv4Network]:
    """Return the IPv4 subnets a ``<network>`` XML document declares."""
    found: list[ipaddress.IPv4Network] = []
    root = ET.fromstring(xml)
    for ip in root.iter("ip"):
        if ip.get("family", "ipv4") != "ipv4":
            continue
        address = ip.get("address")
        if not address:
            continue
        mask = ip.get("netmask") or ip.get("prefix") or "24"
        try:
            found.append(ipaddress.IPv4Network(f"{address}/{mask}", strict=False))
        except ValueError:
            continue
    return found


def parse_domain_interface(xml: str) -> tuple[str | None, str | None]:
    """Return the (MAC, network name) of a domain's first network interface."""
    root = ET.fromstring(xml)
    for iface in root.iter("interface"):
        mac = iface.find("mac")
        source = iface.find("source")
        return (
            mac.get("address") if mac is not None else None,
            source.get("network") if source is not None else None,
        )
    return None, None


def parse_domain_filter(xml: str) -> str | None:
    """Return the nwfilter a domain's first network interface references, if any."""
    root = ET.fromstring(xml)
    for iface in root.iter("interface"):
        ref = iface.find("filterref")
        return ref.get("filter") if ref is not None else None
    return None


def parse_console_log(xml: str) -> Path | None:
    """Return the file a domain's serial console is logged to, if any."""
    root = ET.fromstring(xml)
    for serial in root.iter("serial"):
        log = serial.find("log")
        if log is not None and log.get("file"):
            return Path(log.get("file", ""))
        if serial.get("type") == "file":
            source = serial.find("source")
            if source is not None and source.get("path"):
                return Path(source.get("path", ""))
    return None
