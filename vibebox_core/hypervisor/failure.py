"""One libvirt error taken apart: libvirt's error numbers, and which component failed.

:func:`failed_component` decides what an error is about — the program the message names, else
the error code, else the libvirt module that reported it — so that
:mod:`vibebox_core.hypervisor.errors` can pick the hint by table, never by scanning messages
case by case. The numbers are libvirt's stable ABI (``libvirt.VIR_ERR_*``, ``VIR_FROM_*``),
kept here so nothing that classifies an error needs libvirt-python.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ERR_INTERNAL_ERROR = 1
ERR_NO_SUPPORT = 3
ERR_NO_CONNECT = 5
ERR_INVALID_ARG = 8
ERR_OPERATION_FAILED = 9
ERR_XML_ERROR = 27
ERR_SYSTEM_ERROR = 38
ERR_RPC = 39
ERR_NO_DOMAIN = 42
ERR_NO_NETWORK = 43
ERR_AUTH_FAILED = 45
ERR_OPERATION_INVALID = 55
ERR_NO_NWFILTER = 62
ERR_BUILD_FIREWALL = 63
ERR_CONFIG_UNSUPPORTED = 67
ERR_OPERATION_TIMEOUT = 68
ERR_ACCESS_DENIED = 88
ERR_AUTH_UNAVAILABLE = 94

FROM_NONE = 0
FROM_RPC = 7
FROM_CONF = 9
FROM_QEMU = 10
FROM_REMOTE = 13
FROM_STORAGE = 18
FROM_NETWORK = 19
FROM_DOMAIN = 20
FROM_SECURITY = 24
FROM_NWFILTER = 33
FROM_FIREWALL = 59
FROM_POLKIT = 60

#: What failed, as the error names it. One entry of
#: :data:`vibebox_core.hypervisor.errors.ERROR_TABLE` per component (and optionally per error
#: code within it).
Component = Literal[
    "connection",
    "virtiofsd",
    "dnsmasq",
    "firewall",
    "subnet",
    "kvm",
    "memory",
    "qemu",
    "storage",
    "nwfilter",
    "network",
    "domain",
    "definition",
    "busy",
    "libvirt",
]

#: A program or resource that names itself in the message is the component that failed, whatever
#: libvirt module reported it (virtiofsd's refusal arrives as a QEMU error about its socket,
#: ``chr-vu-fs0`` / ``fs0-fs.sock``; dnsmasq's as a network error).
_NAMED: tuple[tuple[str, Component], ...] = (
    ("virtiofs", "virtiofsd"),
    ("chr-vu-fs", "virtiofsd"),
    ("-fs.sock", "virtiofsd"),
    ("dnsmasq", "dnsmasq"),
    ("iptables", "firewall"),
    ("ip6tables", "firewall"),
    ("ebtables", "firewall"),
    ("nftables", "firewall"),
    ("domaintype=kvm", "kvm"),
    ("/dev/kvm", "kvm"),
    ("kvm is not available", "kvm"),
    ("kvm_create_vm", "kvm"),
)

#: Error codes that say by themselves what failed.
_BY_CODE: dict[int, Component] = {
    ERR_NO_CONNECT: "connection",
    ERR_AUTH_FAILED: "connection",
    ERR_AUTH_UNAVAILABLE: "connection",
    ERR_ACCESS_DENIED: "connection",
    ERR_RPC: "connection",
    ERR_NO_NWFILTER: "nwfilter",
    ERR_BUILD_FIREWALL: "firewall",
    ERR_NO_NETWORK: "network",
    ERR_NO_DOMAIN: "domain",
    ERR_OPERATION_TIMEOUT: "busy",
    ERR_XML_ERROR: "definition",
    ERR_CONFIG_UNSUPPORTED: "definition",
}

#: The libvirt module that reported the error, when the code is a generic one.
_BY_DOMAIN: dict[int, Component] = {
    FROM_RPC: "connection",
    FROM_REMOTE: "connection",
    FROM_POLKIT: "connection",
    FROM_NWFILTER: "nwfilter",
    FROM_FIREWALL: "firewall",
    FROM_STORAGE: "storage",
    FROM_SECURITY: "storage",
    FROM_NETWORK: "network",
    FROM_QEMU: "qemu",
    FROM_DOMAIN: "definition",
    FROM_CONF: "definition",
}

#: Only for errors that carry neither a telling code nor a module (``VIR_FROM_NONE``, e.g. the
#: network driver's "already in use"): libvirt's fixed wording of that condition.
_UNATTRIBUTED: tuple[tuple[str, Component], ...] = (
    ("failed to connect socket", "connection"),
    ("unable to connect to server", "connection"),
    ("cannot connect", "connection"),
    ("already in use by interface", "subnet"),
    ("network is already in use", "subnet"),
    ("already exists with uuid", "definition"),
    ("is already defined with uuid", "definition"),
    ("state change lock", "busy"),
    ("cannot allocate memory", "memory"),
    ("out of memory", "memory"),
    ("cannot access storage file", "storage"),
    ("unable to stat", "storage"),
    ("could not open", "storage"),
)

#: errno values libvirt's system errors carry (``virError.int1``), and their strerror text for
#: callers that only have the message.
_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ECONNREFUSED, errno.ENOMEM, errno.ENOSPC)

# libvirt quotes paths with ASCII or typographic quotes, depending on the message.
_QUOTED_PATH = re.compile("['\u2018\"](/[^'\u2019\"]+)['\u2019\"]")
_BARE_PATH = re.compile(r"(?<![\w.])(/[^\s:'\"\u2018\u2019,;]+)")


@dataclass(frozen=True)
class LibvirtFailure:
    """One libvirt error, taken apart for the table.

    Attributes:
        code: ``virError.code`` (``libvirt.VIR_ERR_*``).
        domain: ``virError.domain``: the libvirt module that reported it (``VIR_FROM_*``).
        message: libvirt's message.
        errno: the system errno of a ``VIR_ERR_SYSTEM_ERROR`` (``virError.int1``), else None.
        action: what vibebox was doing ("start VM vibebox-p-0192abcd").
        uri: the libvirt connection URI.
        component: what failed (:func:`failed_component`).
    """

    code: int
    domain: int
    message: str
    errno: int | None
    action: str
    uri: str
    component: Component

    @property
    def path(self) -> Path | None:
        """The first path the message names, if any."""
        match = _QUOTED_PATH.search(self.message) or _BARE_PATH.search(self.message)
        return Path(match.group(1)) if match else None

    @property
    def base(self) -> str:
        return f"could not {self.action}: {self.message}"


def errno_from(message: str) -> int | None:
    """The errno whose strerror text ``message`` contains (for errors that carry no number)."""
    low = message.lower()
    for number in _ERRNOS:
        if os.strerror(number).lower() in low:
            return number
    return None


def failed_component(code: int, domain: int, message: str) -> Component:
    """Which component failed: the program the message names, else the error code, else the
    libvirt module that reported it, else (unattributed errors only) libvirt's fixed wording."""
    low = message.lower()
    for marker, component in _NAMED:
        if marker in low:
            return component
    if code in _BY_CODE:
        return _BY_CODE[code]
    if domain in _BY_DOMAIN:
        return _BY_DOMAIN[domain]
    for marker, component in _UNATTRIBUTED:
        if marker in low:
            return component
    return "libvirt"
