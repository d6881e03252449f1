"""Network policy: which domains a session's guest may reach.

An entry names a domain and matches it and every subdomain; ``*.example.com`` and
``example.com`` mean the same. Matching is a pure function so it can be tested without a VM;
enforcement (proxy, DNS, nwfilter) is built on top of it.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


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
