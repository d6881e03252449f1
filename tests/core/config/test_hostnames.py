"""Host names as the policy reads them: entries, matching, every spelling of an IP literal."""

from __future__ import annotations

import ipaddress

import pytest

from vibebox_core.config.hostnames import (
    matches,
    normalize_entry,
    parse_inet_aton,
    parse_ip_literal,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("*.Example.COM.", "example.com"),
        ("  pypi.org ", "pypi.org"),
        ("a-b.c0.io", "a-b.c0.io"),
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_entry(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://example.com", "scheme"),
        ("example.com/path", "path"),
        ("example.com:443", "ports"),
        ("10.0.0.1", "IP"),
        ("::1", "ports and IP"),
        ("foo.*.com", "wildcard"),
        ("", "empty"),
        ("-bad.com", "not a valid"),
        ("a..b", "not a valid"),
        ("x" * 64 + ".com", "not a valid"),
    ],
)
def test_normalize_refuses(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_entry(raw)


def test_matches_domain_and_subdomains_only() -> None:
    entries = ("example.com",)
    assert matches("example.com", entries)
    assert matches("API.Example.com.", entries)
    assert not matches("badexample.com", entries)
    assert not matches("example.com.evil.net", entries)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0177.0x0.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3325256711", "198.51.100.7"),
        ("10.213.65535", "10.213.255.255"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_inet_aton_spellings(text: str, expected: str) -> None:
    assert parse_ip_literal(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "1.16777216",
        "4294967296",
        "08",  # not octal
        "0x1g",
        "1..2",
        "",
        "[]",
        "1.2.3.-4",
        "::g",
        "[example.com]",
    ],
)
def test_not_literals(text: str) -> None:
    assert parse_ip_literal(text) is None


def test_ipv6_spellings() -> None:
    assert parse_ip_literal("[::1]") == ipaddress.ip_address("::1")
    assert parse_ip_literal("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_ip_literal("[fe80::1%25eth0]") == ipaddress.ip_address("fe80::1")
    assert parse_ip_literal("::FFFF:127.0.0.1") == ipaddress.ip_address("::ffff:7f00:1")
    assert parse_inet_aton("1.2.3.4") == ipaddress.IPv4Address("1.2.3.4")
