"""How a session's libvirt network and domain are defined for its policy.

Both modes fence the guest's interface with an nwfilter (:mod:`vibebox_core.hypervisor.nwfilter`);
allowlist mode also isolates the network (no route out). dnsmasq asks only the session's DNS
filter, and the guest's tools are pointed at the filtering proxy, both on the network's
gateway (the host side of the bridge). :func:`plan_network` says all of it at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from vibebox_core.config.policy import Policy
from vibebox_core.hypervisor import names, nwfilter
from vibebox_core.network import addresses

# Where the enforcement listens on the session network's gateway (the host side of the bridge).
# Each session has its own gateway address, so fixed ports never collide between sessions.
PROXY_PORT = 3128
DNS_FILTER_PORT = 5400  # away from dnsmasq (53) and mDNS (5353)


def guest_proxy_env(gateway_ip: str, port: int = PROXY_PORT) -> dict[str, str]:
    """Return the proxy environment for the guest (``guest.json`` "env").

    Both spellings are set because tools disagree on which one they read (curl ignores
    upper-case ``HTTP_PROXY``; others only read upper case).
    """
    url = f"http://{ipaddress.IPv4Address(gateway_ip)}:{port}"
    no_proxy = "localhost,127.0.0.1,::1"
    return {
        "http_proxy": url,
        "https_proxy": url,
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "no_proxy": no_proxy,
        "NO_PROXY": no_proxy,
    }


@dataclass(frozen=True)
class NetworkPlan:
    """How a session's network is defined for its policy.

    Attributes:
        isolated: no ``<forward>`` in the libvirt network (allowlist: no route out).
        dns_forwarder: ``"GATEWAY#PORT"`` for ``NetworkSpec.dns_forwarder``: dnsmasq asks
            only the DNS filter (with ``no-resolv``/``no-hosts``).
        nwfilter: the nwfilter name for ``DomainSpec.nwfilter`` (both modes: the host fence,
            :mod:`vibebox_core.hypervisor.nwfilter`).
        nwfilter_xml: its definition, for ``Hypervisor.define_nwfilter`` before the domain
            is defined.
        guest_env: the proxy environment for ``guest.json`` "env".
        proxy: (address, port) the proxy listens on.
        dns: (address, port) the DNS filter listens on.
    """

    isolated: bool
    dns_forwarder: str
    nwfilter: str | None
    nwfilter_xml: str | None
    guest_env: dict[str, str] = field(default_factory=dict)
    proxy: tuple[str, int] = ("", PROXY_PORT)
    dns: tuple[str, int] = ("", DNS_FILTER_PORT)


def plan_network(
    session_id: str,
    policy: Policy,
    gateway_ip: str | ipaddress.IPv4Address,
    *,
    proxy_port: int = PROXY_PORT,
    dns_port: int = DNS_FILTER_PORT,
    mac: str | None = None,
    host_denied: tuple[ipaddress.IPv4Network, ...] | None = None,
    ssh_client_ports: tuple[int, int] | None = None,
) -> NetworkPlan:
    """Return how to define the session's network and domain for ``policy``.

    Both modes get the host fence (an nwfilter); allowlist mode also an isolated network.

    Args:
        session_id: the session (names the nwfilter, derives its UUID and the guest's MAC).
        policy: the approved policy.
        gateway_ip: the host's address on the session network (``NetworkSpec.gateway``);
            the guest's fixed address is the next one (``NetworkSpec.guest_ip``).
        mac: the guest NIC's MAC (default: ``names.mac_address(session_id)``).
        host_denied: blocklist: the host's own addresses and networks the guest must not
            reach (default: read from this host now).
        ssh_client_ports: the host's ephemeral port range (default: read from this host).
    """
    gateway = ipaddress.IPv4Address(str(gateway_ip))
    allowlist = policy.mode == "allowlist"
    if host_denied is None:
        host_denied = (
            ()
            if allowlist
            else nwfilter.host_denied(addresses.host_addresses(), addresses.host_networks())
        )
    name = names.nwfilter_name(session_id)
    fence = nwfilter.FenceSpec(
        name=name,
        uuid=nwfilter.nwfilter_uuid(session_id),
        mode=policy.mode,
        gateway=gateway,
        guest_ip=gateway + 1,
        mac=(mac or names.mac_address(session_id)).lower(),
        proxy_port=proxy_port,
        ssh_client_ports=ssh_client_ports or nwfilter.local_port_range(),
        denied=host_denied,
    )
    return NetworkPlan(
        isolated=allowlist,
        dns_forwarder=f"{gateway}#{dns_port}",
        nwfilter=name,
        nwfilter_xml=nwfilter.nwfilter_xml(fence),
        guest_env=guest_proxy_env(str(gateway), proxy_port),
        proxy=(str(gateway), proxy_port),
        dns=(str(gateway), dns_port),
    )
