"""Address classification: every spelling of a forbidden address is recognised as such."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vibebox_core.network.addresses import (
    HostAddressCache,
    embedded_ipv4,
    forbidden_reason,
    host_addresses,
    host_networks,
)

HOST = frozenset({ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("2001:db8:5::2")})


@pytest.mark.parametrize(
    ("v6", "v4"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # mapped
        ("::ffff:0:127.0.0.1", "127.0.0.1"),  # SIIT translated
        ("::127.0.0.1", "127.0.0.1"),  # compatible
        ("::10.213.0.2", "10.213.0.2"),
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known
        ("64:ff9b::169.254.169.254", "169.254.169.254"),
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4
        ("2002:a9fe:a9fe:1::5", "169.254.169.254"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo client (obfuscated)
        ("2001:0:4136:e378:8000:63bf:f52a:fffd", "10.213.0.2"),
    ],
)
def test_embedded_ipv4(v6: str, v4: str) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(v6)) == ipaddress.IPv4Address(v4)


@pytest.mark.parametrize("v6", ["::", "::1", "2001:db8::1", "fe80::1", "2606:4700::1111"])
def test_no_embedded_ipv4(v6: str) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(v6)) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # loopback, every spelling
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("2130706433", "loopback"),
        ("0x7f.1", "loopback"),
        ("017700000001", "loopback"),
        ("::1", "loopback"),
        ("[::1]", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("2002:7f00:1::1", "loopback"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
        # unspecified, multicast, broadcast, reserved
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        # link-local and metadata
        ("169.254.0.1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("2852039166", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:a9fe:a9fe::", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("[fe80::1%25eth0]", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("64:ff9b:1::1", "NAT64"),
        # the session pool: other guests and gateways
        ("10.213.0.1", "session range"),
        ("10.213.200.2", "session range"),
        ("::ffff:10.213.4.2", "session range"),
        ("64:ff9b::10.213.4.1", "session range"),
        ("2002:0ad5:0402::", "session range"),
        # the host's own addresses
        ("192.0.2.2", "the host itself"),
        ("::ffff:192.0.2.2", "the host itself"),
        ("2002:c000:0202::1", "the host itself"),
        ("2001:db8:5::2", "the host itself"),
        # not an address at all
        ("example.com", "not an IP address"),
    ],
)
def test_forbidden(address: str, reason: str) -> None:
    found = forbidden_reason(address, host=HOST)
    assert found is not None and reason in found, (address, found)


@pytest.mark.parametrize(
    "address",
    [
        "198.51.100.7",
        "93.184.216.34",
        "10.77.0.10",
        "10.212.255.255",
        "10.214.0.1",
        "192.168.1.10",
        "100.64.0.1",
        "2001:db8::1",
        "2606:4700::1111",
        "::ffff:198.51.100.7",
        "64:ff9b::198.51.100.7",
        "fd12:3456::1",
    ],
)
def test_allowed(address: str) -> None:
    assert forbidden_reason(address, host=HOST) is None
    assert forbidden_reason(ipaddress.ip_address(address), host=HOST) is None


def test_pool_is_a_parameter() -> None:
    pool = ipaddress.IPv4Network("10.99.0.0/16")
    assert forbidden_reason("10.213.0.2", pool=pool) is None
    reason = forbidden_reason("10.99.3.2", pool=pool)
    assert reason is not None and "session range" in reason


def test_host_addresses_from_proc(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     +-- 10.213.4.0/24 2 0 2\n        |-- 10.213.4.0\n           /24 link UNICAST\n"
        "        |-- 10.213.4.1\n           /32 host LOCAL\n"
        "Local:\n  +-- 127.0.0.0/8 2 0 2\n     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 10.213.4.1\n        /32 host LOCAL\n"
    )
    (tmp_path / "if_inet6").write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe8000000000000000fc00fffe000001 02 40 20 80     eth0\n"
    )
    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "vbx1\t0004D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert host_addresses(tmp_path) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "10.213.4.1", "::1", "fe80::fc:ff:fe00:1")
    }
    assert host_networks(tmp_path) == [
        ipaddress.IPv4Network("10.0.2.0/24"),
        ipaddress.IPv4Network("10.213.4.0/24"),
    ]
    assert host_addresses(tmp_path / "missing") == frozenset()
    assert host_networks(tmp_path / "missing") == []


def test_host_addresses_of_this_machine_include_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in host_addresses()


def test_cache_rereads_after_ttl() -> None:
    reads: list[int] = []

    def reader() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        reads.append(1)
        return frozenset({ipaddress.ip_address(f"192.0.2.{len(reads)}")})

    cache = HostAddressCache(ttl=3600, reader=reader)
    assert cache.get() == cache.get() == {ipaddress.ip_address("192.0.2.1")}
    assert len(reads) == 1
    cache.ttl = -1
    assert cache.get() == {ipaddress.ip_address("192.0.2.2")}
