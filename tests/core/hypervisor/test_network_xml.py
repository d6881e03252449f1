"""The session network: its subnet, its ``<network>`` XML, and the DNS forwarder."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import names, network_xml

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
SID2 = "019bf290-dddd-7c23-8a1d-0123456789ab"  # same first 8 hex (created in the same minute)
DNSMASQ = "{" + network_xml.DNSMASQ_XMLNS + "}"


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


# --------------------------------------------------------------------------- subnets


def test_pick_subnet_is_derived_from_the_session() -> None:
    first = network_xml.pick_subnet(SID, set())
    assert first == network_xml.pick_subnet(SID, set())
    assert first.prefixlen == 24
    assert first.subnet_of(network_xml.SUBNET_POOL)


def test_pick_subnet_skips_used_and_overlapping_networks() -> None:
    first = network_xml.pick_subnet(SID, set())
    second = network_xml.pick_subnet(SID, {first})
    assert second != first
    assert second.subnet_of(network_xml.SUBNET_POOL)
    # A bigger network that covers the first choice counts as used too.
    covering = ipaddress.IPv4Network(f"{first.network_address}/23", strict=False)
    third = network_xml.pick_subnet(SID, {covering})
    assert not third.overlaps(covering)


def test_pick_subnet_wraps_around_and_fails_when_full() -> None:
    pool = ipaddress.IPv4Network("10.9.0.0/22")  # four /24s
    every = list(pool.subnets(new_prefix=24))
    for free in every:
        used = set(every) - {free}
        assert network_xml.pick_subnet(SID, used, pool=pool) == free
    with pytest.raises(VMError, match="no free /24"):
        network_xml.pick_subnet(SID, set(every), pool=pool)


def test_network_spec_keeps_its_current_subnet() -> None:
    current = ipaddress.IPv4Network("10.213.7.0/24")
    spec = network_xml.NetworkSpec.for_session(
        SID, {ipaddress.IPv4Network("10.1.0.0/16")}, current=current
    )
    assert spec.subnet == current
    moved = network_xml.NetworkSpec.for_session(SID, {current}, current=current)
    assert moved.subnet != current


# --------------------------------------------------------------------------- network XML


def test_nat_network_xml() -> None:
    spec = network_xml.NetworkSpec.for_session(SID, set())
    root = parse(network_xml.network_xml(spec))
    assert root.tag == "network"
    assert root.findtext("name") == names.network_name(SID)
    assert root.findtext("uuid") == names.network_uuid(SID)  # stable, so redefining works
    assert names.network_uuid(SID) not in (SID, names.network_uuid(SID2))
    forward = root.find("forward")
    assert forward is not None and forward.get("mode") == "nat"
    bridge = root.find("bridge")
    assert bridge is not None
    assert bridge.get("name") == spec.bridge and len(spec.bridge) <= 15
    ip = root.find("ip")
    assert ip is not None
    assert ip.get("address") == str(spec.subnet.network_address + 1)
    assert ip.get("netmask") == "255.255.255.0"
    rng = ip.find("dhcp/range")
    assert rng is not None
    assert rng.get("start") == str(spec.subnet.network_address + 2)
    assert rng.get("end") == str(spec.subnet.broadcast_address - 1)
    host = ip.find("dhcp/host")
    assert host is not None
    assert host.get("mac") == names.mac_address(SID)
    assert host.get("ip") == str(spec.guest_ip)
    assert host.get("name") == "vibebox"
    assert root.find("dns") is None  # libvirt's DNS on by default
    assert root.find(f"{DNSMASQ}options") is None
    assert network_xml.parse_network_subnets(network_xml.network_xml(spec)) == [spec.subnet]


def test_isolated_network_has_no_forward() -> None:
    spec = network_xml.NetworkSpec.for_session(SID, set(), isolated=True)
    root = parse(network_xml.network_xml(spec))
    assert root.find("forward") is None
    assert root.find("ip/dhcp/host") is not None


def test_dns_forwarder_uses_dnsmasq_options() -> None:
    spec = network_xml.NetworkSpec.for_session(SID, set(), dns_forwarder="127.0.0.1#5353")
    root = parse(network_xml.network_xml(spec))
    options = root.find(f"{DNSMASQ}options")
    assert options is not None
    values = [o.get("value") for o in options.findall(f"{DNSMASQ}option")]
    assert values == ["no-resolv", "no-hosts", "server=127.0.0.1#5353"]


@pytest.mark.parametrize("bad", ["localhost#53", "127.0.0.1#0", "127.0.0.1#x", "1.2.3.4#70000"])
def test_bad_dns_forwarder_is_refused(bad: str) -> None:
    spec = network_xml.NetworkSpec.for_session(SID, set(), dns_forwarder=bad)
    with pytest.raises(VMError, match="DNS forwarder"):
        network_xml.network_xml(spec)


def test_dns_can_be_disabled_and_extra_options_pass_through() -> None:
    spec = network_xml.NetworkSpec.for_session(
        SID, set(), dns_enabled=False, dnsmasq_options=("log-dhcp",)
    )
    root = parse(network_xml.network_xml(spec))
    dns = root.find("dns")
    assert dns is not None and dns.get("enable") == "no"
    options = root.find(f"{DNSMASQ}options")
    assert options is not None
    assert [o.get("value") for o in options] == ["log-dhcp"]


def test_network_xml_refuses_long_bridge_and_bad_mac() -> None:
    spec = network_xml.NetworkSpec.for_session(SID, set())
    with pytest.raises(VMError, match="longer than 15"):
        network_xml.network_xml(
            network_xml.NetworkSpec(**{**spec.__dict__, "bridge": "vbx0123456789abc"})
        )
    with pytest.raises(VMError, match="MAC"):
        network_xml.network_xml(
            network_xml.NetworkSpec(**{**spec.__dict__, "mac": "52:54:00:zz:00:00"})
        )


ROUTE_TABLE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "vbxleftover1\t0007D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "tun0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
    "garbage line\n"
    "bad\tZZZZ\t0\t0\t0\t0\t0\t00FFFFFF\n"
)


def test_parse_routes_reads_the_kernels_table() -> None:
    assert network_xml.parse_routes(ROUTE_TABLE) == [
        ("eth0", ipaddress.IPv4Network("192.0.2.0/24")),
        ("vbxleftover1", ipaddress.IPv4Network("10.213.7.0/24")),
        ("tun0", ipaddress.IPv4Network("10.0.0.0/8")),
    ]
    assert network_xml.parse_routes("") == []
