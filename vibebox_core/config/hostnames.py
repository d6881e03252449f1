"""Host names as the network policy reads them: domain entries, matching, IP literals.

An entry names a domain and matches it and every subdomain; ``*.example.com`` and
``example.com`` mean the same. A host the guest asks for may also be an IP address in any
spelling the C resolver accepts (``2130706433``, ``0x7f.1``, ``[::1]``), so literals are read
the way ``inet_aton`` reads them. Pure functions, tested without a VM.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Real names sometimes carry underscores (SRV-style labels); they are harmless to match.
_UNDERSCORE_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")


def normalize_entry(raw: str) -> str:
    """Return the canonical form of one ``[network] entries`` value.

    Args:
        raw: the entry as written by the user, e.g. ``"*.Example.com."``.

    Returns:
        The lower-case domain without a leading ``*.`` or trailing dot.

    Raises:
        ValueError: the entry is not a plain domain name (schemes, paths, ports, IP
            addresses and wildcards other than a leading ``*.`` are refused).
    """
    if not isinstance(raw, str):
        raise ValueError("expected a domain name as a string")
    entry = raw.strip().lower()
    if not entry:
        raise ValueError("expected a domain name, got an empty string")
    if "://" in entry:
        raise ValueError(f"{raw!r}: write the domain only, without a scheme such as https://")
    if "/" in entry:
        raise ValueError(f"{raw!r}: write the domain only, without a path")
    if ":" in entry:
        raise ValueError(f"{raw!r}: ports and IP addresses are not supported, write a domain")
    if entry.startswith("*."):
        entry = entry[2:]
    entry = entry.rstrip(".")
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        pass
    else:
        raise ValueError(f"{raw!r}: IP addresses are not supported, write a domain name")
    if "*" in entry:
        raise ValueError(f"{raw!r}: only a leading '*.' wildcard is allowed")
    labels = entry.split(".")
    if len(entry) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{raw!r} is not a valid domain name")
    return entry


def matches(host: str, entries: tuple[str, ...] | list[str]) -> bool:
    """Return True when ``host`` is one of ``entries`` or a subdomain of one.

    Args:
        host: a host name as asked for by the guest (case and a trailing dot are ignored).
        entries: normalised entries (see :func:`normalize_entry`).
    """
    name = host.strip().lower().rstrip(".")
    return any(name == entry or name.endswith("." + entry) for entry in entries)


def valid_host(name: str) -> bool:
    """True when ``name`` (lower case, no trailing dot) is a well-formed host name."""
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) or _UNDERSCORE_LABEL.match(label) for label in name.split("."))


# inet_aton() parts: decimal, 0-prefixed octal or 0x-prefixed hex.
_AT_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _aton_part(text: str) -> int | None:
    if not _AT_PART.match(text):
        return None
    if text[:2].lower() == "0x":
        return int(text[2:] or "0", 16)
    if text.startswith("0") and len(text) > 1:
        return int(text, 8)
    return int(text)


def parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 address the way ``inet_aton`` (and so ``getaddrinfo``) does.

    ``127.1``, ``2130706433``, ``0x7f.1``, ``017700000001`` and ``0177.0.0.01`` all mean
    127.0.0.1 to the C library, so a name check that only knows dotted quads would pass them.

    Returns:
        The address, or None when ``text`` is not such a literal.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_aton_part(part) for part in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    # a | a.b (b: 24 bits) | a.b.c (c: 16 bits) | a.b.c.d; every leading part one byte.
    last_bits = 32 - 8 * (len(nums) - 1)
    if any(n > 0xFF for n in nums[:-1]) or nums[-1] >= 1 << last_bits:
        return None
    value = 0
    for n in nums[:-1]:
        value = value << 8 | n
    value = value << last_bits | nums[-1]
    return ipaddress.IPv4Address(value)


def parse_ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the address a host string names literally, or None when it is a name.

    Accepts ``[v6]``, zone ids (``fe80::1%eth0``; the zone is dropped) and every
    ``inet_aton`` spelling of IPv4 (see :func:`parse_inet_aton`). A trailing dot is ignored,
    as resolvers do.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".") if ":" not in host else host
    if not host:
        return None
    if ":" in host:
        address, _, _zone = host.partition("%")
        try:
            return ipaddress.IPv6Address(address)
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return parse_inet_aton(host)
