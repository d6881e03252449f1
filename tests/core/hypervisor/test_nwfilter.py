"""The host fence nwfilter: anti-spoofing, gateway services only, state, blocklist denials."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from vibebox_core.errors import NwfilterError
from vibebox_core.hypervisor import nwfilter
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.hypervisor.nwfilter import (
    BLOCKLIST_DENIED,
    FenceSpec,
    bridge_netfilter_problem,
    filter_name,
    host_denied,
    local_port_range,
    nwfilter_uuid,
    nwfilter_xml,
    with_uuid,
)

SESSION = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
GW = "10.213.5.1"
GUEST = "10.213.5.2"
MAC = "52:54:00:12:34:56"

Rule = tuple[str, str, int, str, dict[str, str]]
RuleAttrs = dict[str, str]


def spec(mode: str = "allowlist", **kwargs: Any) -> FenceSpec:
    options: dict[str, Any] = {
        "name": f"vibebox-{SESSION}",
        "uuid": nwfilter_uuid(SESSION),
        "mode": mode,
        "gateway": ipaddress.IPv4Address(GW),
        "guest_ip": ipaddress.IPv4Address(GUEST),
        "mac": MAC,
        "proxy_port": 3128,
        "ssh_client_ports": (32768, 60999),
    } | kwargs
    return FenceSpec(**options)


def rules(xml: str) -> list[Rule]:
    out: list[Rule] = []
    for rule in ET.fromstring(xml).findall("rule"):
        children = list(rule)
        tag = children[0].tag if children else ""
        attrs = dict(children[0].attrib) if children else {}
        action, direction = rule.get("action", ""), rule.get("direction", "")
        out.append((action, direction, int(rule.get("priority", "0")), tag, attrs))
    return out


def statematch_off(xml: str) -> list[RuleAttrs]:
    """The match attributes of the rules that turn libvirt's automatic state matching off."""
    return [
        dict(rule[0].attrib)
        for rule in ET.fromstring(xml).findall("rule")
        if rule.get("statematch") == "false"
    ]


def test_anti_spoofing_uses_the_stock_filters_with_the_guest_addresses() -> None:
    root = ET.fromstring(nwfilter_xml(spec()))
    assert root.get("name") == f"vibebox-{SESSION}" and root.get("chain") == "root"
    assert root.findtext("uuid") == nwfilter_uuid(SESSION)
    refs = {
        f.get("filter"): {p.get("name"): p.get("value") for p in f.findall("parameter")}
        for f in root.findall("filterref")
    }
    assert refs == {
        "no-mac-spoofing": {"MAC": MAC},
        "no-ip-spoofing": {"IP": GUEST},
        "no-arp-spoofing": {"IP": GUEST, "MAC": MAC},
        "allow-dhcp-server": {"DHCPSERVER": GW},
    }


