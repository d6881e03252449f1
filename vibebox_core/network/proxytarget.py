"""Where a proxied request goes: its target, the ``Host`` header check, the head sent on.

The filtering proxy (:mod:`vibebox_core.network.proxy`) judges a request by the host these
functions read from its parsed head (:mod:`vibebox_core.network.httphead`): the target of a
``CONNECT``, or the absolute ``http://`` target of a plain request, which a ``Host`` header must
agree with. What they refuse is a :class:`Refusal` with the status and reason to answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from vibebox_core.network.httphead import Request, split_authority

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


class Refusal(Exception):
    """Answer the client with ``status`` and a one-line ``reason``; log when ``host`` is known."""

    def __init__(self, status: int, reason: str, host: str | None = None, port: int | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.host = host
        self.port = port


def refusal_response(status: int, reason: str) -> bytes:
    """The whole answer to a refused request: ``status`` and the reason as a plain-text body."""
    body = f"vibebox: {reason}\n".encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode() + body


def check_port(host: str, port: int, allowed: tuple[int, ...] | None, what: str) -> None:
    """Refuse a ``port`` outside ``allowed`` (None allows any)."""
    if allowed is not None and port not in allowed:
        ports = ", ".join(map(str, allowed)) or "none"
        raise Refusal(403, f"{what} to port {port} is not allowed (only {ports})", host, port)


def host_header(request: Request, default_port: int | None) -> tuple[str, int] | None:
    """The (host, port) of the one ``Host`` header, or None without one."""
    values = request.header("host")
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(400, "more than one Host header")
    try:
        return split_authority(values[0], default_port)
    except ValueError as exc:
        raise Refusal(400, f"bad Host header: {exc}") from exc


def connect_target(request: Request) -> tuple[str, int]:
    """The (host, port) a ``CONNECT`` names; a ``Host`` header must agree with it."""
    try:
        host, port = split_authority(request.target, None)
    except ValueError as exc:
        raise Refusal(400, f"bad CONNECT target {request.target!r}: {exc}") from exc
    stated = host_header(request, port)
    if stated is not None and stated[0] != host:
        raise Refusal(400, f"Host header {stated[0]} disagrees with CONNECT {host}", host, port)
    if stated is not None and stated[1] != port:
        raise Refusal(400, "Host header port disagrees with the CONNECT target", host, port)
    return host, port


def http_target(request: Request) -> tuple[str, int, bytes]:
    """The (host, port) of a plain ``http://`` request and the head to send upstream.

    The head is rewritten to the origin form, without hop-by-hop headers, and asks the
    upstream to close after its answer.
    """
    target = request.target
    scheme = target.split(":", 1)[0].lower() if "://" in target else ""
    if scheme == "https":
        raise Refusal(400, "send https:// requests through CONNECT")
    if scheme != "http":
        raise Refusal(400, "this is a proxy: the request target must be http://host/...")
    parts = urlsplit(target)
    if "@" in parts.netloc:
        raise Refusal(400, "user information in the request target is not supported")
    try:
        host, port = split_authority(parts.netloc, 80)
    except ValueError as exc:
        raise Refusal(400, f"bad request target: {exc}") from exc
    stated = host_header(request, 80)
    if stated is not None and stated != (host, port):
        raise Refusal(
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
