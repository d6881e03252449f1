"""HTTP/1.1 request bodies inside an intercepted session: where each one ends, copied exactly.

The proxy reads request heads inside the TLS sessions it intercepts (to put a secret's value in
place of its placeholder), so it must agree with the upstream about where each request ends, or
the guest could hide a second request inside the first one's body, past the check (request
smuggling). Only the unambiguous framings pass: a single plain ``Content-Length``, or
``Transfer-Encoding: chunked`` alone, with strict chunk lines and trailers; both together, a
list of lengths, or any other transfer coding is refused with 400. The body is streamed as it
arrives, byte for byte, never buffered whole.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vibebox_core.network.httphead import MAX_HEAD_BYTES, HeadError, Request, parse_head

_CHUNK = 64 * 1024
_LENGTH = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(;[\x20-\x7e\t]*)?\r\n")


@dataclass(frozen=True)
class Framing:
    """How a request body is delimited: ``none``, ``length`` (:attr:`length` bytes), ``chunked``."""

    kind: Literal["none", "length", "chunked"]
    length: int = 0


def framing(request: Request) -> Framing:
    """The body framing of ``request``; refuse ambiguous or unsupported framing.

    Raises:
        HeadError: 400 for both headers, several or invalid ``Content-Length`` values, a
            transfer coding other than ``chunked`` alone, or chunked HTTP/1.0.
    """
    codings = request.header("transfer-encoding")
    lengths = request.header("content-length")
    if codings and lengths:
        raise HeadError(400, "both Content-Length and Transfer-Encoding (ambiguous framing)")
    if codings:
        if request.version == "HTTP/1.0":
            raise HeadError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) != 1 or codings[0].lower() != "chunked":
            raise HeadError(400, "only Transfer-Encoding: chunked is supported")
        return Framing("chunked")
    if lengths:
        if len(lengths) != 1 or not _LENGTH.fullmatch(lengths[0].encode("latin-1")):
            raise HeadError(400, "invalid Content-Length")
        length = int(lengths[0])
        return Framing("length", length) if length else Framing("none")
    return Framing("none")


async def _line(reader: asyncio.StreamReader, timeout: float) -> bytes:
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
    except asyncio.LimitOverrunError as exc:
        raise HeadError(400, "chunk line too long") from exc
    if not line.endswith(b"\r\n"):
        raise HeadError(400, "chunk line without CRLF")
    return line


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: int, timeout: float
) -> None:
    while count:
        data = await asyncio.wait_for(reader.read(min(_CHUNK, count)), timeout)
        if not data:
            raise asyncio.IncompleteReadError(b"", count)
        writer.write(data)
        await writer.drain()
        count -= len(data)


async def copy_body(
    frame: Framing,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    timeout: float,
    check_trailers: Callable[[bytes], None] | None = None,
) -> None:
    """Copy one request body from ``reader`` to ``writer``, exactly as framed.

    A chunked body is checked line by line as it streams (hex sizes, CRLF after each chunk,
    trailers parsed like a head) and forwarded unchanged, trailers included.

    Args:
        frame: from :func:`framing`.
        timeout: seconds each read may wait (the idle timeout).
        check_trailers: called with the trailer section (``b"\\r\\n"`` when empty) before it
            is forwarded; it may raise to refuse them.

    Raises:
        HeadError: 400 for broken chunk framing (part of the body may have been sent: the
            caller closes the upstream connection).
        asyncio.IncompleteReadError: the client closed the connection mid-body.
    """
    if frame.kind == "length":
        await _copy(reader, writer, frame.length, timeout)
        return
    if frame.kind == "none":
        return
    while True:
        line = await _line(reader, timeout)
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise HeadError(400, "invalid chunk size line")
        size = int(match.group(1), 16)
        writer.write(line)
        if size == 0:
            break
        await _copy(reader, writer, size, timeout)
        end = await asyncio.wait_for(reader.readexactly(2), timeout)
        if end != b"\r\n":
            raise HeadError(400, "chunk data not followed by CRLF")
        writer.write(end)
    trailers = bytearray()
    while True:
        line = await _line(reader, timeout)
        trailers += line
        if len(trailers) > MAX_HEAD_BYTES:
            raise HeadError(431, f"trailers larger than {MAX_HEAD_BYTES} bytes")
        if line == b"\r\n":
            break
    if len(trailers) > 2:
        # The same strict rules as a head: parse it behind a dummy request line.
        parse_head(b"POST / HTTP/1.1\r\n" + bytes(trailers))
    if check_trailers is not None:
        check_trailers(bytes(trailers))
    writer.write(bytes(trailers))
    await writer.drain()
