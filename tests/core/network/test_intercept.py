"""HTTPS interception on loopback: the proxy puts values in place of placeholders, only for
their own hosts, and keeps every other connection a blind tunnel.

The "real" site is a TLS server on 127.0.0.1 whose certificate a test "public" CA signed (the
proxy's upstream context trusts that CA only); the guest-side client trusts only the session CA.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from core.network.tls_site import Site, at_eof, eventually, read_response, start_site

from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import Secret
from vibebox_core.errors import SecretError
from vibebox_core.network.log import NetEvent, tail
from vibebox_core.network.proxy import FilteringProxy
from vibebox_core.network.secrets import SecretVault
from vibebox_core.network.tlsca import SessionCA

VALUE = "ghp-real-value-0123456789"
SECRETS = (
    Secret("GITHUB_TOKEN", ("api.test",), "env:GH"),
    Secret("OTHER_KEY", ("other.test",), "env:OTHER"),
    Secret("BROKEN", ("api.test",), "env:BROKEN"),
)
UNKNOWN = "vbxph_" + "0" * 40


def fake_reader(source: str) -> str:
    if source == "env:BROKEN":
        raise SecretError("the secret source env:BROKEN: the variable is not set")
    return {"env:GH": VALUE, "env:OTHER": "other-value-42"}[source]


async def resolver(host: str, port: int) -> list[str]:
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError(f"{host}: no such name")


@dataclass
class Stack:
    proxy_port: int
    site: Site
    log: Path
    vault: SecretVault
    session_ca: SessionCA
    public_ca: SessionCA
    proxy: FilteringProxy

    def ph(self, name: str) -> str:
        return next(self.vault.placeholder_of(s) for s in SECRETS if s.name == name)

    def events(self) -> list[NetEvent]:
        return tail(self.log, 100)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    public_ca = SessionCA.load_or_create(tmp_path / "public", "public roots")
    session_ca = SessionCA.load_or_create(tmp_path / "secrets" / "s1", "s1")
    site_server, site = await start_site(public_ca.server_context("api.test"))
    vault = SecretVault(SECRETS, b"k" * 32, reader=fake_reader)
    log = tmp_path / "network.log"
    proxy = FilteringProxy(
        Policy("allowlist", ("api.test", "other.test", "blind.test", "plain.test", "bad.test")),
        log,
        resolver=resolver,
        allow_host_local=True,
        connect_ports=None,
        http_ports=None,
        secrets=vault,
        ca=session_ca,
        upstream_tls=ssl.create_default_context(cadata=public_ca.cert_pem.decode()),
    )
    server = await proxy.start("127.0.0.1", 0)
    async with site_server, server:
        yield Stack(
            server.sockets[0].getsockname()[1], site, log, vault, session_ca, public_ca, proxy
        )
        proxy.close_connections()


async def connect(
    stack: Stack, host: str = "api.test", port: int | None = None, *, tls: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT through the proxy, then TLS trusting only the session CA (hostname checked)."""
    port = stack.site.port if port is None else port
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.proxy_port)
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert status == b"HTTP/1.1 200 Connection established\r\n\r\n"
    if tls:
        guest = ssl.create_default_context(cadata=stack.session_ca.cert_pem.decode())
        await writer.start_tls(guest, server_hostname=host)
    return reader, writer


