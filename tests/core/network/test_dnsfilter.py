"""The DNS filter, over UDP on 127.0.0.1, with injected upstreams."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from core.network.dns_client import ask, query, rcode

from vibebox_core.config.policy import Policy
from vibebox_core.network import log
from vibebox_core.network.dnsfilter import (
    QTYPE_A,
    QTYPE_AAAA,
    RCODE_FORMERR,
    RCODE_NXDOMAIN,
    RCODE_SERVFAIL,
    DnsFilter,
    DnsFormatError,
    Question,
    SystemUpstream,
    UdpUpstream,
    build_response,
    parse_query,
    resolv_conf_nameserver,
    start_dns_filter,
)


def answers(reply: bytes) -> list[str]:
    """IPv4 addresses of the A answers of a reply made by build_response."""
    count = struct.unpack("!H", reply[6:8])[0]
    question = parse_query(reply[:2] + b"\0\0" + reply[4:])  # parse_query wants a query
    offset = 12 + len(question.raw)
    out = []
    for _ in range(count):
        _, _, _, _, length = struct.unpack("!HHHIH", reply[offset : offset + 12])
        out.append(
            socket.inet_ntop(
                socket.AF_INET if length == 4 else socket.AF_INET6,
                reply[offset + 12 : offset + 12 + length],
            )
        )
        offset += 12 + length
    return out


class StubUpstream:
    """Answers allowed.test with 127.0.0.1; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def query(self, packet: bytes, question: Question) -> bytes:
        self.asked.append(question.name)
        record = struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, 30, 4) + socket.inet_aton("127.0.0.1")
        return build_response(question, 0, [record])


@pytest.fixture
async def stub() -> StubUpstream:
    return StubUpstream()


@pytest.fixture
async def dns(tmp_path: Path, stub: StubUpstream) -> AsyncIterator[DnsFilter]:
    server = await start_dns_filter(
        "127.0.0.1",
        0,
        Policy("allowlist", ("allowed.test",)),
        tmp_path / "network.log",
        upstream=stub,
    )
    yield server
    server.close()


def test_parse_query() -> None:
    q = parse_query(query("WWW.Allowed.Test", QTYPE_AAAA, 7))
    assert (q.id, q.name, q.qtype, q.qclass, q.type_name) == (7, "www.allowed.test", 28, 1, "AAAA")
    for bad in (b"", b"\0" * 11, query("a.test")[:-2], query("a.test")[:14]):
        with pytest.raises(DnsFormatError):
            parse_query(bad)
    response = bytearray(query("a.test"))
    response[2] |= 0x80
    with pytest.raises(DnsFormatError, match="response"):
        parse_query(bytes(response))
    compressed = query("a.test")[:12] + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    with pytest.raises(DnsFormatError, match="compressed"):
        parse_query(compressed)


async def test_listed_name_is_forwarded_and_relayed(dns: DnsFilter, stub: StubUpstream) -> None:
    reply = await ask(dns.address[1], query("www.allowed.test"))
    assert reply[:2] == b"\x12\x34"
    assert rcode(reply) == 0
    assert answers(reply) == ["127.0.0.1"]
    assert stub.asked == ["www.allowed.test"]
    [event] = log.tail(dns.log_path, 10)
    assert (event.source, event.host, event.port, event.verdict) == (
        "dns",
        "www.allowed.test",
        53,
        "allowed",
    )
    assert event.reason == "allowlist entry allowed.test (A)"


async def test_unlisted_name_gets_nxdomain(dns: DnsFilter, stub: StubUpstream) -> None:
    reply = await ask(dns.address[1], query("unlisted.test", QTYPE_AAAA))
    assert rcode(reply) == RCODE_NXDOMAIN
    assert struct.unpack("!HHHH", reply[4:12]) == (1, 0, 0, 0)
    assert parse_query(reply[:2] + b"\0\0" + reply[4:]).name == "unlisted.test"
    assert stub.asked == []
    [event] = log.tail(dns.log_path, 10)
    assert (event.host, event.verdict) == ("unlisted.test", "blocked")


