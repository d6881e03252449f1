"""The filtering proxy, on loopback only: a tiny upstream server and an injected resolver."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vibebox_core.config.policy import Policy
from vibebox_core.network.log import tail
from vibebox_core.network.proxy import FilteringProxy, start_proxy


@dataclass
class Upstream:
    port: int
    heads: list[str] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An HTTP server on 127.0.0.1 that answers every request with its request line."""
    state = Upstream(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except asyncio.IncompleteReadError:
            writer.close()
            return
        state.heads.append(head)
        body = f"hello {head.splitlines()[0]}".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


async def fake_resolver(host: str, port: int) -> list[str]:
    if host == "allowed.test" or host.endswith(".allowed.test") or host == "other.test":
        return ["127.0.0.1"]
    raise OSError(f"{host}: no such name")


@dataclass
class Proxy:
    port: int
    log: Path
    proxy: FilteringProxy


async def _start(tmp_path: Path, policy: Policy, **kwargs: object) -> tuple[asyncio.Server, Proxy]:
    log = tmp_path / "network.log"
    options: dict[str, object] = {
        "resolver": fake_resolver,
        "allow_host_local": True,
        "connect_ports": None,  # the upstream listens on a random port
        "http_ports": None,
    } | kwargs
    proxy = FilteringProxy(policy, log, **options)  # type: ignore[arg-type]
    server = await proxy.start("127.0.0.1", 0)
    return server, Proxy(server.sockets[0].getsockname()[1], log, proxy)


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    server, state = await _start(tmp_path, Policy("allowlist", ("allowed.test",)))
    async with server:
        yield state


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


async def status_line(port: int, data: bytes) -> bytes:
    """Send a request, return the reply's head (for tunnels that stay open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return head


def logged(log: Path) -> list[tuple[str, str, int | None, str]]:
    return [(e.source, e.host, e.port, e.verdict) for e in tail(log, 100)]


async def test_allowed_http_is_forwarded_in_origin_form(proxy: Proxy, upstream: Upstream) -> None:
    target = f"allowed.test:{upstream.port}"
    reply = await exchange(
        proxy.port,
        f"GET http://{target}/path?q=1 HTTP/1.1\r\nHost: {target}\r\n"
        "Proxy-Connection: keep-alive\r\nUser-Agent: t\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert reply.endswith(b"hello GET /path?q=1 HTTP/1.1")
    head = upstream.heads[0]
    assert f"Host: {target}\r\n" in head
    assert "User-Agent: t\r\n" in head
    assert "Connection: close\r\n" in head
    assert "Proxy-Connection" not in head
    assert logged(proxy.log) == [("proxy", "allowed.test", upstream.port, "allowed")]


async def test_http_without_host_header_gets_one(proxy: Proxy, upstream: Upstream) -> None:
    target = f"www.allowed.test:{upstream.port}"
    reply = await exchange(proxy.port, f"GET http://{target}/ HTTP/1.0\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert f"Host: {target}\r\n" in upstream.heads[0]


async def test_allowed_connect_tunnels(proxy: Proxy, upstream: Upstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    target = f"allowed.test:{upstream.port}"
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert status == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"GET /tunnelled HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert reply.endswith(b"hello GET /tunnelled HTTP/1.1")
    assert logged(proxy.log) == [("proxy", "allowed.test", upstream.port, "allowed")]


@pytest.mark.parametrize("method", ["GET", "CONNECT"])
async def test_unlisted_host_is_refused_403(proxy: Proxy, upstream: Upstream, method: str) -> None:
    target = f"unlisted.test:{upstream.port}"
    line = f"GET http://{target}/ HTTP/1.1" if method == "GET" else f"CONNECT {target} HTTP/1.1"
    reply = await exchange(proxy.port, f"{line}\r\nHost: {target}\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden")
    assert body == b"vibebox: unlisted.test is blocked: not in the allowlist\n"
    assert upstream.heads == []
    assert logged(proxy.log) == [("proxy", "unlisted.test", upstream.port, "blocked")]


async def test_host_header_must_agree_with_target(proxy: Proxy, upstream: Upstream) -> None:
    target = f"allowed.test:{upstream.port}"
    reply = await exchange(
        proxy.port, f"GET http://{target}/ HTTP/1.1\r\nHost: other.test\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"disagrees" in reply
    reply = await exchange(
        proxy.port,
        f"CONNECT {target} HTTP/1.1\r\nHost: other.test:{upstream.port}\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert upstream.heads == []
    assert logged(proxy.log) == [
        ("proxy", "allowed.test", upstream.port, "blocked"),
        ("proxy", "allowed.test", upstream.port, "blocked"),
    ]


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", b"400"),
        (b"GET https://allowed.test/ HTTP/1.1\r\n\r\n", b"400"),
        (b"CONNECT allowed.test HTTP/1.1\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/2\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/1.1\r\n bad: fold\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
        (b"GET http://u:p@allowed.test/ HTTP/1.1\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
    ],
)
async def test_malformed_requests(proxy: Proxy, request_head: bytes, status: bytes) -> None:
    reply = await exchange(proxy.port, request_head)
    assert reply.split(b" ")[1] == status, reply[:200]


async def test_unresolvable_allowed_name_is_502(proxy: Proxy, upstream: Upstream) -> None:
    proxy.proxy.policy = Policy("allowlist", ("allowed.test", "gone.test"))
    reply = await exchange(
        proxy.port, f"CONNECT gone.test:{upstream.port} HTTP/1.1\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert b"does not resolve" in reply


async def test_policy_can_be_swapped_while_running(proxy: Proxy, upstream: Upstream) -> None:
    request = f"CONNECT other.test:{upstream.port} HTTP/1.1\r\n\r\n".encode()
    assert (await status_line(proxy.port, request)).startswith(b"HTTP/1.1 403")
    proxy.proxy.policy = Policy("allowlist", ("other.test",))
    assert (await status_line(proxy.port, request)).startswith(b"HTTP/1.1 200")


async def test_blocklist_refuses_entry_and_subdomain(tmp_path: Path, upstream: Upstream) -> None:
    server, state = await _start(tmp_path, Policy("blocklist", ("allowed.test",)))
    async with server:
        for host in ("allowed.test", "sub.allowed.test"):
            reply = await exchange(
                state.port, f"GET http://{host}:{upstream.port}/ HTTP/1.1\r\n\r\n".encode()
            )
            assert reply.startswith(b"HTTP/1.1 403"), reply
            assert b"blocklist entry allowed.test" in reply
        reply = await exchange(
            state.port, f"GET http://other.test:{upstream.port}/ HTTP/1.1\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 200")
    assert [v for *_, v in logged(state.log)] == ["blocked", "blocked", "allowed"]


async def test_names_resolving_to_host_loopback_are_refused(
    tmp_path: Path, upstream: Upstream
) -> None:
    log = tmp_path / "network.log"
    server = await start_proxy(
        "127.0.0.1",
        0,
        Policy("blocklist", ()),
        log,
        resolver=fake_resolver,
        connect_ports=None,
        http_ports=None,
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        for target in (f"allowed.test:{upstream.port}", f"127.0.0.1:{upstream.port}"):
            reply = await exchange(port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert reply.startswith(b"HTTP/1.1 403"), reply
            assert b"loopback" in reply
    assert upstream.heads == []


async def test_slow_client_gets_408(tmp_path: Path) -> None:
    server, state = await _start(tmp_path, Policy("allowlist", ()), head_timeout=0.2)
    async with server:
        reply = await exchange(state.port, b"GET http://allowed.test/ HTTP/1.1\r\n")
    assert reply.startswith(b"HTTP/1.1 408")


async def test_narrowed_policy_cuts_open_tunnels(proxy: Proxy, upstream: Upstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"CONNECT allowed.test:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 200")
    proxy.proxy.policy = Policy("allowlist", ("other.test",))
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the proxy hung up
    writer.close()


# --- hardening: heads, ports, addresses -------------------------------------------------------


@pytest.mark.parametrize(
    ("request_head", "reason"),
    [
        (b"GET http://allowed.test/ HTTP/1.1\nHost: allowed.test\n\n", b"bare LF"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\n\r\n", b"bare LF"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", b"bare LF or CR"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: a\x00b\r\n\r\n", b"NUL"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: a\x1bb\r\n\r\n", b"control character"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n", b"folding"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nBad Name: a\r\n\r\n", b"malformed header"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX : a\r\n\r\n", b"malformed header"),
        (b"\r\n", b"empty request"),
        (b"GET  http://allowed.test/ HTTP/1.1\r\n\r\n", b"malformed request line"),
        (b"GET http://allowed.test/ HTTP/1.2\r\n\r\n", b"malformed request line"),
        (b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", b"more than one Host"),
        (b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n", b"disagrees"),
        (b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:444\r\n\r\n", b"disagrees"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test:81\r\n\r\n", b"disagrees"),
        (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", b"brackets"),
        (b"CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", b"bad host"),
        (b"CONNECT [allowed.test]:443 HTTP/1.1\r\n\r\n", b"only an IPv6"),
        (b"CONNECT allowed.test:0443x HTTP/1.1\r\n\r\n", b"bad port"),
        (b"CONNECT allowed.test: HTTP/1.1\r\n\r\n", b"bad port"),
    ],
)
async def test_ambiguous_heads_are_refused(
    proxy: Proxy, upstream: Upstream, request_head: bytes, reason: bytes
) -> None:
    reply = await exchange(proxy.port, request_head)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request"), reply[:200]
    assert reason in reply, reply
    assert upstream.heads == []


async def test_over_long_head_of_many_short_lines_is_431(proxy: Proxy) -> None:
    lines = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 300) for i in range(120))
    reply = await exchange(proxy.port, b"GET http://allowed.test/ HTTP/1.1\r\n" + lines + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]


async def _hardened(
    tmp_path: Path, policy: Policy, resolver: object = None
) -> tuple[asyncio.Server, Proxy]:
    """A proxy with the production checks: ports 443/80 only, every forbidden address."""
    return await _start(
        tmp_path,
        policy,
        allow_host_local=False,
        connect_ports=(443,),
        http_ports=(80,),
        resolver=resolver or fake_resolver,
        host_addresses=lambda: frozenset({ipaddress.ip_address("192.0.2.2")}),
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("[::ffff:127.0.0.1]:443", b"loopback"),
        ("[::ffff:7f00:1]:443", b"loopback"),
        ("[::1]:443", b"loopback"),
        ("[::127.0.0.1]:443", b"loopback"),
        ("[64:ff9b::127.0.0.1]:443", b"loopback"),
        ("[64:ff9b:1::a00:1]:443", b"NAT64"),
        ("[2002:7f00:1::1]:443", b"loopback"),
        ("[2001:0:4136:e378:8000:63bf:80ff:fffe]:443", b"loopback"),
        ("2130706433:443", b"loopback"),
        ("0x7f.1:443", b"loopback"),
        ("017700000001:443", b"loopback"),
        ("127.1:443", b"loopback"),
        ("0:443", b"unspecified"),
        ("[::]:443", b"unspecified"),
        ("169.254.169.254:443", b"metadata"),
        ("[fe80::1]:443", b"link-local"),
        ("224.0.0.1:443", b"multicast"),
        ("255.255.255.255:443", b"broadcast"),
        ("10.213.7.2:443", b"session range"),
        ("10.213.7.1:443", b"session range"),
        ("[::ffff:10.213.7.2]:443", b"session range"),
        ("192.0.2.2:443", b"the host itself"),
        ("[::ffff:192.0.2.2]:443", b"the host itself"),
    ],
)
async def test_connect_to_forbidden_addresses_is_refused(
    tmp_path: Path, target: str, reason: bytes
) -> None:
    server, state = await _hardened(tmp_path, Policy("blocklist", ()))
    async with server:
        reply = await exchange(state.port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 403"), reply
    assert reason in reply, reply
    assert [v for *_, v in logged(state.log)] == ["blocked"]


async def test_only_the_policy_ports_are_reachable(tmp_path: Path) -> None:
    server, state = await _hardened(tmp_path, Policy("blocklist", ()))
    async with server:
        reply = await exchange(state.port, b"CONNECT other.test:22 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403") and b"port 22 is not allowed (only 443)" in reply
        reply = await exchange(state.port, b"CONNECT 10.213.7.2:22 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403"), reply
        reply = await exchange(state.port, b"GET http://other.test:8080/ HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403") and b"port 8080 is not allowed (only 80)" in reply
    assert logged(state.log) == [
        ("proxy", "other.test", 22, "blocked"),
        ("proxy", "10.213.7.2", 22, "blocked"),
        ("proxy", "other.test", 8080, "blocked"),
    ]


async def test_a_name_resolving_to_a_forbidden_address_is_refused(tmp_path: Path) -> None:
    """Rebinding: a listed name whose answer includes loopback or a session is refused."""
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return {
            "loop.allowed.test": ["198.51.100.7", "127.0.0.1"],
            "mapped.allowed.test": ["::ffff:127.0.0.1"],
            "pool.allowed.test": ["10.213.9.2"],
            "self.allowed.test": ["192.0.2.2"],
            "junk.allowed.test": ["not-an-address"],
        }[host]

    server, state = await _hardened(tmp_path, Policy("allowlist", ("allowed.test",)), rebinding)
    async with server:
        for name, reason in [
            ("loop", b"loopback"),
            ("mapped", b"loopback"),
            ("pool", b"session range"),
            ("self", b"the host itself"),
            ("junk", b"non-address"),
        ]:
            reply = await exchange(
                state.port, f"CONNECT {name}.allowed.test:443 HTTP/1.1\r\n\r\n".encode()
            )
            assert reply.startswith(b"HTTP/1.1 403"), reply
            assert reason in reply, reply
    # Resolved once per request: the connect never asks the resolver again.
    assert calls == [f"{n}.allowed.test" for n in ("loop", "mapped", "pool", "self", "junk")]


async def test_ip_literals_are_refused_in_allowlist_mode_in_any_spelling(tmp_path: Path) -> None:
    server, state = await _hardened(tmp_path, Policy("allowlist", ("allowed.test",)))
    async with server:
        for target in ("198.51.100.7:443", "3325256711:443", "[2001:db8::1]:443"):
            reply = await exchange(state.port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert reply.startswith(b"HTTP/1.1 403") and b"IP addresses" in reply, reply
    assert [h for _, h, _, _ in logged(state.log)] == [
        "198.51.100.7",
        "198.51.100.7",
        "2001:db8::1",
    ]
