"""The filtering HTTP proxy a session's guest reaches the outside world through.

It runs in the session's supervisor, on the host side of the VM's network (the guest has root, so
nothing inside it can enforce a policy). Plain HTTP requests must use the absolute form (``GET
http://host/path HTTP/1.1``) and carry a ``Host`` header that agrees with it; HTTPS goes through
``CONNECT host:port`` and is judged by that host name (read by
:mod:`vibebox_core.network.proxytarget`). Every request is judged by the session's
:class:`~vibebox_core.config.policy.Policy`, logged with :mod:`vibebox_core.network.log`, and either
refused with a status and a one-line reason or connected upstream. The proxy resolves admitted names
itself, so the guest never needs a route or a resolver of its own; name resolution is injectable so
tests run on loopback only.

A plain HTTP connection carries one request: after its head the bytes are relayed as they are,
to the upstream the policy admitted (exactly what a CONNECT tunnel allows), and the upstream is
asked to close after its answer. A ``CONNECT`` is a blind tunnel, except to the hosts one of the
session's secrets is for: there the proxy terminates TLS with the session's CA and serves the
guest's HTTP/1.1 requests itself, keep-alive included, putting each secret's value in place of
its placeholder (:mod:`vibebox_core.network.intercept`). A placeholder never leaves any other
way: one in a plain HTTP request or in a ``CONNECT`` head is refused (secrets only go over
HTTPS, to their own hosts). Inside a blind tunnel the proxy sees nothing, placeholders
included: that is TLS, and a placeholder alone is worth nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from vibebox_core.config import hostnames
from vibebox_core.config.policy import Policy, Verdict
from vibebox_core.network import addresses, log, ratelimit
from vibebox_core.network.httphead import MAX_HEAD_BYTES, HeadError, parse_head, read_head
from vibebox_core.network.intercept import (
    InterceptedSession,
    Timeouts,
    default_upstream_tls,
    placeholder_refusal,
)
from vibebox_core.network.proxytarget import (
    Refusal,
    check_port,
    connect_target,
    http_target,
    refusal_response,
)
from vibebox_core.network.secrets import SecretVault
from vibebox_core.network.tlsca import SessionCA

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``async resolver(host, port) -> [ip, ...]``; raises OSError when the name does not resolve."""

#: CONNECT may only reach these ports (HTTPS), plain requests only these (HTTP).
CONNECT_PORTS: tuple[int, ...] = (443,)
HTTP_PORTS: tuple[int, ...] = (80,)
HEAD_TIMEOUT = 15.0
LINGER_TIMEOUT = 1.0
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 600.0
_RELAY_CHUNK = 64 * 1024


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the host's resolver (``/etc/hosts``, then DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: The host's own addresses, shared by every proxy of the process (re-read every few seconds).
_HOST_ADDRESSES = addresses.HostAddressCache()


async def _discard_rest(reader: asyncio.StreamReader) -> None:
    """Read what the client still sends, briefly, before a refused connection is closed.

    Closing with unread input makes the kernel answer with a reset, which can destroy the
    refusal the client has not read yet (a "lingering close", as HTTP servers do).
    """
    with contextlib.suppress(OSError, TimeoutError, asyncio.LimitOverrunError, ValueError):
        await asyncio.wait_for(reader.read(MAX_HEAD_BYTES), LINGER_TIMEOUT)


