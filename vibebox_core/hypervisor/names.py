"""The names libvirt and the guest see for a session: domain, network, bridge, MAC, share tags.

The domain's UUID is the session id; its name is ``vibebox-<project>-<first 8 hex>``, readable
in ``virsh list`` (README.md, "Sessions, the VM and SSH"). UUIDv7 ids share their first 8 hex
digits for about 65 s (they are the top bits of a millisecond timestamp), so everything that
must be unique per session on its own — the network name, the bridge, the MAC address, the
subnet (:func:`vibebox_core.hypervisor.network_xml.pick_subnet`) — is derived from the whole id
instead (:func:`session_digest`).
"""

from __future__ import annotations

import hashlib
import re
import uuid

from vibebox_core.errors import VMError

#: virtio-fs limits a mount tag to 36 bytes.
MAX_TAG_BYTES = 36
#: Linux interface names are at most 15 characters (IFNAMSIZ - 1).
MAX_BRIDGE_NAME = 15
#: The longest project part kept in a domain name.
MAX_PROJECT_PART = 40

_NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


def canonical_session_id(session_id: str) -> str:
    """Return ``session_id`` as a lower-case hyphenated UUID.

    Raises:
        VMError: the id is not a UUID (libvirt needs one for the domain).
    """
    try:
        return str(uuid.UUID(session_id))
    except (ValueError, AttributeError, TypeError):
        raise VMError(
            f"session id {session_id!r} is not a UUID",
            hint="the id in .vibebox/session-id is damaged; `vibebox list` shows the real one",
        ) from None


def _short(session_id: str) -> str:
    return canonical_session_id(session_id).replace("-", "")[:8]


def session_digest(session_id: str, purpose: str) -> bytes:
    """Stable per-session bytes for one purpose (MAC, subnet, bridge), from the whole id."""
    data = f"vibebox:{purpose}:{canonical_session_id(session_id)}".encode()
    return hashlib.sha256(data).digest()


def sanitise_project_name(project_name: str) -> str:
    """Turn a directory name into something safe inside a libvirt name and a shell word.

    Lower-case; every run of characters outside ``[a-z0-9._-]`` becomes one ``-``; leading and
    trailing ``-``/``.`` are dropped; at most :data:`MAX_PROJECT_PART` characters; ``project``
    when nothing is left.
    """
    cleaned = _NAME_UNSAFE.sub("-", project_name.lower()).strip("-.")
    cleaned = cleaned[:MAX_PROJECT_PART].rstrip("-.")
    return cleaned or "project"


def domain_name(project_name: str, session_id: str) -> str:
    """Return the readable domain name ``vibebox-<project>-<first 8 hex of the id>``."""
    return f"vibebox-{sanitise_project_name(project_name)}-{_short(session_id)}"


def network_name(session_id: str) -> str:
    """Return the name of the session's libvirt network: ``vibebox-<session id>``.

    The whole id, because UUIDv7 prefixes repeat for sessions created within a minute.
    """
    return f"vibebox-{canonical_session_id(session_id)}"


def nwfilter_name(session_id: str) -> str:
    """Return the libvirt nwfilter name of one session: ``vibebox-<session id>``.

    The whole id: UUIDv7 prefixes repeat for sessions created within a minute.
    """
    return f"vibebox-{session_id.strip().lower()}"


def network_uuid(session_id: str) -> str:
    """Return the network's UUID, derived from the session id.

    libvirt refuses to redefine a network whose definition carries another UUID (and makes up
    a random one when none is given), so the XML always names this stable one.
    """
    return str(uuid.uuid5(uuid.UUID(canonical_session_id(session_id)), "vibebox-network"))


def bridge_name(session_id: str) -> str:
    """Return the session network's bridge: ``vbx`` + 12 hex digits (15 characters)."""
    return "vbx" + session_digest(session_id, "bridge").hex()[: MAX_BRIDGE_NAME - 3]


def mac_address(session_id: str) -> str:
    """Return the guest NIC's stable MAC: ``52:54:00`` (QEMU's prefix) + 3 bytes from the id."""
    tail = session_digest(session_id, "mac")[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def session_id_from_network_name(name: str) -> str | None:
    """Return the session id a vibebox network name encodes, or None for other networks."""
    if not name.startswith("vibebox-"):
        return None
    try:
        return str(uuid.UUID(name.removeprefix("vibebox-")))
    except ValueError:
        return None


def checked_mac(mac: str) -> str:
    """Return ``mac`` in lower case.

    Raises:
        VMError: it is not six colon-separated hex bytes.
    """
    lower = mac.lower()
    if not _MAC_RE.match(lower):
        raise VMError(f"MAC address {mac!r} is malformed")
    return lower


def valid_tag(tag: str) -> bool:
    """True for a virtiofs mount tag: letters, digits, ``.`` ``_`` ``-``; at most 36 bytes."""
    return bool(_TAG_RE.match(tag)) and len(tag.encode()) <= MAX_TAG_BYTES
