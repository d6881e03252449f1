"""The session's libvirt network: its subnet, its ``<network>`` XML, and reading it back.

Each session gets its own NAT network (or an isolated one in allowlist mode, README.md
"Network policy") on a free /24 of ``10.213.0.0/16``, with a fixed DHCP host entry for the
domain's MAC, so the guest always receives the same address. Pure functions of plain data,
unit-tested without a hypervisor.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import names

#: Private range the per-session /24 networks are carved from.
SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")
#: Prefix length of a session's network.
SUBNET_PREFIX = 24
#: Hostname the DHCP host entry hands out (the guest sets the same one itself).
GUEST_HOSTNAME = "vibebox"

DNSMASQ_XMLNS = "http://libvirt.org/schemas/network/dnsmasq/1.0"


def pick_subnet(
    session_id: str,
    used: Iterable[ipaddress.IPv4Network],
    *,
    pool: ipaddress.IPv4Network = SUBNET_POOL,
    prefix: int = SUBNET_PREFIX,
) -> ipaddress.IPv4Network:
    """Pick the session's subnet: a /``prefix`` of ``pool`` that overlaps nothing in ``used``.

    The first candidate is derived from the session id (so a session keeps its subnet when it
    is free), then the following ones in order, wrapping around.

    Raises:
        VMError: every candidate overlaps a used network.
    """
    candidates = list(pool.subnets(new_prefix=prefix))
    taken = list(used)
    start = int.from_bytes(names.session_digest(session_id, "subnet")[:4], "big") % len(candidates)
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise VMError(
        f"no free /{prefix} left in {pool} for the session's network",
        hint="delete sessions you no longer need (`vibebox list`, `vibebox delete <id>`) or "
        "remove other libvirt networks in that range (`virsh net-list --all`)",
    )


@dataclass(frozen=True)
class NetworkSpec:
    """One session's libvirt network.

    Attributes:
        session_id: the session it belongs to.
        name: libvirt network name (:func:`names.network_name`).
        bridge: bridge device, at most 15 characters (:func:`names.bridge_name`).
        subnet: the /24 (or other prefix) the network owns; the gateway is its first address,
            the guest's fixed address its second.
        mac: the guest NIC's MAC, given a fixed DHCP host entry.
        isolated: no ``<forward>``: no route out (allowlist mode, README.md "Network policy").
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
            session_id=names.canonical_session_id(session_id),
            name=names.network_name(session_id),
            bridge=names.bridge_name(session_id),
            subnet=subnet,
            mac=names.mac_address(session_id),
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
    if len(spec.bridge) > names.MAX_BRIDGE_NAME:
        raise VMError(
            f"bridge name {spec.bridge!r} is longer than {names.MAX_BRIDGE_NAME} characters"
        )
    if spec.subnet.num_addresses < 4:
        raise VMError(f"subnet {spec.subnet} is too small for a gateway and a guest")
    mac = names.checked_mac(spec.mac)

    ET.register_namespace("dnsmasq", DNSMASQ_XMLNS)
    net = ET.Element("network")
    ET.SubElement(net, "name").text = spec.name
    ET.SubElement(net, "uuid").text = names.network_uuid(spec.session_id)
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


def parse_routes(table: str) -> list[tuple[str, ipaddress.IPv4Network]]:
    """``(interface, network)`` of every IPv4 route in ``table``, the text of
    ``/proc/net/route`` (addresses and masks in hex, in the host's byte order, which is
    little-endian on every host vibebox runs on); the default route (mask 0) is left out, and
    so is a line that does not parse."""
    routes: list[tuple[str, ipaddress.IPv4Network]] = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = int(fields[1], 16).to_bytes(4, "little")
            mask = int(fields[7], 16).to_bytes(4, "little")
            network = ipaddress.IPv4Network(
                (ipaddress.IPv4Address(destination), str(ipaddress.IPv4Address(mask))),
                strict=False,
            )
        except (ValueError, OverflowError):
            continue
        if network.prefixlen:
            routes.append((fields[0], network))
    return routes