async def test_blocklist_policy_swap(dns: DnsFilter, stub: StubUpstream) -> None:
    dns.policy = Policy("blocklist", ("allowed.test",))
    assert rcode(await ask(dns.address[1], query("sub.allowed.test"))) == RCODE_NXDOMAIN
    assert rcode(await ask(dns.address[1], query("elsewhere.test"))) == 0
    assert stub.asked == ["elsewhere.test"]


async def test_garbage_gets_formerr_and_failures_servfail(tmp_path: Path) -> None:
    class Failing:
        async def query(self, packet: bytes, question: Question) -> bytes:
            raise OSError("down")

    server = await start_dns_filter(
        "127.0.0.1", 0, Policy("blocklist", ()), tmp_path / "n.log", upstream=Failing()
    )
    try:
        bad = query("a.test")[:12] + b"\x05abc"
        assert rcode(await ask(server.address[1], bad)) == RCODE_FORMERR
        assert rcode(await ask(server.address[1], query("a.test"))) == RCODE_SERVFAIL
    finally:
        server.close()


async def test_udp_upstream_relays_bytes(tmp_path: Path) -> None:
    """The filter in front of a UDP resolver stub on loopback passes its answer through."""
    loop = asyncio.get_running_loop()

    class Resolver(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            question = parse_query(data)
            record = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton("10.9.8.7")
            self.transport.sendto(build_response(question, 0, [record]), addr)

    transport, _ = await loop.create_datagram_endpoint(Resolver, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    server = await start_dns_filter(
        "127.0.0.1",
        0,
        Policy("blocklist", ()),
        tmp_path / "n.log",
        upstream=UdpUpstream("127.0.0.1", port),
    )
    try:
        assert answers(await ask(server.address[1], query("x.test"))) == ["10.9.8.7"]
    finally:
        server.close()
        transport.close()


async def test_system_upstream_uses_the_host_resolver() -> None:
    upstream = SystemUpstream()
    packet = query("localhost")
    reply = await upstream.query(packet, parse_query(packet))
    assert "127.0.0.1" in answers(reply)
    packet = query("does-not-exist.invalid")
    reply = await upstream.query(packet, parse_query(packet))
    assert rcode(reply) == RCODE_NXDOMAIN


async def test_system_upstream_sends_other_types_to_the_nameserver(tmp_path: Path) -> None:
    stub = StubUpstream()
    upstream = SystemUpstream(stub)
    mx = query("allowed.test", 15)
    await upstream.query(mx, parse_query(mx))
    assert stub.asked == ["allowed.test"]
    a = query("localhost")
    assert "127.0.0.1" in answers(await upstream.query(a, parse_query(a)))
    assert stub.asked == ["allowed.test"]  # addresses come from getaddrinfo

    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n")
    assert resolv_conf_nameserver(conf) == "127.0.0.53"
    assert resolv_conf_nameserver(tmp_path / "missing") is None
    assert isinstance(SystemUpstream.from_host(conf).other, UdpUpstream)
    assert SystemUpstream.from_host(tmp_path / "missing").other is None


async def test_no_unlisted_name_is_ever_forwarded_upstream(
    dns: DnsFilter, stub: StubUpstream
) -> None:
    """Exfiltration: in allowlist mode nothing about an unlisted name leaves the host."""
    names = [
        "secret-data.unlisted.example",
        "allowed.test.evil.example",  # the entry as a prefix is not the entry
        "xallowed.test",
        "allowed.test-evil.example",
        "2130706433",
        "",
    ]
    for name in names:
        for qtype in (QTYPE_A, QTYPE_AAAA, 16, 15, 33, 255, 65):
            reply = await ask(dns.address[1], query(name, qtype))
            assert rcode(reply) == RCODE_NXDOMAIN, (name, qtype)
    # Another class (CHAOS) of a listed name, and a NOTIFY opcode, are not forwarded either.
    chaos = query("allowed.test")[:-2] + struct.pack("!H", 3)
    assert rcode(await ask(dns.address[1], chaos)) == RCODE_NXDOMAIN
    notify = bytearray(query("allowed.test"))
    notify[2] = (notify[2] & 0x87) | (4 << 3)
    assert rcode(await ask(dns.address[1], bytes(notify))) != 0
    assert stub.asked == []
