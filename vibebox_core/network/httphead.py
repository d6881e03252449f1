"""Strict HTTP/1.x request heads for the filtering proxy: read, parse, split an authority.

A filter and the server behind it must agree on where a request starts and ends and which
host it names, or a request can be smuggled past the filter. So only the unambiguous form is
accepted: CRLF line endings only, no NUL or other control bytes, no obsolete line folding,
token header names, a bounded size, and one canonical spelling per host (IP literals included,
via :mod:`vibebox_core.config.hostnames`). Pure functions of bytes, apart from :func:`read_head`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass

from vibebox_core.config import hostnames

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_LINES = 100


class HeadError(Exception):
    """A request head the proxy refuses: answer ``status`` with the one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """One parsed request head: the request line and the headers in their order."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lower case)."""
        return [v for k, v in self.headers if k.lower() == name]


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_head(head: bytes) -> Request:
    """Parse a request head that ends with an empty line; refuse anything ambiguous.

    Two parsers that disagree about where a header ends are how requests are smuggled past
    a filter, so only the strict form passes: every line ends with CRLF (no bare LF or CR),
    no NUL or other control bytes, no obsolete line folding, header names are tokens.
    """
    if b"\0" in head:
        raise HeadError(400, "NUL byte in the request head")
    if not head.endswith(b"\r\n\r\n"):
        raise HeadError(400, "request head does not end with an empty CRLF line")
    lines_b = head[:-4].split(b"\r\n")
    for raw in lines_b:
        if b"\n" in raw or b"\r" in raw:
            raise HeadError(400, "bare LF or CR in the request head (lines end with CRLF)")
        if any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in raw):
            raise HeadError(400, "control character in the request head")
    lines = [raw.decode("latin-1") for raw in lines_b]
    if not lines or not lines[0]:
        raise HeadError(400, "empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise HeadError(400, "malformed request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper() or not target:
        raise HeadError(400, "malformed request method")
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise HeadError(431, f"more than {MAX_HEADER_LINES} header lines")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line or line[0] in " \t":
            raise HeadError(400, "obsolete line folding in the request head")
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN:
            raise HeadError(400, "malformed header line")
        headers.append((name, value.strip(" \t")))
    return Request(method, target, version, headers)


def split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` (``[v6]:port`` too); host lower-cased without a trailing dot.

    An IP literal comes back in its one canonical spelling; IPv6 must be bracketed, and
    zone ids (``%eth0``) are refused.
    """
    host, port_text, bracketed = authority, "", False
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 address")
        host, rest, bracketed = authority[1:end], authority[end + 1 :], True
        if rest:
            if not rest.startswith(":"):
                raise ValueError("junk after IPv6 address")
            port_text = rest[1:]
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
    if port_text or authority.endswith(":"):
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port {port_text!r}")
        port = int(port_text)
    elif default_port is None:
        raise ValueError("a port is required")
    else:
        port = default_port
    host = host.strip().lower().rstrip(".")
    if not host or any(c in host for c in "/@ \t%[]\\"):
        raise ValueError("bad host")
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host)), port
        except ValueError:
            raise ValueError("only an IPv6 address may be written in brackets") from None
    if ":" in host:
        raise ValueError("an IPv6 address must be written in brackets")
    # One spelling per address (``0x7f.1`` and ``2130706433`` are 127.0.0.1 to getaddrinfo).
    literal = hostnames.parse_ip_literal(host)
    return (str(literal) if literal is not None else host), port


async def read_head(reader: asyncio.StreamReader, prefix: bytes = b"") -> bytes:
    """Read a request head line by line up to its empty line; every line must end in CRLF.

    Reading by line (not up to the first CRLFCRLF) refuses a bare-LF head at once instead of
    waiting for a terminator that never comes, and bounds the head's total size.

    Args:
        reader: the client's stream.
        prefix: the head's first bytes, already read (a keep-alive connection waits for the
            next request's first byte under the idle timeout, then reads the rest of its head
            under the head timeout).

    Raises:
        HeadError: 400 for a line without CRLF, 431 for a head over :data:`MAX_HEAD_BYTES`.
        asyncio.IncompleteReadError: the client closed the connection first.
    """
    head = bytearray()
    while True:
        try:
            line = await reader.readuntil(b"\n")
            if prefix:
                line, prefix = prefix + line, b""
        except asyncio.LimitOverrunError as exc:
            raise HeadError(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from exc
        head += line
        if len(head) > MAX_HEAD_BYTES:
            raise HeadError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
        if not line.endswith(b"\r\n"):
            raise HeadError(400, "bare LF in the request head (lines end with CRLF)")
        if line == b"\r\n":
            if len(head) == 2:
                raise HeadError(400, "empty request")
            return bytes(head)
