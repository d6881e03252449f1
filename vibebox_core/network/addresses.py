"""Which IP addresses a session's guest must never reach through the host, in every spelling.

The proxy and the DNS filter run on the host, so an address they connect to on the guest's
behalf is reached *as the host*: a name or literal that ends at the host's loopback, its own
interface addresses, a link-local or metadata service, or another session's network would let
root in the guest use host services it was never granted (SECURITY.md, "Against root in the
guest: network"). The same address can be written many ways — ``::ffff:127.0.0.1``, ``[::1]``,
``fe80::1%eth0``, ``2130706433``, ``0x7f.1``, 6to4 or NAT64 prefixes around an IPv4 address —
so every check here works on the parsed address (read by
:func:`~vibebox_core.config.hostnames.parse_ip_literal`), with the IPv4 address embedded in an
IPv6 one judged as well.

Everything is pure except :func:`host_addresses`, which reads the host's own addresses from
``/proc/net`` (of the network namespace the caller runs in).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vibebox_core.config.hostnames import parse_ip_literal
from vibebox_core.hypervisor.network_xml import SUBNET_POOL
from vibebox_core.hypervisor.nwfilter import METADATA_ADDRESSES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_V4_RESERVED = ipaddress.IPv4Network("240.0.0.0/4")  # includes 255.255.255.255
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_V6_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use translation
_V6_6TO4 = ipaddress.IPv6Network("2002::/16")
_V6_TEREDO = ipaddress.IPv6Network("2001::/32")
_V6_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_V6_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries, if any.

    IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, SIIT ``::ffff:0:a.b.c.d``,
    NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::`` and Teredo (the client's address,
    which is what a Teredo relay would deliver to). ``::`` and ``::1`` are not IPv4.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _V6_COMPATIBLE:
        return low32 if int(address) > 1 else None
    if int(address) >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d (RFC 6145 translated)
        return low32
    if address in _V6_NAT64:
        return low32
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _v4_reason(ip: ipaddress.IPv4Address, pool: IPNetwork) -> str | None:
    if ip.is_loopback:
        return "a loopback address of the host"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in _V4_THIS_NETWORK:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _V4_RESERVED:
        return "a broadcast or reserved address"
    if ip in pool:
        return "in the vibebox session range (another session or a gateway)"
    return None


def _v6_reason(ip: ipaddress.IPv6Address, pool: IPNetwork) -> str | None:
    if ip.is_loopback:
        return "a loopback address of the host"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in _V6_SITE_LOCAL:
        return "a site-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _V6_NAT64_LOCAL:
        return "a local-use NAT64 address"
    if ip in pool:
        return "in the vibebox session range (another session or a gateway)"
    return None


def forbidden_reason(
    address: IPAddress | str,
    *,
    host: Iterable[IPAddress] = (),
    pool: IPNetwork = SUBNET_POOL,
) -> str | None:
    """Say why the host must not connect to ``address`` for a guest, or None when it may.

    Refused: loopback, unspecified, link-local, metadata, multicast, broadcast/reserved,
    site-local and local-use NAT64, the session pool (``pool``), and the host's own
    addresses (``host``), in IPv4 and in every IPv6 form that carries an IPv4 address.

    Args:
        address: the address itself (a string is parsed with
            :func:`~vibebox_core.config.hostnames.parse_ip_literal`; one
            that is not an address at all is refused).
        host: the host's own addresses (see :func:`host_addresses`).
        pool: the session range.
    """
    ip = parse_ip_literal(address) if isinstance(address, str) else address
    if ip is None:
        return "not an IP address"
    own = set(host)
    if isinstance(ip, ipaddress.IPv6Address):
        reason = _v6_reason(ip, pool)
        if reason is not None:
            return reason
        if ip in own:
            return "an address of the host itself"
        inner = embedded_ipv4(ip)
        if inner is None:
            return None
        reason = _v4_reason(inner, pool) or (
            "an address of the host itself" if inner in own else None
        )
        return f"{reason} (as {inner} inside an IPv6 address)" if reason else None
    reason = _v4_reason(ip, pool)
    if reason is None and ip in own:
        reason = "an address of the host itself"
    return reason


# --------------------------------------------------------------------------- the host's own


def _fib_trie_local(text: str) -> set[ipaddress.IPv4Address]:
    """The ``LOCAL`` host routes of ``/proc/net/fib_trie``: the host's own IPv4 addresses."""
    found: set[ipaddress.IPv4Address] = set()
    last: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif stripped.startswith("/32 host LOCAL") and last is not None:
            with contextlib.suppress(ValueError):
                found.add(ipaddress.IPv4Address(last))
    return found


def _if_inet6(text: str) -> set[ipaddress.IPv6Address]:
    found: set[ipaddress.IPv6Address] = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            with contextlib.suppress(ValueError):
                found.add(ipaddress.IPv6Address(int(fields[0], 16)))
    return found


def host_addresses(proc_net: Path = Path("/proc/net")) -> frozenset[IPAddress]:
    """The addresses of this host's interfaces (IPv4 and IPv6), in the caller's namespace.

    Read from ``fib_trie`` and ``if_inet6``; a file that cannot be read adds nothing.
    """
    found: set[IPAddress] = set()
    with contextlib.suppress(OSError):
        found |= _fib_trie_local((proc_net / "fib_trie").read_text())
    with contextlib.suppress(OSError):
        found |= _if_inet6((proc_net / "if_inet6").read_text())
    return frozenset(found)


def host_networks(proc_net: Path = Path("/proc/net")) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks directly connected to this host (its LANs and bridges).

    Read from ``/proc/net/route`` (destination and mask of the routes without a gateway).
    """
    networks: list[ipaddress.IPv4Network] = []
    try:
        lines = (proc_net / "route").read_text().splitlines()[1:]
    except OSError:
        return networks
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            # Printed in host byte order: back to network order.
            dest, gateway, mask = (socket.ntohl(int(fields[i], 16)) for i in (1, 2, 7))
        except ValueError:
            continue
        if gateway != 0 or mask == 0:
            continue
        prefix = bin(mask).count("1")
        networks.append(ipaddress.IPv4Network((dest, prefix), strict=False))
    return networks


@dataclass
class HostAddressCache:
    """:func:`host_addresses`, re-read at most every ``ttl`` seconds (bridges come and go)."""

    ttl: float = 5.0
    reader: Callable[[], frozenset[IPAddress]] = host_addresses
    _value: frozenset[IPAddress] = frozenset()
    _at: float = float("-inf")

    def get(self) -> frozenset[IPAddress]:
        now = time.monotonic()
        if now - self._at > self.ttl:
            self._value = self.reader()
            self._at = now
        return self._value
