"""HTTPS interception for the hosts that carry secrets: placeholders swapped for values.

The guest holds placeholders (:mod:`vibebox_core.network.secrets`), never a secret's value. For
a ``CONNECT`` to a host one of the session's secrets is for, the filtering proxy
(:mod:`vibebox_core.network.proxy`) terminates the guest's TLS with a leaf from the session's CA
(:mod:`vibebox_core.network.tlsca`), opens its own TLS to the real host with full verification,
and serves HTTP/1.1 requests in between: in each request head the placeholders of the secrets
listed for this host are replaced by their values, in header values only; a placeholder of any
other secret, or one that looks like a placeholder but belongs to no current secret, refuses
the request (403) and ends the connection, so a value can only ever reach its own hosts.

Only request heads are read. Bodies are forwarded exactly as framed (:mod:`vibebox_core.network.
http1`, which refuses ambiguous framing), and responses are relayed upstream->client as a blind,
unbuffered byte stream (server-sent events and long polls arrive as they are sent), so the
requests of one connection go to the upstream in order over one upstream connection and
keep-alive works end to end. ``Upgrade`` requests (websockets) and a ``CONNECT`` inside are
relayed blindly after their head. A refusal is answered at once and ends the connection: a
client that waits for each answer before its next request (as HTTP clients do) has the previous
answer whole; a pipelining client may see the refusal cut into it, the price of never parsing
responses. The guest's TLS starts after the proxy's 200: a client that sends its ClientHello
before reading that answer fails its handshake (after the head timeout; logged).

Placeholders in a request *body*, or in a blind tunnel to any other host, are not seen (that is
TLS doing its job); they are only placeholders, so nothing leaks but the placeholder itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from vibebox_core.errors import SecretError
from vibebox_core.network import http1
from vibebox_core.network.httphead import HeadError, Request, parse_head, read_head
from vibebox_core.network.log import VerdictName
from vibebox_core.network.proxytarget import Refusal, host_header
from vibebox_core.network.secrets import SecretVault
from vibebox_core.network.tlsca import SessionCA
from vibebox_core.sanitize import clean

_CHUNK = 64 * 1024
_REASON_LIMIT = 300
_GONE = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.CancelledError)

Record = Callable[[VerdictName, str], None]
"""``record(verdict, reason)``: log one decision of the session that is not a refusal answered
to the guest (``injected NAME`` entries, a failed TLS handshake with the guest)."""


def placeholder_refusal(
    vault: SecretVault, head: str, allowed: tuple[str, ...] = (), host: str | None = None
) -> str | None:
    """Why a request head may not be sent, or None; ``allowed`` names the secrets it may carry.

    Every placeholder anywhere in ``head`` (request line, header names and values) counts: a
    secret's that is not in ``allowed``, or a placeholder-looking token of no current secret.
    The reason names the secret (never a value), and ``host`` when given.
    """
    found, unknown = vault.scan(head)
    for secret in found:
        if secret.name not in allowed:
            where = f", which is not for {host}" if host is not None else ""
            return f"the request carries the placeholder of secret {secret.name}{where}"
    if unknown:
        return "the request carries an unknown secret placeholder (vbxph_...)"
    return None


def _tls_reason(exc: OSError) -> str:
    reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    return clean(reason or exc.strerror or str(exc) or type(exc).__name__, 120)


def default_upstream_tls() -> ssl.SSLContext:
    """The context that verifies real hosts: OpenSSL's default trust store (so ``SSL_CERT_FILE``
    and ``SSL_CERT_DIR`` in the supervisor's environment apply), hostname checks, ALPN
    ``http/1.1`` only (what the guest is offered too)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _copy_until_eof(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, idle: float
) -> None:
    """Copy ``src`` to ``dst`` as it arrives until ``src`` ends (``idle`` seconds per read)."""
    while True:
        data = await asyncio.wait_for(src.read(_CHUNK), idle)
        if not data:
            return
        dst.write(data)
        await dst.drain()


@dataclass(frozen=True)
class Timeouts:
    """Seconds: the whole TLS handshake or a request head, a quiet connection, a connect."""

    head: float
    idle: float
    connect: float


