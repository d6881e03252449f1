"""The DNS filter behind a session's resolver: blocked names get NXDOMAIN, the rest resolve.

libvirt's dnsmasq stays the guest's resolver (it also serves DHCP); the session network tells
it to ask only this filter (``server=<gateway>#<port>``, ``no-resolv``, ``no-hosts``), which
runs in the session's supervisor on the host. Each query name is judged by the session's
:class:`~vibebox_core.config.policy.Policy` and logged: a blocklist hit or an allowlist miss is
answered NXDOMAIN, anything else is resolved upstream and relayed.

Only the question section is parsed (stdlib, no DNS library): that is all a policy needs, and
the upstream's answer is passed back byte for byte. The upstream is injectable; the default,
:class:`SystemUpstream`, answers A/AAAA from the host's own resolver (``/etc/hosts`` and DNS),
the same resolution the proxy uses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from vibebox_core.config.policy import Policy, Verdict
from vibebox_core.network import log, ratelimit

QTYPE_A = 1
QTYPE_AAAA = 28
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
ANSWER_TTL = 30
UPSTREAM_TIMEOUT = 5.0
MAX_PENDING = 256
_QTYPE_NAMES = {
    1: "A",
    28: "AAAA",
    5: "CNAME",
    15: "MX",
    16: "TXT",
    33: "SRV",
    12: "PTR",
    65: "HTTPS",
}


class DnsFormatError(ValueError):
    """The packet is not a DNS query vibebox can judge."""


@dataclass(frozen=True)
class Question:
    """The single question of a query.

    Attributes:
        id: the query id.
        flags: the header flags of the query.
        name: the query name, lower case, without the trailing dot (``""`` for the root).
        qtype, qclass: numeric type and class.
        raw: the question section as sent (copied into answers).
    """

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    raw: bytes

    @property
    def type_name(self) -> str:
        return _QTYPE_NAMES.get(self.qtype, f"TYPE{self.qtype}")


def parse_query(packet: bytes) -> Question:
    """Parse the header and the one question of a DNS query.

    Raises:
        DnsFormatError: too short, a response rather than a query, not exactly one
            question, or a malformed name.
    """
    if len(packet) < 12:
        raise DnsFormatError("shorter than a DNS header")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000:
        raise DnsFormatError("a response, not a query")
    if qdcount != 1:
        raise DnsFormatError(f"{qdcount} questions; exactly one is supported")
    labels: list[str] = []
    offset = 12
    while True:
        if offset >= len(packet):
            raise DnsFormatError("name runs past the end of the packet")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:
            raise DnsFormatError("compressed or extended label in the question")
        label = packet[offset : offset + length]
        if len(label) != length:
            raise DnsFormatError("label runs past the end of the packet")
        labels.append(label.decode("latin-1"))
        offset += length
    if offset - 12 > 255:
        raise DnsFormatError("name longer than 255 bytes")
    if offset + 4 > len(packet):
        raise DnsFormatError("question without type and class")
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return Question(
        id=qid,
        flags=flags,
        name=".".join(labels).lower(),
        qtype=qtype,
        qclass=qclass,
        raw=packet[12 : offset + 4],
    )


def build_response(question: Question, rcode: int, answers: list[bytes] | None = None) -> bytes:
    """Build a response to ``question`` with ``rcode`` and already encoded answer records."""
    opcode = question.flags & 0x7800
    rd = question.flags & 0x0100
    flags = 0x8000 | opcode | rd | 0x0080 | (rcode & 0xF)
    records = answers or []
    header = struct.pack("!HHHHHH", question.id, flags, 1, len(records), 0, 0)
    return header + question.raw + b"".join(records)


def _error_response(packet: bytes, rcode: int) -> bytes | None:
    """Answer an unparseable packet with only a header, when it has at least an id."""
    if len(packet) < 4 or packet[2] & 0x80:
        return None
    qid, flags = struct.unpack("!HH", packet[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | 0x0080 | rcode, 0, 0, 0, 0)


class Upstream(Protocol):
    """Where admitted queries go: returns the response packet (raises OSError on failure)."""

    async def query(self, packet: bytes, question: Question) -> bytes: ...


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        ours = len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.query_id
        if ours and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class UdpUpstream:
    """Forward queries as they are to a DNS server over UDP."""

    def __init__(self, host: str, port: int = 53, timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def query(self, packet: bytes, question: Question) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _OneShot(question.id), remote_addr=(self.host, self.port)
        )
        try:
            transport.sendto(packet)
            return await asyncio.wait_for(protocol.answer, self.timeout)
        except TimeoutError as exc:
            raise OSError(f"no answer from {self.host}:{self.port}") from exc
        finally:
            transport.close()


def resolv_conf_nameserver(path: Path = Path("/etc/resolv.conf")) -> str | None:
    """Return the first ``nameserver`` of a resolv.conf, or None."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                return str(ipaddress.ip_address(parts[1].split("%")[0]))
            except ValueError:
                continue
    return None


