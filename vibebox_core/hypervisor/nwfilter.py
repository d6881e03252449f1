"""The libvirt nwfilter that fences a session's guest on the host side of its interface.

The guest has root, so the fence sits on the host (SECURITY.md, "Against root in the guest:
network"): libvirt applies it to the VM's tap device, in both network modes. Two layers, both
built here from the session's fixed addresses:

* **Layer 2 (ebtables)**, stateless: the stock anti-spoofing filters (``no-mac-spoofing``,
  ``no-ip-spoofing``, ``no-arp-spoofing``, ``allow-dhcp-server``) pinned to the guest's fixed
  MAC and IPv4 and the gateway as DHCP server; ARP; IPv4 to the gateway only on DHCP, DNS and
  the proxy port (plus the replies of the host's SSH session); nothing else reaches the host.
  Every other frame is dropped — IPv6 included, so no IPv6 route (link-local, SLAAC, a
  guest-configured address) can get around the IPv4 rules.
* **Layer 3 (iptables, connection state)**: the same services with ``state`` matching, so
  the guest may *open* connections only to DHCP/DNS/proxy on its gateway, and the host's SSH
  connection to the guest (port 22) is the only one opened from outside; the guest's packets
  from port 22 pass only as part of that ESTABLISHED connection (a guest "reply" from port 22
  to any other host port is a NEW connection and is dropped).

Allowlist mode stops there (its network has no route out). Blocklist mode keeps NAT egress
but first drops, at both layers, everything the guest must not reach through the host:
the session pool ``10.213.0.0/16`` (other sessions' guests and gateways; its own gateway only
on the services above), link-local ``169.254.0.0/16`` (metadata), loopback, ``0.0.0.0/8``,
multicast, broadcast/reserved ``240.0.0.0/4``, other metadata addresses, and the host's own
networks: every address of the host and every directly connected IPv4 network (its LANs and
other bridges), as they are when the filter is defined.

The iptables layer needs ``br_netfilter`` (bridged frames passed to iptables); the ebtables
layer holds without it, see :func:`bridge_netfilter_problem`.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from vibebox_core.hypervisor.network_xml import SUBNET_POOL

GUEST_SSH_PORT = 22

#: Cloud metadata services outside the link-local range.
METADATA_ADDRESSES: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack (also link-local)
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)

#: What blocklist mode always denies (besides the host's own networks, found at define time).
BLOCKLIST_DENIED: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        str(SUBNET_POOL),
        "169.254.0.0/16",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
) + tuple(ipaddress.IPv4Network(f"{a}/32") for a in METADATA_ADDRESSES if a.version == 4)

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def nwfilter_uuid(session_id: str) -> str:
    """The filter's UUID, derived from the session id so a redefinition keeps it.

    libvirt refuses to redefine a filter under a name it knows with another UUID ("already
    exists with uuid"); :meth:`LibvirtHypervisor.define_nwfilter` also keeps the UUID of a
    filter defined before this derivation existed.
    """
    return str(uuid.uuid5(uuid.UUID(session_id.strip().lower()), "vibebox-nwfilter"))


@dataclass(frozen=True)
class FenceSpec:
    """Everything one session's filter is built from.

    Attributes:
        name: the filter's name (:func:`~vibebox_core.hypervisor.names.nwfilter_name`).
        uuid: its UUID (:func:`nwfilter_uuid`).
        mode: ``"allowlist"`` (gateway services only) or ``"blocklist"`` (also NAT egress).
        gateway: the host's address on the session network.
        guest_ip: the guest's fixed IPv4 (its DHCP host entry).
        mac: the guest NIC's MAC.
        proxy_port: the filtering proxy's port on the gateway.
        dns: allow DNS (UDP and TCP 53) to the gateway.
        ssh_port: the guest port the host's SSH connects to.
        ssh_client_ports: the host's ephemeral port range (``ip_local_port_range``): the
            layer-2 rule for the guest's SSH replies admits only those destination ports,
            so even without the iptables layer a "reply" cannot reach a host service.
        denied: blocklist only: extra IPv4 networks to drop (the host's own networks and
            addresses; :data:`BLOCKLIST_DENIED` is always added).
    """

    name: str
    uuid: str
    mode: str
    gateway: ipaddress.IPv4Address
    guest_ip: ipaddress.IPv4Address
    mac: str
    proxy_port: int
    dns: bool = True
    ssh_port: int = GUEST_SSH_PORT
    ssh_client_ports: tuple[int, int] = (1024, 65535)
    denied: tuple[ipaddress.IPv4Network, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid nwfilter name {self.name!r}")
        uuid.UUID(self.uuid)
        if self.mode not in ("allowlist", "blocklist"):
            raise ValueError(f"unknown network mode {self.mode!r}")
        if not _MAC.match(self.mac):
            raise ValueError(f"malformed MAC address {self.mac!r}")
        for port in (self.proxy_port, self.ssh_port, *self.ssh_client_ports):
            if not 0 < port < 65536:
                raise ValueError(f"port out of range: {port}")
        if self.ssh_client_ports[0] > self.ssh_client_ports[1]:
            raise ValueError(f"empty port range {self.ssh_client_ports}")
        object.__setattr__(self, "gateway", ipaddress.IPv4Address(str(self.gateway)))
        object.__setattr__(self, "guest_ip", ipaddress.IPv4Address(str(self.guest_ip)))


def _quote(value: object) -> str:
    return "'" + escape(str(value), {"'": "&apos;", '"': "&quot;"}) + "'"


def _attrs(**values: object) -> str:
    return " ".join(f"{key}={_quote(value)}" for key, value in values.items())


def _rule(
    action: str,
    direction: str,
    priority: int,
    tag: str = "",
    *,
    statematch: bool = True,
    **match: object,
) -> list[str]:
    rule = {"action": action, "direction": direction, "priority": priority}
    if not statematch:  # no automatic connection-state matching (DHCP is broadcast)
        rule["statematch"] = "false"
    head = f"  <rule {_attrs(**rule)}"
    if not tag:
        return [head + "/>"]
    return [head + ">", f"    <{tag} {_attrs(**match)}/>".replace(" />", "/>"), "  </rule>"]


def _filterref(name: str, **params: str) -> list[str]:
    if not params:
        return [f"  <filterref filter={_quote(name)}/>"]
    return (
        [f"  <filterref filter={_quote(name)}>"]
        + [f"    <parameter {_attrs(name=k, value=v)}/>" for k, v in params.items()]
        + ["  </filterref>"]
    )


def _services(spec: FenceSpec) -> list[tuple[str, int]]:
    """(protocol, port) the guest may open on its gateway."""
    services = [("tcp", spec.proxy_port)]
    if spec.dns:
        services = [("udp", 53), ("tcp", 53), *services]
    return services


def nwfilter_xml(spec: FenceSpec) -> str:
    """Build the ``<filter>`` for ``virNWFilterDefineXML`` (see the module docstring).

    The domain's ``<interface>`` references it with ``<filterref filter='NAME'/>``; the
    guest's addresses are parameters of the stock filters it includes, so the domain needs
    none.
    """
    gw, ip, mac = str(spec.gateway), str(spec.guest_ip), spec.mac
    lines = [
        f"<filter {_attrs(name=spec.name, chain='root')}>",
        f"  <uuid>{spec.uuid}</uuid>",
        f"  <!-- vibebox {spec.mode} fence: the host answers only DHCP, DNS and the proxy -->",
        *_filterref("no-mac-spoofing", MAC=mac),
        *_filterref("no-ip-spoofing", IP=ip),
        *_filterref("no-arp-spoofing", IP=ip, MAC=mac),
        *_filterref("allow-dhcp-server", DHCPSERVER=gw),
        *_rule("accept", "inout", -500, "mac", protocolid="arp"),
    ]

    # Layer 2 (ebtables, stateless): IPv4 to and from the gateway, only these services.
    l2: list[str] = []
    l2 += _rule("accept", "out", 100, "ip", protocol="udp", dstipaddr=gw, dstportstart=67)
    for proto, port in _services(spec):
        l2 += _rule("accept", "out", 110, "ip", protocol=proto, dstipaddr=gw, dstportstart=port)
        l2 += _rule("accept", "in", 110, "ip", protocol=proto, srcipaddr=gw, srcportstart=port)
    ssh = spec.ssh_port
    low, high = spec.ssh_client_ports
    l2 += _rule(
        "accept",
        "in",
        120,
        "ip",
        protocol="tcp",
        srcipaddr=gw,
        srcportstart=low,
        srcportend=high,
        dstportstart=ssh,
    )
    l2 += _rule(
        "accept",
        "out",
        120,
        "ip",
        protocol="tcp",
        dstipaddr=gw,
        srcportstart=ssh,
        dstportstart=low,
        dstportend=high,
    )
    if spec.mode == "blocklist":
        l2 += _rule("drop", "out", 130, "ip", dstipaddr=gw)
        for net in _denied(spec):
            l2 += _rule(
                "drop", "out", 140, "ip", dstipaddr=net.network_address, dstipmask=net.prefixlen
            )
        l2 += _rule("accept", "out", 150, "ip")
        l2 += _rule("accept", "in", 150, "ip")

    # Layer 3 (iptables, with connection state): who may open what.
    l3: list[str] = []
    l3 += _rule("accept", "out", 200, "udp", statematch=False, srcportstart=68, dstportstart=67)
    l3 += _rule("accept", "in", 200, "udp", statematch=False, srcportstart=67, dstportstart=68)
    for proto, port in _services(spec):
        l3 += _rule(
            "accept", "out", 210, proto, dstipaddr=gw, dstportstart=port, state="NEW,ESTABLISHED"
        )
        l3 += _rule(
            "accept", "in", 210, proto, srcipaddr=gw, srcportstart=port, state="ESTABLISHED"
        )
    l3 += _rule("accept", "in", 220, "tcp", srcipaddr=gw, dstportstart=ssh, state="NEW,ESTABLISHED")
    l3 += _rule("accept", "out", 220, "tcp", dstipaddr=gw, srcportstart=ssh, state="ESTABLISHED")
    if spec.mode == "blocklist":
        l3 += _rule("drop", "out", 230, "all", dstipaddr=gw)
        for net in _denied(spec):
            l3 += _rule(
                "drop", "out", 240, "all", dstipaddr=net.network_address, dstipmask=net.prefixlen
            )
        l3 += _rule("accept", "out", 250, "all", state="NEW,ESTABLISHED,RELATED")
        l3 += _rule("accept", "in", 250, "all", state="ESTABLISHED,RELATED")

    lines += l2 + l3
    # The last word, at both layers: everything else is dropped, in both directions.
    lines += _rule("drop", "inout", 1000, "all")
    lines += _rule("drop", "inout", 1000)
    lines.append("</filter>")
    return "\n".join(lines) + "\n"


def _denied(spec: FenceSpec) -> list[ipaddress.IPv4Network]:
    """Blocklist drops, widest first, duplicates and networks inside another one removed."""
    nets = sorted(
        set(BLOCKLIST_DENIED) | set(spec.denied),
        key=lambda n: (n.prefixlen, int(n.network_address)),
    )
    kept: list[ipaddress.IPv4Network] = []
    for net in nets:
        if not any(net.subnet_of(other) for other in kept):
            kept.append(net)
    return kept


def host_denied(
    addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address],
    networks: Sequence[ipaddress.IPv4Network],
) -> tuple[ipaddress.IPv4Network, ...]:
    """The host's own IPv4 addresses (as /32) and connected networks, for ``FenceSpec.denied``."""
    own = [ipaddress.IPv4Network(f"{a}/32") for a in addresses if a.version == 4]
    return tuple(dict.fromkeys([*networks, *own]))


def local_port_range(
    path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range"),
) -> tuple[int, int]:
    """The host's ephemeral TCP port range (its SSH client connects from one of these)."""
    try:
        low, high = (int(v) for v in path.read_text().split())
    except (OSError, ValueError):
        return (1024, 65535)
    if not 0 < low <= high < 65536:
        return (1024, 65535)
    return (low, high)


def with_uuid(document: str, uuid_text: str) -> str:
    """Return a ``<filter>`` document with its ``<uuid>`` set to ``uuid_text``.

    For redefining a filter libvirt already knows under another UUID.
    """
    canonical = str(uuid.UUID(uuid_text))
    pattern = r"<uuid>[^<]*</uuid>"
    replaced, count = re.subn(pattern, f"<uuid>{canonical}</uuid>", document, count=1)
    if count:
        return replaced
    start = re.search(r"<filter\b[^>]*>", document)
    if start is None:
        raise ValueError("not a <filter> document")
    return document[: start.end()] + f"\n  <uuid>{canonical}</uuid>" + document[start.end() :]


def filter_name(document: str) -> str:
    """The ``name`` of a ``<filter>`` document."""
    name = ET.fromstring(document).get("name")
    if not name:
        raise ValueError("a <filter> document without a name")
    return name


def bridge_netfilter_problem(proc: Path = Path("/proc/sys/net/bridge")) -> str | None:
    """Say why bridged IPv4 would bypass the filter's iptables layer, or None when it cannot.

    libvirt applies the connection-state rules with iptables, which sees bridged frames only
    when ``br_netfilter`` is loaded and ``bridge-nf-call-iptables`` is 1; otherwise libvirt
    only logs a warning and those rules never match.
    """
    try:
        value = (proc / "bridge-nf-call-iptables").read_text().strip()
    except OSError:
        return "the br_netfilter kernel module is not loaded"
    if value != "1":
        return "net.bridge.bridge-nf-call-iptables is 0"
    return None
