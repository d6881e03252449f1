"""The filtering HTTP proxy a session's guest reaches the outside world through.

It runs in the session's supervisor, on the host side of the VM's network (the guest has root,
so nothing inside it can enforce a policy). Plain HTTP requests must use the absolute form
(``GET http://host/path HTTP/1.1``) and carry a ``Host`` header that agrees with it; HTTPS goes
through ``CONNECT host:port`` and is judged by that host name. Every request is judged by the
session's :class:`~vibebox_core.netpolicy.Policy`, logged with :mod:`vibebox_core.netlog`, and
either refused with a status and a one-line reason or connected upstream. The proxy resolves
admitted names itself, so the guest never needs a route or a resolver of its own; name
resolution is injectable so tests run on loopback only.

One request per client connection: after the first request head the bytes are relayed as they
are, to the upstream the policy admitted (exactly what a CONNECT tunnel allows), and the
upstream is asked to close after its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vibebox_core import netlog
from vibebox_core.netpolicy import Policy, Verdict

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``async resolver(host, port) -> [ip, ...]``; raises OSError when the name does not resolve."""

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_LINES = 100
HEAD_TIMEOUT = 15.0
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 600.0
_RELAY_CHUNK = 64 * 1024
_HOP_BY_HOP = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding-proxy",
    "upgrade",
}
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the host's resolver (``/etc/hosts``, then DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_local_reason(address: str) -> str | None:
    """Return why the proxy must not connect to ``address``, or None when it may.

    The proxy runs on the host: a name that resolves to loopback, link-local or an
    unspecified address would let the guest reach services of the host itself.
    """
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return "resolves to a loopback address of the host"
    if ip.is_link_local:
        return "resolves to a link-local address"
    if ip.is_unspecified or ip.is_multicast:
        return "resolves to an address that is not a host"
    return None


