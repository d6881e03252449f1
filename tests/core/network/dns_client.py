"""A tiny DNS client for the filter's tests: build a query, send it over UDP, read the rcode."""

from __future__ import annotations

import asyncio
import struct

from vibebox_core.network.dnsfilter import QTYPE_A


def query(name: str, qtype: int = QTYPE_A, qid: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p)
    return (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def rcode(reply: bytes) -> int:
    (flags,) = struct.unpack("!H", reply[2:4])
    return int(flags) & 0xF


async def ask(port: int, packet: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not received.done():
                received.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(packet)
        return await asyncio.wait_for(received, 5)
    finally:
        transport.close()