def request(stack: Stack, path: str, *headers: str, host: str = "api.test") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{stack.site.port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_placeholder_is_replaced_in_authorization_and_a_custom_header(stack: Stack) -> None:
    reader, writer = await connect(stack)
    ph = stack.ph("GITHUB_TOKEN")
    writer.write(
        request(
            stack,
            "/user",
            f"Authorization: Bearer {ph}",
            f"X-Api-Key: {ph}",
            "Proxy-Authorization: Basic Zm9v",
            "User-Agent: t",
        )
    )
    head, body = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 200") and body == b"GET /user HTTP/1.1"
    seen = stack.site.heads()[0]
    assert f"Authorization: Bearer {VALUE}\r\n" in seen
    assert f"X-Api-Key: {VALUE}\r\n" in seen
    assert "User-Agent: t\r\n" in seen
    assert "Proxy-Authorization" not in seen and ph not in seen
    reasons = [(e.verdict, e.reason) for e in stack.events()]
    assert ("allowed", "injected GITHUB_TOKEN") in reasons
    assert VALUE not in stack.log.read_text()


async def test_guest_verifies_the_leaf_against_the_session_ca(stack: Stack) -> None:
    _, writer = await connect(stack)
    peer = writer.get_extra_info("ssl_object").getpeercert()
    assert peer["subjectAltName"] == (("DNS", "api.test"),)
    writer.close()
    _, raw_writer = await connect(stack, tls=False)
    guest = ssl.create_default_context(cadata=stack.session_ca.cert_pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError):
        await raw_writer.start_tls(guest, server_hostname="evil.test")
    raw_writer.close()
    public_only = ssl.create_default_context(cadata=stack.public_ca.cert_pem.decode())
    _, other = await connect(stack, tls=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        await other.start_tls(public_only, server_hostname="api.test")
    other.close()

    def refused() -> list[NetEvent]:
        return [e for e in stack.events() if e.reason.startswith("TLS with the guest failed")]

    assert await eventually(lambda: len(refused()) == 2)
    assert all(e.verdict == "blocked" for e in refused())


async def test_keep_alive_serves_two_requests_on_one_upstream_connection(stack: Stack) -> None:
    reader, writer = await connect(stack)
    ph = stack.ph("GITHUB_TOKEN")
    writer.write(request(stack, "/one", f"Authorization: token {ph}"))
    _, first = await read_response(reader)
    writer.write(request(stack, "/two"))
    _, second = await read_response(reader)
    writer.write(request(stack, "/three", "Connection: close"))
    _, third = await read_response(reader)
    assert (first, second, third) == (
        b"GET /one HTTP/1.1",
        b"GET /two HTTP/1.1",
        b"GET /three HTTP/1.1",
    )
    assert await at_eof(reader)
    writer.close()
    assert [number for number, _, _ in stack.site.requests] == [1, 1, 1]
    injected = [e for e in stack.events() if e.reason.startswith("injected")]
    assert len(injected) == 1  # only the request that carried it


async def test_chunked_body_and_trailers_are_forwarded_intact(stack: Stack) -> None:
    reader, writer = await connect(stack)
    body = b"4\r\nWiki\r\n5;name=v\r\npedia\r\n0\r\nX-Check: done\r\n\r\n"
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: api.test:{stack.site.port}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + body
    )
    _, reply = await read_response(reader)
    writer.write(
        f"POST /len HTTP/1.1\r\nHost: api.test:{stack.site.port}\r\n"
        "Content-Length: 5\r\n\r\nhello".encode()
    )
    _, second = await read_response(reader)
    writer.close()
    assert (reply, second) == (b"POST /upload HTTP/1.1", b"POST /len HTTP/1.1")
    assert [raw for _, _, raw in stack.site.requests] == [body, b"hello"]


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: +5",
    ],
)
async def test_ambiguous_framing_is_refused_400(stack: Stack, framing: str) -> None:
    reader, writer = await connect(stack)
    writer.write(
        f"POST / HTTP/1.1\r\nHost: api.test:{stack.site.port}\r\n{framing}\r\n\r\n"
        "0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n".encode()
    )
    head, _ = await read_response(reader)
    assert head.startswith("HTTP/1.1 400")
    assert await at_eof(reader)
    writer.close()
    assert stack.site.requests == []
    assert stack.events()[-1].verdict == "blocked"


async def test_placeholder_of_a_secret_for_another_host_is_refused(stack: Stack) -> None:
    reader, writer = await connect(stack)
    other = stack.ph("OTHER_KEY")
    writer.write(request(stack, "/", f"X-Api-Key: {other}"))
    head, body = await read_response(reader)
    assert head.startswith("HTTP/1.1 403")
    assert body == (
        b"vibebox: the request carries the placeholder of secret OTHER_KEY, "
        b"which is not for api.test; it was not sent\n"
    )
    assert await at_eof(reader)
    writer.close()
    assert stack.site.requests == []
    last = stack.events()[-1]
    assert (last.host, last.verdict) == ("api.test", "blocked")
    assert "OTHER_KEY" in last.reason


@pytest.mark.parametrize("where", ["header", "target"])
async def test_unknown_placeholder_is_refused(stack: Stack, where: str) -> None:
    reader, writer = await connect(stack)
    if where == "header":
        writer.write(request(stack, "/", f"Authorization: Bearer {UNKNOWN}"))
    else:
        writer.write(request(stack, f"/?token={UNKNOWN}"))
    head, body = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 403") and b"unknown secret placeholder" in body
    assert stack.site.requests == []
    assert stack.events()[-1].verdict == "blocked"


async def test_unavailable_secret_answers_502(stack: Stack) -> None:
    reader, writer = await connect(stack)
    writer.write(request(stack, "/", f"Authorization: Bearer {stack.ph('BROKEN')}"))
    head, body = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 502")
    assert body.startswith(b"vibebox: secret BROKEN is unavailable: ")
    assert stack.site.requests == []
    assert stack.events()[-1].verdict == "blocked"


async def test_trace_is_refused_as_it_would_echo_the_values(stack: Stack) -> None:
    reader, writer = await connect(stack)
    ph = stack.ph("GITHUB_TOKEN")
    writer.write(request(stack, "/", f"Authorization: Bearer {ph}").replace(b"GET", b"TRACE", 1))
    head, body = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 405") and b"TRACE" in body
    assert stack.site.requests == []


async def test_host_header_must_name_the_tunnel_host(stack: Stack) -> None:
    reader, writer = await connect(stack)
    ph = stack.ph("GITHUB_TOKEN")
    writer.write(request(stack, "/", f"Authorization: Bearer {ph}", host="evil.test"))
    head, _ = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 400")
    assert stack.site.requests == []