@pytest.mark.parametrize("mode", ["allowlist", "blocklist"])
def test_the_gateway_answers_only_dhcp_dns_and_the_proxy(mode: str) -> None:
    found = rules(nwfilter_xml(spec(mode)))
    # Layer 2 (ebtables <ip>): the only accepted guest packets to the gateway.
    to_gateway = {
        (a["protocol"], a.get("dstportstart"), a.get("srcportstart"))
        for action, direction, _, tag, a in found
        if tag == "ip" and action == "accept" and direction == "out" and a.get("dstipaddr") == GW
    }
    assert to_gateway == {
        ("udp", "67", None),
        ("udp", "53", None),
        ("tcp", "53", None),
        ("tcp", "3128", None),
        ("tcp", "32768", "22"),  # SSH replies, only to the host's ephemeral ports
    }
    ssh_reply = next(
        a
        for action, d, _, tag, a in found
        if tag == "ip" and d == "out" and a.get("srcportstart") == "22"
    )
    assert (ssh_reply["dstportstart"], ssh_reply["dstportend"]) == ("32768", "60999")
    # Layer 3 (iptables, stateful): the guest opens only these; port 22 only ESTABLISHED.
    opened = {
        (tag, a.get("dstportstart"))
        for action, d, _, tag, a in found
        if tag in ("tcp", "udp")
        and action == "accept"
        and d == "out"
        and "NEW" in a.get("state", "")
    }
    assert opened == {("udp", "53"), ("tcp", "53"), ("tcp", "3128")}
    (ssh_out,) = [
        a
        for action, d, _, tag, a in found
        if tag == "tcp" and d == "out" and a.get("srcportstart") == "22"
    ]
    assert ssh_out == {"dstipaddr": GW, "srcportstart": "22", "state": "ESTABLISHED"}
    (ssh_in,) = [
        a
        for action, d, _, tag, a in found
        if tag == "tcp" and d == "in" and a.get("dstportstart") == "22"
    ]
    assert ssh_in["srcipaddr"] == GW and ssh_in["state"] == "NEW,ESTABLISHED"
    # Replies of the gateway's services come back only as ESTABLISHED.
    for _, d, _, tag, a in found:
        if tag in ("tcp", "udp") and d == "in" and a.get("srcportstart") in ("53", "3128"):
            assert a["state"] == "ESTABLISHED", a
    # Unstated rules would get libvirt's automatic state matching: every L3 accept says its
    # state, except DHCP (broadcast), which turns the automatic matching off.
    unstated = statematch_off(nwfilter_xml(spec(mode)))
    assert unstated == [
        {"srcportstart": "68", "dstportstart": "67"},
        {"srcportstart": "67", "dstportstart": "68"},
    ]
    for action, _, _, tag, a in found:
        if tag in ("tcp", "udp", "all") and action == "accept":
            assert "state" in a or a in unstated, a


@pytest.mark.parametrize("mode", ["allowlist", "blocklist"])
def test_everything_else_is_dropped_last_at_both_layers(mode: str) -> None:
    found = rules(nwfilter_xml(spec(mode)))
    last_two = found[-2:]
    assert {(r[0], r[1], r[3], tuple(r[4])) for r in last_two} == {
        ("drop", "inout", "all", ()),
        ("drop", "inout", "", ()),
    }
    assert all(r[2] > max(o[2] for o in found[:-2]) for r in last_two)
    # Nothing accepts IPv6 or another ethertype: the only <mac> accept is ARP.
    accepts = [r for r in found if r[0] == "accept"]
    assert [r[4] for r in accepts if r[3] == "mac"] == [{"protocolid": "arp"}]
    assert not [r for r in accepts if r[3] in ("ipv6", "tcp-ipv6", "udp-ipv6", "all-ipv6", "")]


def test_allowlist_accepts_nothing_beyond_the_gateway() -> None:
    for action, direction, _, tag, a in rules(nwfilter_xml(spec("allowlist"))):
        if action != "accept" or tag not in ("ip", "tcp", "udp", "all"):
            continue
        dhcp = {a.get("srcportstart"), a.get("dstportstart")} == {"67", "68"}
        if dhcp or a.get("dstportstart") == "67":
            continue
        side = "dstipaddr" if direction == "out" else "srcipaddr"
        assert a.get(side) == GW, (direction, tag, a)


def test_blocklist_drops_the_pool_link_local_and_the_host_before_nat() -> None:
    denied = host_denied(
        [ipaddress.ip_address("192.168.1.20"), ipaddress.ip_address("fe80::1")],
        [ipaddress.IPv4Network("192.168.1.0/24"), ipaddress.IPv4Network("10.213.9.0/24")],
    )
    found = rules(nwfilter_xml(spec("blocklist", denied=denied)))
    accept_all = [
        i
        for i, r in enumerate(found)
        if r[0] == "accept"
        and r[1] == "out"
        and r[4].get("state", "").startswith("NEW,ESTABLISHED,RELATED")
    ]
    assert len(accept_all) == 1
    for tag in ("ip", "all"):
        drops = {
            ipaddress.IPv4Network(f"{a['dstipaddr']}/{a.get('dstipmask', '32')}")
            for action, d, _, t, a in found
            if t == tag and action == "drop" and d == "out" and "dstipaddr" in a
        }
        assert ipaddress.IPv4Network(f"{GW}/32") in drops  # the gateway beyond its services
        for net in (
            "10.213.0.0/16",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "0.0.0.0/8",
            "192.168.1.0/24",
            "100.100.100.200/32",
        ):
            assert ipaddress.IPv4Network(net) in drops, (tag, net)
        # 10.213.9.0/24 is inside the pool and 192.168.1.20 inside its LAN: not repeated.
        assert ipaddress.IPv4Network("10.213.9.0/24") not in drops
        assert ipaddress.IPv4Network("192.168.1.20/32") not in drops
    # Each drop comes before the accept of everything else, at its layer.
    for action, d, priority, tag, a in found:
        if action == "drop" and d == "out":
            accept = next(
                r
                for r in found
                if r[0] == "accept"
                and r[1] == "out"
                and r[3] == tag
                and not {"dstipaddr", "dstportstart", "srcportstart"} & set(r[4])
            )
            assert priority < accept[2], (tag, a)
    # From outside, only replies come in (libvirt's NAT answers).
    (inbound,) = [r for r in found if r[0] == "accept" and r[1] == "in" and r[3] == "all"]
    assert inbound[4] == {"state": "ESTABLISHED,RELATED"}