class _Refusal(Exception):
    """Answer the client with ``status`` and a one-line ``reason``; log when ``host`` is known."""

    def __init__(self, status: int, reason: str, host: str | None = None, port: int | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.host = host
        self.port = port


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def _parse_head(head: bytes) -> _Request:
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise _Refusal(400, "empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refusal(400, "malformed request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper():
        raise _Refusal(400, "malformed request method")
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise _Refusal(431, f"more than {MAX_HEADER_LINES} header lines")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise _Refusal(400, "malformed header line")
        headers.append((name, value.strip()))
    return _Request(method, target, version, headers)


def _split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` (``[v6]:port`` too); host lower-cased without a trailing dot."""
    host, port_text = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 address")
        host, rest = authority[1:end], authority[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("junk after IPv6 address")
            port_text = rest[1:]
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port {port_text!r}")
        port = int(port_text)
    elif default_port is None:
        raise ValueError("a port is required")
    else:
        port = default_port
    host = host.strip().lower().rstrip(".")
    if not host or any(c in host for c in "/@ \t"):
        raise ValueError("bad host")
    return host, port


def _response(status: int, reason: str) -> bytes:
    body = f"vibebox: {reason}\n".encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode() + body


class FilteringProxy:
    """An HTTP/HTTPS proxy that admits hosts according to a :class:`Policy`.

    Args:
        policy: the session's policy; replace :attr:`policy` to apply an approved change
            to new connections while the proxy runs.
        log_path: the session's network log (``ProjectPaths.network_log``).
        resolver: name resolution for admitted hosts (default: the host's resolver).
        allow_host_local: also connect to loopback/link-local addresses (tests only).
        clients: only serve clients from this network (the session's subnet), so another
            session's guest cannot use this session's proxy; None serves anyone.
        connect_timeout, head_timeout, idle_timeout: seconds.
    """

    def __init__(
        self,
        policy: Policy,
        log_path: Path,
        *,
        resolver: Resolver | None = None,
        allow_host_local: bool = False,
        clients: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._policy = policy
        self._active: dict[asyncio.StreamWriter, str] = {}
        self.log_path = log_path
        self.resolver: Resolver = resolver or system_resolver
        self.allow_host_local = allow_host_local
        self.clients = clients
        self.connect_timeout = connect_timeout
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout

    @property
    def policy(self) -> Policy:
        """The policy new requests are judged by."""
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """Apply a new policy: new requests follow it, open tunnels it blocks are cut."""
        self._policy = policy
        for writer, host in list(self._active.items()):
            if not policy.decide(host).allowed:
                writer.close()

    def close_connections(self) -> None:
        """Cut every open connection (the server itself is closed by its owner)."""
        for writer in list(self._active):
            writer.close()

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port`` (port 0 picks a free one) and return the server."""
        return await asyncio.start_server(
            self._handle, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
        )

    def _log(self, host: str, port: int | None, verdict: Verdict) -> None:
        # A full disk must not take the proxy down; the decision still holds.
        with contextlib.suppress(OSError):
            netlog.append(
                self.log_path,
                netlog.NetEvent("proxy", host, port, verdict.verdict, verdict.reason),
            )

    def _client_allowed(self, writer: asyncio.StreamWriter) -> bool:
        if self.clients is None:
            return True
        peer = writer.get_extra_info("peername")
        try:
            return ipaddress.ip_address(peer[0]) in self.clients
        except (TypeError, ValueError, IndexError):
            return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except _Refusal as refusal:
            if refusal.host is not None:
                self._log(refusal.host, refusal.port, Verdict("blocked", refusal.reason))
            with contextlib.suppress(OSError):
                writer.write(_response(refusal.status, refusal.reason))
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down; this task ends here either way
        finally:
            self._active.pop(writer, None)
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.LimitOverrunError as exc:
            raise _Refusal(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from exc
        except asyncio.IncompleteReadError:
            return  # the client went away before sending a request
        except TimeoutError as exc:
            raise _Refusal(408, "no complete request head in time") from exc
        if not self._client_allowed(writer):
            raise _Refusal(403, "this proxy serves only its own session's guest")
        request = _parse_head(head)
        if request.method == "CONNECT":
            host, port = self._connect_target(request)
            upstream = await self._admit(host, port)
            first = b"HTTP/1.1 200 Connection established\r\n\r\n"
            target = writer
        else:
            host, port, first = self._http_target(request)
            upstream = await self._admit(host, port)
            target = upstream[1]
        self._active[writer] = host
        try:
            target.write(first)
            await target.drain()
        except OSError:
            upstream[1].close()
            raise
        await self._relay(reader, writer, *upstream)

    def _host_header(self, request: _Request, default_port: int | None) -> tuple[str, int] | None:
        values = request.header("host")
        if not values:
            return None
        if len(values) > 1:
            raise _Refusal(400, "more than one Host header")
        try:
            return _split_authority(values[0], default_port)
        except ValueError as exc:
            raise _Refusal(400, f"bad Host header: {exc}") from exc

    def _connect_target(self, request: _Request) -> tuple[str, int]:
        try:
            host, port = _split_authority(request.target, None)
        except ValueError as exc:
            raise _Refusal(400, f"bad CONNECT target {request.target!r}: {exc}") from exc
        stated = self._host_header(request, port)
        if stated is not None and stated[0] != host:
            raise _Refusal(
                400, f"Host header {stated[0]} disagrees with CONNECT {host}", host, port
            )
        if stated is not None and stated[1] != port:
            raise _Refusal(400, "Host header port disagrees with the CONNECT target", host, port)
        return host, port

    def _http_target(self, request: _Request) -> tuple[str, int, bytes]:
        target = request.target
        scheme = target.split(":", 1)[0].lower() if "://" in target else ""
        if scheme == "https":
            raise _Refusal(400, "send https:// requests through CONNECT")
        if scheme != "http":
            raise _Refusal(400, "this is a proxy: the request target must be http://host/...")
        parts = urlsplit(target)
        if "@" in parts.netloc:
            raise _Refusal(400, "user information in the request target is not supported")
        try:
            host, port = _split_authority(parts.netloc, 80)
        except ValueError as exc:
            raise _Refusal(400, f"bad request target: {exc}") from exc
        stated = self._host_header(request, 80)
        if stated is not None and stated != (host, port):
            raise _Refusal(
                400, f"Host header {stated[0]}:{stated[1]} disagrees with the target", host, port
            )
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection_tokens = {
            token.strip().lower()
            for value in request.header("connection")
            for token in value.split(",")
        }
        lines = [f"{request.method} {path} {request.version}"]
        if stated is None:
            lines.append(f"Host: {parts.netloc}")
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered in connection_tokens:
                continue
            lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _admit(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Judge, resolve, connect; log the decision; refuse with a status when it fails."""
        verdict = self.policy.decide(host)
        if not verdict.allowed:
            raise _Refusal(403, f"{host} is blocked: {verdict.reason}", host, port)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await asyncio.wait_for(self.resolver(host, port), self.connect_timeout)
            except (TimeoutError, OSError) as exc:
                self._log(host, port, Verdict("allowed", f"{verdict.reason}; does not resolve"))
                raise _Refusal(502, f"{host} does not resolve") from exc
        if not self.allow_host_local:
            refusals = [r for r in map(host_local_reason, addresses) if r]
            if refusals:
                raise _Refusal(403, f"{host} is blocked: {refusals[0]}", host, port)
        last_error = "no address"
        for address in addresses:
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(address, port), self.connect_timeout
                )
            except TimeoutError:
                last_error = f"{address}:{port} timed out"
            except OSError as exc:
                last_error = f"{address}:{port} {exc.strerror or exc}"
            else:
                self._log(host, port, verdict)
                return upstream
        self._log(host, port, Verdict("allowed", f"{verdict.reason}; upstream failed"))
        status = 504 if "timed out" in last_error else 502
        raise _Refusal(status, f"cannot connect to {host}:{port} ({last_error})")

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await asyncio.wait_for(src.read(_RELAY_CHUNK), self.idle_timeout)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (TimeoutError, OSError):
                dst.close()
                raise

        try:
            await asyncio.gather(
                pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True
            )
        finally:
            up_writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(up_writer.wait_closed(), 5)


async def start_proxy(
    host: str,
    port: int,
    policy: Policy,
    log_path: Path,
    *,
    resolver: Resolver | None = None,
    allow_host_local: bool = False,
    clients: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
) -> asyncio.Server:
    """Start a :class:`FilteringProxy` on ``host:port`` and return its server.

    Use :class:`FilteringProxy` directly to swap the policy of a running proxy.
    """
    proxy = FilteringProxy(
        policy, log_path, resolver=resolver, allow_host_local=allow_host_local, clients=clients
    )
    return await proxy.start(host, port)