async def _open_numeric(
    address: addresses.IPAddress, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to exactly ``address`` (no name resolution at all) and wrap it in streams."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=_RELAY_CHUNK)


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
        connect_ports: the only ports CONNECT may reach (None: any, tests only).
        http_ports: the only ports a plain ``http://`` request may reach (None: any).
        host_addresses: the host's own addresses, never connected to (default: read from
            ``/proc/net`` every few seconds).
        connect_timeout, head_timeout, idle_timeout: seconds (inside an intercepted
            session too).
        secrets: the session's secrets; with ``ca``, a ``CONNECT`` to a host one of them is
            for is intercepted, and placeholders are refused everywhere else.
        ca: the session CA the guest trusts (interception needs it).
        upstream_tls: how intercepted connections verify the real host (default: OpenSSL's
            default trust store, so ``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply; ALPN http/1.1).
    """

    def __init__(
        self,
        policy: Policy,
        log_path: Path,
        *,
        resolver: Resolver | None = None,
        allow_host_local: bool = False,
        clients: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
        connect_ports: tuple[int, ...] | None = CONNECT_PORTS,
        http_ports: tuple[int, ...] | None = HTTP_PORTS,
        host_addresses: Callable[[], frozenset[addresses.IPAddress]] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        secrets: SecretVault | None = None,
        ca: SessionCA | None = None,
        upstream_tls: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._active: dict[asyncio.StreamWriter, str] = {}
        self.log_path = log_path
        self.resolver: Resolver = resolver or system_resolver
        self.allow_host_local = allow_host_local
        self.clients = clients
        self.connect_ports = connect_ports
        self.http_ports = http_ports
        self.host_addresses = host_addresses or _HOST_ADDRESSES.get
        self.connect_timeout = connect_timeout
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.secrets = secrets
        self.ca = ca
        self._upstream_tls = upstream_tls

    @property
    def upstream_tls(self) -> ssl.SSLContext:
        """The client context intercepted connections verify the real host with (made lazily:
        loading the default trust store takes a moment, and most sessions never need it)."""
        if self._upstream_tls is None:
            self._upstream_tls = default_upstream_tls()
        return self._upstream_tls

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
        # Rate-limited: a flood is counted into summaries instead of drowning the log.
        ratelimit.record(
            self.log_path, log.NetEvent("proxy", host, port, verdict.verdict, verdict.reason)
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
        except Refusal as refusal:
            if refusal.host is not None:
                self._log(refusal.host, refusal.port, Verdict("blocked", refusal.reason))
            with contextlib.suppress(OSError):
                writer.write(refusal_response(refusal.status, refusal.reason))
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()  # the client sees the end and hangs up
            await _discard_rest(reader)
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
            head = await asyncio.wait_for(read_head(reader), self.head_timeout)
            allowed = self._client_allowed(writer)
            request = parse_head(head) if allowed else None
        except asyncio.IncompleteReadError:
            return  # the client went away before sending a request
        except TimeoutError as exc:
            raise Refusal(408, "no complete request head in time") from exc
        except HeadError as exc:
            raise Refusal(exc.status, exc.reason) from exc
        if request is None:
            raise Refusal(403, "this proxy serves only its own session's guest")
        if request.method == "CONNECT":
            host, port = connect_target(request)
            self._refuse_placeholders(head, host, port, "no secret in a CONNECT request")
            check_port(host, port, self.connect_ports, "CONNECT")
            upstream = await self._admit(host, port)
            first = b"HTTP/1.1 200 Connection established\r\n\r\n"
            target = writer
        else:
            host, port, first = http_target(request)
            self._refuse_placeholders(head, host, port, "secrets are only sent over HTTPS")
            check_port(host, port, self.http_ports, "plain HTTP")
            upstream = await self._admit(host, port)
            target = upstream[1]
        self._active[writer] = host
        try:
            target.write(first)
            await target.drain()
        except OSError:
            upstream[1].close()
            raise
        vault, ca = self.secrets, self.ca
        if target is writer and vault is not None and ca is not None and vault.for_host(host):
            # Secrets go to this host: the proxy reads its requests.
            session = InterceptedSession(
                host,
                port,
                (reader, writer),
                upstream,
                ca=ca,
                upstream_tls=self.upstream_tls,
                vault=vault,
                record=lambda verdict, reason: self._log(host, port, Verdict(verdict, reason)),
                timeouts=Timeouts(self.head_timeout, self.idle_timeout, self.connect_timeout),
            )
            await session.run()
            return
        await self._relay(reader, writer, *upstream)

    def _refuse_placeholders(self, head: bytes, host: str, port: int, what: str) -> None:
        """Refuse a head outside an intercepted session that holds any placeholder."""
        if self.secrets is None:
            return
        why = placeholder_refusal(self.secrets, head.decode("latin-1"))
        if why is not None:
            raise Refusal(403, f"{what}: {why}", host, port)

    def _forbidden(self, address: str) -> str | None:
        if self.allow_host_local:
            return None
        reason = addresses.forbidden_reason(address, host=self.host_addresses())
        return f"resolves to {reason}" if reason else None

    async def _admit(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Judge, resolve, check, connect; log the decision; refuse with a status when it fails.

        Every address is checked after resolution and the connection goes to exactly the
        checked address (a numeric socket address: nothing is resolved again), so a name that
        re-resolves between the check and the connect (DNS rebinding) gains nothing. A name
        with any forbidden address is refused outright.
        """
        verdict = self.policy.decide(host)
        if not verdict.allowed:
            raise Refusal(403, f"{host} is blocked: {verdict.reason}", host, port)
        if hostnames.parse_ip_literal(host) is not None:
            resolved = [host]
        else:
            try:
                resolved = await asyncio.wait_for(self.resolver(host, port), self.connect_timeout)
            except (TimeoutError, OSError) as exc:
                self._log(host, port, Verdict("allowed", f"{verdict.reason}; does not resolve"))
                raise Refusal(502, f"{host} does not resolve") from exc
        checked: list[addresses.IPAddress] = []
        for address in resolved:
            literal = hostnames.parse_ip_literal(address)
            reason = "resolves to a non-address" if literal is None else self._forbidden(address)
            if reason is not None:
                raise Refusal(403, f"{host} is blocked: {reason}", host, port)
            assert literal is not None
            checked.append(literal)
        if not checked:
            self._log(host, port, Verdict("allowed", f"{verdict.reason}; does not resolve"))
            raise Refusal(502, f"{host} does not resolve")
        last_error = "no address"
        for ip in checked:
            try:
                upstream = await asyncio.wait_for(_open_numeric(ip, port), self.connect_timeout)
            except TimeoutError:
                last_error = f"{ip}:{port} timed out"
            except OSError as exc:
                last_error = f"{ip}:{port} {exc.strerror or exc}"
            else:
                self._log(host, port, verdict)
                return upstream
        self._log(host, port, Verdict("allowed", f"{verdict.reason}; upstream failed"))
        status = 504 if "timed out" in last_error else 502
        raise Refusal(status, f"cannot connect to {host}:{port} ({last_error})")

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
    connect_ports: tuple[int, ...] | None = CONNECT_PORTS,
    http_ports: tuple[int, ...] | None = HTTP_PORTS,
    secrets: SecretVault | None = None,
    ca: SessionCA | None = None,
    upstream_tls: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Start a :class:`FilteringProxy` on ``host:port`` and return its server.

    Use :class:`FilteringProxy` directly to swap the policy of a running proxy.
    """
    proxy = FilteringProxy(
        policy,
        log_path,
        resolver=resolver,
        allow_host_local=allow_host_local,
        clients=clients,
        connect_ports=connect_ports,
        http_ports=http_ports,
        secrets=secrets,
        ca=ca,
        upstream_tls=upstream_tls,
    )
    return await proxy.start(host, port)