def test_blocklist_always_denies_the_documented_ranges() -> None:
    assert {str(n) for n in BLOCKLIST_DENIED} >= {
        "10.213.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "100.100.100.200/32",
    }


def test_without_dns() -> None:
    xml = nwfilter_xml(spec(dns=False))
    assert "dstportstart='53'" not in xml and 'dstportstart="53"' not in xml
    assert any(a.get("dstportstart") == "3128" for *_, a in rules(xml))


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "bad'name"},
        {"name": "a b"},
        {"uuid": "not-a-uuid"},
        {"mode": "open"},
        {"mac": "52:54:00:12:34"},
        {"mac": "52:54:00:12:34:5g"},
        {"gateway": "not-an-ip"},
        {"guest_ip": "::1"},
        {"proxy_port": 70000},
        {"ssh_client_ports": (60999, 32768)},
    ],
)
def test_spec_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        spec(**bad)


def test_uuid_is_stable_and_kept_on_redefinition() -> None:
    assert nwfilter_uuid(SESSION) == nwfilter_uuid(SESSION.upper())
    assert nwfilter_uuid(SESSION) != nwfilter_uuid("019bf290-cccc-7c23-ba1d-dce7e6d40694")
    xml = nwfilter_xml(spec())
    other = "5efec96b-0e84-4af6-9a4d-cc07c4659867"
    assert ET.fromstring(with_uuid(xml, other)).findtext("uuid") == other
    bare = "<filter name='x' chain='root'>\n  <rule action='drop' direction='inout'/>\n</filter>\n"
    assert ET.fromstring(with_uuid(bare, other)).findtext("uuid") == other
    assert filter_name(xml) == f"vibebox-{SESSION}"
    with pytest.raises(ValueError):
        with_uuid("<network/>", other)


def test_host_probes(tmp_path: Path) -> None:
    assert bridge_netfilter_problem(tmp_path) == "the br_netfilter kernel module is not loaded"
    (tmp_path / "bridge-nf-call-iptables").write_text("0\n")
    assert "is 0" in (bridge_netfilter_problem(tmp_path) or "")
    (tmp_path / "bridge-nf-call-iptables").write_text("1\n")
    assert bridge_netfilter_problem(tmp_path) is None
    (tmp_path / "range").write_text("32768\t60999\n")
    assert local_port_range(tmp_path / "range") == (32768, 60999)
    (tmp_path / "range").write_text("junk\n")
    assert local_port_range(tmp_path / "range") == (1024, 65535)
    assert local_port_range(tmp_path / "missing") == (1024, 65535)


def test_hypervisor_refuses_to_define_a_fence_without_br_netfilter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without br_netfilter the state rules would never match: fail closed, say the fix."""
    monkeypatch.setattr(nwfilter, "bridge_netfilter_problem", lambda: "the module is not loaded")
    hv = LibvirtHypervisor("qemu:///system")

    def no_connection() -> None:
        raise AssertionError("libvirt was asked although the fence cannot work")

    monkeypatch.setattr(hv, "_connection", no_connection)
    with pytest.raises(NwfilterError) as refused:
        hv.define_nwfilter(nwfilter_xml(spec()))
    assert "the module is not loaded" in refused.value.message
    assert "modprobe br_netfilter" in (refused.value.hint or "")