class InterceptedSession:
    """One intercepted ``CONNECT``: TLS on both sides, then HTTP/1.1 requests with secrets.

    Args:
        host, port: the ``CONNECT`` target the policy admitted.
        client: the guest's streams (the 200 answer already sent, TLS not yet started).
        upstream: the TCP connection to the admitted address (TLS not yet started).
        ca: the session CA (its leaf for ``host`` is shown to the guest).
        upstream_tls: the client context for the real host (verifies it).
        vault: the session's secrets.
        record: logs a decision that is not a refusal (``injected NAME``, a failed
            handshake with the guest).
        timeouts: the proxy's head, idle and connect timeouts.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        *,
        ca: SessionCA,
        upstream_tls: ssl.SSLContext,
        vault: SecretVault,
        record: Record,
        timeouts: Timeouts,
    ) -> None:
        self.host, self.port = host, port
        self._reader, self._writer = client
        self._up_reader, self._up_writer = upstream
        self._ca = ca
        self._upstream_tls = upstream_tls
        self._vault = vault
        self._record = record
        self._timeouts = timeouts

    def _refusal(self, status: int, reason: str) -> Refusal:
        return Refusal(status, clean(reason, _REASON_LIMIT), self.host, self.port)

    async def run(self) -> None:
        """Serve the session until either side closes; the upstream is always closed after.

        Raises:
            Refusal: to answer inside the guest's TLS session (the caller logs it as blocked
                and answers with it); the upstream is closed already.
            OSError, TimeoutError: a side failed; nothing to answer.
        """
        try:
            await self._start_tls()
            await self._serve()
        finally:
            self._up_writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self._up_writer.wait_closed(), 5)

    async def _start_tls(self) -> None:
        context = self._ca.server_context(self.host)
        # The guest's handshake first: a refusal about the upstream is answered inside it.
        try:
            await self._writer.start_tls(context, ssl_handshake_timeout=self._timeouts.head)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            # Most likely the guest does not trust the session CA (yet): worth a log line.
            why = "timed out" if isinstance(exc, TimeoutError) else _tls_reason(exc)
            self._record("blocked", f"TLS with the guest failed: {why}")
            raise
        try:
            await self._up_writer.start_tls(
                self._upstream_tls,
                server_hostname=self.host,
                ssl_handshake_timeout=self._timeouts.connect,
            )
        except ssl.SSLCertVerificationError as exc:
            why = exc.verify_message or exc.reason or "verification failed"
            raise self._refusal(502, f"{self.host} has an untrusted certificate: {why}") from exc
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else _tls_reason(exc)
            raise self._refusal(502, f"TLS to {self.host} failed: {why}") from exc

    async def _serve(self) -> None:
        requests = asyncio.create_task(self._requests())
        responses = asyncio.create_task(self._responses())
        try:
            done, _ = await asyncio.wait({requests, responses}, return_when=asyncio.FIRST_COMPLETED)
            if requests in done and requests.exception() is None and requests.result():
                # The last request asked to close (or the connection is now a blind relay
                # one way): its answer still streams until the upstream closes.
                await responses
        finally:
            for task in (requests, responses):
                task.cancel()
            results = await asyncio.gather(requests, responses, return_exceptions=True)
        for result in results:
            if isinstance(result, Refusal):
                raise result
        for result in results:
            # A side that went away ends the session quietly; anything else is a bug to see.
            if isinstance(result, BaseException) and not isinstance(result, _GONE):
                raise result

    async def _responses(self) -> None:
        """Relay upstream->client as it arrives: never parsed, never buffered."""
        await _copy_until_eof(self._up_reader, self._writer, self._timeouts.idle)

    async def _requests(self) -> bool:
        """Forward requests in order; True when the responses should be awaited to the end."""
        reader, timeouts = self._reader, self._timeouts
        while True:
            try:
                first = await asyncio.wait_for(reader.readexactly(1), timeouts.idle)
            except asyncio.IncompleteReadError:
                return False  # the guest closed between requests
            try:
                head = await asyncio.wait_for(read_head(reader, first), timeouts.head)
                request = parse_head(head)
            except TimeoutError as exc:
                raise self._refusal(408, "no complete request head in time") from exc
            except HeadError as exc:
                raise self._refusal(exc.status, exc.reason) from exc
            ends = await self._forward(request, head)
            if ends == "relay":
                await _copy_until_eof(self._reader, self._up_writer, timeouts.idle)
                return True
            if ends == "close":
                return True

    def _check_target(self, request: Request) -> None:
        if request.method == "CONNECT":
            return
        if not (
            request.target.startswith("/")
            or (request.target == "*" and request.method == "OPTIONS")
        ):
            raise self._refusal(400, "inside the tunnel the request target must be /path")
        try:
            stated = host_header(request, self.port)
        except Refusal as exc:
            raise self._refusal(exc.status, exc.reason) from exc
        # The Host decides where a front end routes the request (and so where a value goes):
        # it must be the host the tunnel was admitted, and its certificate checked, for.
        if stated is not None and stated != (self.host, self.port):
            raise self._refusal(400, f"Host header {stated[0]} disagrees with CONNECT {self.host}")

    async def _forward(self, request: Request, head: bytes) -> str:
        """Check, rewrite and send one request with its body; say how the connection goes on."""
        self._check_target(request)
        if request.method == "TRACE":
            # TRACE answers with the request as the server received it: the values with it.
            raise self._refusal(405, "TRACE is not sent to a host that carries secrets")
        carried = self._vault.for_host(self.host)
        names = tuple(s.name for s in carried)
        why = placeholder_refusal(self._vault, head.decode("latin-1"), names, self.host)
        if why is not None:
            raise self._refusal(403, f"{why}; it was not sent")
        try:
            frame = http1.framing(request)
        except HeadError as exc:
            raise self._refusal(exc.status, exc.reason) from exc
        injected: list[tuple[str, str, str]] = []  # (name, placeholder, value)
        for secret in carried:
            mark = self._vault.placeholder_of(secret)
            if any(mark in value for _, value in request.headers):
                try:
                    # A file or command source may block: off the event loop.
                    real = await asyncio.to_thread(self._vault.value, secret)
                except SecretError as exc:
                    raise self._refusal(
                        502, f"secret {secret.name} is unavailable: {exc.message}"
                    ) from exc
                injected.append((secret.name, mark, real))
        self._up_writer.write(self._rewrite(request, injected))
        if injected:
            self._record("allowed", "injected " + ", ".join(name for name, _, _ in injected))
        try:
            await http1.copy_body(
                frame,
                self._reader,
                self._up_writer,
                timeout=self._timeouts.idle,
                check_trailers=self._check_trailers,
            )
        except HeadError as exc:
            raise self._refusal(exc.status, exc.reason) from exc
        await self._up_writer.drain()
        tokens = {
            token.strip().lower()
            for value in request.header("connection")
            for token in value.split(",")
        }
        if request.method == "CONNECT" or ("upgrade" in tokens and request.header("upgrade")):
            return "relay"
        if "close" in tokens or (request.version == "HTTP/1.0" and "keep-alive" not in tokens):
            return "close"
        return "next"

    def _check_trailers(self, trailers: bytes) -> None:
        # Trailers are forwarded as they are (nothing is replaced in them): no placeholder.
        why = placeholder_refusal(self._vault, trailers.decode("latin-1"))
        if why is not None:
            raise self._refusal(403, f"{why} in a trailer; it was not sent")

    def _rewrite(self, request: Request, injected: list[tuple[str, str, str]]) -> bytes:
        """The head sent upstream: ``Proxy-*`` headers dropped, placeholders replaced."""
        lines = [f"{request.method} {request.target} {request.version}"]
        if not request.header("host") and request.method != "CONNECT":
            authority = f"[{self.host}]" if ":" in self.host else self.host
            lines.append(f"Host: {authority}" + ("" if self.port == 443 else f":{self.port}"))
        for name, value in request.headers:
            if name.lower().startswith("proxy-"):
                continue
            for _, mark, real in injected:
                value = value.replace(mark, real)
            lines.append(f"{name}: {value}")
        # Values are visible ASCII (the vault refuses anything else), so latin-1 is exact.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