async def test_plain_http_with_a_placeholder_is_refused(stack: Stack) -> None:
    plain, site = await start_site(None)
    async with plain:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.proxy_port)
        target = f"plain.test:{site.port}"
        writer.write(
            f"GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n"
            f"Authorization: Bearer {stack.ph('GITHUB_TOKEN')}\r\n\r\n".encode()
        )
        head, body = await read_response(reader)
        writer.close()
    assert head.startswith("HTTP/1.1 403")
    assert body.startswith(b"vibebox: secrets are only sent over HTTPS")
    assert site.requests == []
    last = stack.events()[-1]
    assert (last.host, last.verdict) == ("plain.test", "blocked")


async def test_connect_head_with_a_placeholder_is_refused(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.proxy_port)
    target = f"blind.test:{stack.site.port}"
    writer.write(
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        f"Proxy-Authorization: Basic {stack.ph('GITHUB_TOKEN')}\r\n\r\n".encode()
    )
    head, _ = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 403")
    assert stack.site.connections == 0


async def test_streaming_response_arrives_unbuffered(stack: Stack) -> None:
    reader, writer = await connect(stack)
    writer.write(request(stack, "/events", f"Authorization: Bearer {stack.ph('GITHUB_TOKEN')}"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert b"text/event-stream" in head
    # The site sends the second event only after the first has reached the guest.
    assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 10) == b"data: one\n\n"
    stack.site.release.set()
    assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 10) == b"data: two\n\n"
    assert await at_eof(reader)
    writer.close()


async def test_untrusted_upstream_certificate_answers_502(stack: Stack, tmp_path: Path) -> None:
    rogue = SessionCA.load_or_create(tmp_path / "rogue", "rogue")
    bad_server, bad = await start_site(rogue.server_context("api.test"))
    async with bad_server:
        reader, writer = await connect(stack, "api.test", bad.port)
        writer.write(request(stack, "/", f"Authorization: Bearer {stack.ph('GITHUB_TOKEN')}"))
        head, body = await read_response(reader)
        writer.close()
    assert head.startswith("HTTP/1.1 502") and b"untrusted certificate" in body
    assert bad.requests == []
    last = stack.events()[-1]
    assert (last.host, last.port, last.verdict) == ("api.test", bad.port, "blocked")
    assert "untrusted certificate" in last.reason


async def test_host_without_secrets_stays_a_blind_tunnel(stack: Stack) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect(stack, "blind.test", port, tls=False)
        # Not TLS, not HTTP, and a placeholder: a tunnel sees none of it.
        payload = bytes(range(256)) + stack.ph("GITHUB_TOKEN").encode() + b"\r\n\r\n"
        writer.write(payload)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == payload
        writer.close()
    assert [(e.host, e.verdict) for e in stack.events()] == [("blind.test", "allowed")]


@pytest.mark.parametrize(
    "body",
    [
        b"4 \r\nWiki\r\n0\r\n\r\n",  # blank after the size
        b"-4\r\nWiki\r\n0\r\n\r\n",
        b"4\r\nWikiXX0\r\n\r\n",  # no CRLF after the data
        b"4\nWiki\r\n0\r\n\r\n",  # bare LF
        b"0\r\nBad Trailer\r\n\r\n",
    ],
)
async def test_broken_chunked_body_is_refused_400(stack: Stack, body: bytes) -> None:
    reader, writer = await connect(stack)
    writer.write(
        f"POST / HTTP/1.1\r\nHost: api.test:{stack.site.port}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + body
    )
    head, _ = await read_response(reader)
    assert head.startswith("HTTP/1.1 400")
    assert await at_eof(reader)
    writer.close()
    assert stack.events()[-1].verdict == "blocked"


async def test_placeholder_in_a_trailer_is_refused(stack: Stack) -> None:
    reader, writer = await connect(stack)
    writer.write(
        f"POST / HTTP/1.1\r\nHost: api.test:{stack.site.port}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n0\r\nX-Key: {stack.ph('OTHER_KEY')}\r\n\r\n".encode()
    )
    head, body = await read_response(reader)
    writer.close()
    assert head.startswith("HTTP/1.1 403") and b"OTHER_KEY" in body


async def test_upgrade_is_relayed_blindly_after_its_head(stack: Stack) -> None:
    reader, writer = await connect(stack)
    writer.write(
        request(
            stack,
            "/ws",
            "Upgrade: echo",
            "Connection: Upgrade",
            f"Authorization: Bearer {stack.ph('GITHUB_TOKEN')}",
        )
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101")
    frames = b"\x81\x05hello not HTTP at all\r\n\r\n"
    writer.write(frames)
    assert await asyncio.wait_for(reader.readexactly(len(frames)), 10) == frames
    writer.close()
    assert f"Authorization: Bearer {VALUE}\r\n" in stack.site.heads()[0]


async def test_a_policy_change_cuts_an_intercepted_session(stack: Stack) -> None:
    reader, writer = await connect(stack)
    writer.write(request(stack, "/before"))
    await read_response(reader)
    stack.proxy.policy = Policy("allowlist", ("other.test",))
    assert await at_eof(reader)
    writer.close()


def test_default_upstream_context_verifies_hosts(tmp_path: Path) -> None:
    proxy = FilteringProxy(Policy("allowlist", ()), tmp_path / "network.log")
    context = proxy.upstream_tls
    assert context is proxy.upstream_tls  # made once
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