class SystemUpstream:
    """Answer A and AAAA from the host's resolver (``getaddrinfo``: ``/etc/hosts``, then DNS).

    Other types (MX, TXT, SRV, ...) go to ``other`` when given, e.g. a :class:`UdpUpstream`
    to the host's nameserver (see :meth:`from_host`); without one they get an empty answer.
    """

    def __init__(self, other: Upstream | None = None) -> None:
        self.other = other

    @classmethod
    def from_host(cls, resolv_conf: Path = Path("/etc/resolv.conf")) -> SystemUpstream:
        """Addresses from ``getaddrinfo``, other types from the host's first nameserver."""
        server = resolv_conf_nameserver(resolv_conf)
        return cls(UdpUpstream(server, timeout=2.0) if server else None)

    async def query(self, packet: bytes, question: Question) -> bytes:
        if question.qtype not in (QTYPE_A, QTYPE_AAAA) and self.other is not None:
            return await self.other.query(packet, question)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(question.name, None, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return build_response(question, RCODE_NXDOMAIN)
        answers: list[bytes] = []
        for address in dict.fromkeys(str(info[4][0]) for info in infos):
            ip = ipaddress.ip_address(address)
            if (question.qtype, ip.version) in ((QTYPE_A, 4), (QTYPE_AAAA, 6)):
                rdata = ip.packed
                # 0xC00C: a pointer to the question name right after the header.
                answers.append(
                    struct.pack("!HHHIH", 0xC00C, question.qtype, 1, ANSWER_TTL, len(rdata)) + rdata
                )
        return build_response(question, RCODE_NOERROR, answers)


class DnsFilter(asyncio.DatagramProtocol):
    """A UDP DNS server that judges each query by a :class:`Policy`.

    Args:
        policy: the session's policy; replace :attr:`policy` to apply an approved change.
        log_path: the session's network log.
        upstream: where admitted queries are resolved (default
            :meth:`SystemUpstream.from_host`).
        clients: only answer queries from this network (the session's subnet: its dnsmasq
            on the gateway); None answers anyone.
    """

    def __init__(
        self,
        policy: Policy,
        log_path: Path,
        upstream: Upstream | None = None,
        clients: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
    ) -> None:
        self.policy = policy
        self.clients = clients
        self.log_path = log_path
        self.upstream: Upstream = upstream or SystemUpstream.from_host()
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the filter listens on."""
        assert self.transport is not None, "not started"
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport is not a DatagramTransport subclass, only one in behaviour.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(self._pending) >= MAX_PENDING:
            return
        if self.clients is not None:
            try:
                if ipaddress.ip_address(str(addr[0])) not in self.clients:
                    return  # not this session's resolver: stay silent
            except ValueError:
                return  # overloaded: dropping lets the client retry, as with any busy resolver
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def close(self) -> None:
        """Stop listening and cancel queries in flight."""
        if self.transport is not None:
            self.transport.close()
        for task in list(self._pending):
            task.cancel()

    def decide(self, question: Question) -> Verdict:
        """Judge one question (the root and non-IN classes are refused)."""
        if question.qclass != 1:
            return Verdict("blocked", "only the IN class is served")
        return self.policy.decide(question.name)

    async def _answer(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            question = parse_query(data)
        except DnsFormatError:
            reply = _error_response(data, RCODE_FORMERR)
        else:
            reply = await self._resolve(data, question)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    async def _resolve(self, data: bytes, question: Question) -> bytes:
        if question.flags & 0x7800:  # not a standard QUERY (NOTIFY, UPDATE, ...)
            return build_response(question, RCODE_NOTIMP)
        verdict = self.decide(question)
        self._log(question, verdict)
        if not verdict.allowed:
            return build_response(question, RCODE_NXDOMAIN)
        try:
            answer = await self.upstream.query(data, question)
        except OSError:
            return build_response(question, RCODE_SERVFAIL)
        if len(answer) < 12 or answer[:2] != data[:2]:
            return build_response(question, RCODE_SERVFAIL)
        return answer

    def _log(self, question: Question, verdict: Verdict) -> None:
        # Rate-limited: a query flood is counted into summaries instead of drowning the log.
        ratelimit.record(
            self.log_path,
            log.NetEvent(
                "dns",
                question.name,
                53,
                verdict.verdict,
                f"{verdict.reason} ({question.type_name})",
            ),
        )


async def start_dns_filter(
    host: str,
    port: int,
    policy: Policy,
    log_path: Path,
    *,
    upstream: Upstream | None = None,
    clients: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
) -> DnsFilter:
    """Start a :class:`DnsFilter` on UDP ``host:port`` (0: a free port); ``close()`` stops it."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DnsFilter(policy, log_path, upstream, clients), local_addr=(host, port)
    )
    return protocol
