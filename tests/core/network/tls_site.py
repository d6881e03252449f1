"""Loopback helpers for the interception tests: an HTTPS site, a guest-side client, responses.

The site is an HTTP/1.1 server with keep-alive on 127.0.0.1 behind TLS (a certificate of a test
"public" CA the proxy's upstream context trusts). It records every request as it arrived (head,
raw body bytes, which connection) and answers with the request line; ``/events`` is a
server-sent event stream that sends its second event only when the test releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Site:
    """What the site saw: ``requests`` as (connection number, head, raw body)."""

    port: int = 0
    connections: int = 0
    requests: list[tuple[int, str, bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def heads(self) -> list[str]:
        return [head for _, head, _ in self.requests]


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return b""
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        body += line
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        body += await reader.readexactly(size + 2)
    while True:
        line = await reader.readuntil(b"\r\n")
        body += line
        if line == b"\r\n":
            return bytes(body)


async def start_site(context: ssl.SSLContext | None) -> tuple[asyncio.Server, Site]:
    """Start the site on 127.0.0.1 (TLS with ``context``; None: plain TCP)."""
    site = Site()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        site.connections += 1
        number = site.connections
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                except (asyncio.IncompleteReadError, OSError):
                    return
                lines = head.split("\r\n")
                headers = {
                    name.lower(): value
                    for name, _, value in (line.partition(": ") for line in lines[1:] if line)
                }
                body = await _read_body(reader, headers)
                site.requests.append((number, head, body))
                if lines[0].split(" ")[1] == "/events":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        b"Connection: close\r\n\r\ndata: one\n\n"
                    )
                    await writer.drain()
                    await site.release.wait()
                    writer.write(b"data: two\n\n")
                    await writer.drain()
                    return
                if lines[0].split(" ")[1] == "/ws":
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                        b"Connection: Upgrade\r\n\r\n"
                    )
                    while data := await reader.read(65536):
                        writer.write(data)
                        await writer.drain()
                    return
                reply = lines[0].encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)
                await writer.drain()
                if "close" in headers.get("connection", ""):
                    return
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    site.port = server.sockets[0].getsockname()[1]
    return server, site


async def read_response(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """One response with a Content-Length body: (head, body)."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        if name.lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return head, body


async def at_eof(reader: asyncio.StreamReader) -> bool:
    """True when the other side closes (after at most a few seconds of lingering)."""
    with contextlib.suppress(OSError):
        return await asyncio.wait_for(reader.read(), 10) == b""
    return True


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait until ``check()`` holds (the proxy logs on its own task, after the client returns)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
