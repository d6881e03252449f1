"""The libvirt ``<domain>`` of a session: its spec, its XML, and reading it back.

Everything here is a function of plain data, so it is unit-tested without a hypervisor; the
libvirt adapter in :mod:`vibebox_core.hypervisor.libvirt` only sends what these functions build.
The domain boots the image's kernel and initrd directly, with virtio disk, network and rng, the
serial console logged to ``.vibebox/`` and the project's virtiofs shares
(:mod:`vibebox_core.hypervisor.virtiofs`) on shared memfd memory (README.md, "Sessions, the VM
and SSH").
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vibebox_core import paths
from vibebox_core.errors import VMError
from vibebox_core.hypervisor import names
from vibebox_core.hypervisor.accelerator import ResolvedAccel
from vibebox_core.hypervisor.virtiofs import VIRTIOFSD, Share

#: Kernel command line for direct kernel boot of the image's ext4 root on the virtio disk.
DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw"

VIBEBOX_XMLNS = "https://github.com/vibebox/vibebox/xmlns/session/1"


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML needs, already resolved (no ``auto`` left).

    Attributes:
        session_id: becomes the domain UUID.
        name: the readable domain name (:func:`names.domain_name`).
        cpus: virtual CPUs.
        memory_mb: guest memory in MiB.
        accel: ``kvm`` or ``tcg`` (:func:`vibebox_core.hypervisor.accelerator.resolve_accel`).
        kernel, initrd: direct kernel boot files from the image.
        disk: the instance qcow2 overlay (the guest's root on ``/dev/vda``).
        console_log: file the serial console is logged to (by virtlogd, as root).
        network: the session network's name.
        mac: the NIC's MAC (:func:`names.mac_address`), matching the network's DHCP host entry.
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
    accel: ResolvedAccel
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
    if not names.valid_tag(tag):
        raise VMError(
            f"virtiofs tag {tag!r} is invalid "
            f"(letters, digits, . _ -; at most {names.MAX_TAG_BYTES})"
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
                hint="pass virtiofs.install_virtiofsd_wrappers().readonly",
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
    session_id = names.canonical_session_id(spec.session_id)
    if spec.accel not in ("kvm", "tcg"):
        raise VMError(f"accel {spec.accel!r} must be resolved to 'kvm' or 'tcg' first")
    if spec.cpus < 1:
        raise VMError(f"cpus = {spec.cpus}: a VM needs at least one CPU")
    if spec.memory_mb < 128:
        raise VMError(f"memory_mb = {spec.memory_mb}: Debian needs at least 128 MiB")
    mac = names.checked_mac(spec.mac)
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
