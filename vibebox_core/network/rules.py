"""Network policy: which domains a session's guest may reach.

An entry names a domain and matches it and every subdomain; ``*.example.com`` and
``example.com`` mean the same. Matching is a pure function so it can be tested without a VM;
enforcement (proxy, DNS, nwfilter) is built on top of it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from vibebox_core.errors import NetworkPolicyError
from vibebox_core.network import addresses
from vibebox_core.sanitize import clean

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


# ---------------------------------------------------------------------------------------------
# Decisions

Mode = Literal["allowlist", "blocklist"]
MODES: tuple[Mode, ...] = ("allowlist", "blocklist")

# Where the enforcement listens on the session network's gateway (the host side of the bridge).
# Each session has its own gateway address, so fixed ports never collide between sessions.
PROXY_PORT = 3128
DNS_FILTER_PORT = 5400  # away from dnsmasq (53) and mDNS (5353)


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one host.

    Attributes:
        verdict: ``"allowed"`` or ``"blocked"``.
        reason: one short sentence a person can read in the log, e.g.
            ``"not in the allowlist"``.
    """

    verdict: Literal["allowed", "blocked"]
    reason: str

    @property
    def allowed(self) -> bool:
        """True when the host may be reached."""
        return self.verdict == "allowed"


def _is_ip(host: str) -> bool:
    # Every spelling the C resolver reads as an address (``2130706433``, ``0x7f.1``) counts.
    return addresses.parse_ip_literal(host) is not None


def _valid_host(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) or _UNDERSCORE_LABEL.match(label) for label in name.split("."))


# Real names sometimes carry underscores (SRV-style labels); they are harmless to match.
_UNDERSCORE_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")


@dataclass(frozen=True)
class Policy:
    """A session's network policy: a mode and normalised domain entries.

    Args:
        mode: ``"allowlist"`` (only listed domains) or ``"blocklist"`` (all but listed domains).
        entries: domain entries; each is normalised with :func:`normalize_entry`.

    Raises:
        ValueError: an unknown mode or an invalid entry.
    """

    mode: Mode = "blocklist"
    entries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"network mode must be 'allowlist' or 'blocklist', got {self.mode!r}")
        normalised = tuple(dict.fromkeys(normalize_entry(entry) for entry in self.entries))
        object.__setattr__(self, "entries", normalised)

    @classmethod
    def from_network(cls, network: _NetworkLike) -> Policy:
        """Build the policy of a ``config.NetworkConfig``."""
        if network.mode not in MODES:
            raise ValueError(
                f"network mode must be 'allowlist' or 'blocklist', got {network.mode!r}"
            )
        mode: Mode = "allowlist" if network.mode == "allowlist" else "blocklist"
        return cls(mode, tuple(network.entries))

    def matching_entry(self, host: str) -> str | None:
        """Return the entry that ``host`` falls under (the most specific one), or None."""
        name = host.strip().lower().rstrip(".")
        hits = [e for e in self.entries if name == e or name.endswith("." + e)]
        return max(hits, key=len) if hits else None

    def decide(self, host: str) -> Verdict:
        """Judge one host name as asked for by the guest.

        IP addresses cannot be judged by name: an allowlist refuses them, a blocklist lets
        them through (the proxy still refuses the host's own loopback). Malformed names are
        always refused.
        """
        name = host.strip().lower().rstrip(".")
        if _is_ip(name):
            if self.mode == "allowlist":
                return Verdict("blocked", "IP addresses are not allowed in allowlist mode")
            return Verdict("allowed", "IP address; the blocklist only names domains")
        if not _valid_host(name):
            return Verdict("blocked", "not a valid host name")
        entry = self.matching_entry(name)
        if self.mode == "allowlist":
            if entry is None:
                return Verdict("blocked", "not in the allowlist")
            return Verdict("allowed", f"allowlist entry {entry}")
        if entry is not None:
            return Verdict("blocked", f"blocklist entry {entry}")
        return Verdict("allowed", "not in the blocklist")


# ---------------------------------------------------------------------------------------------
# Enforcement on the VM's interface (both modes; the filter itself: vibebox_core.network.nwfilter)


def nwfilter_name(session_id: str) -> str:
    """Return the libvirt nwfilter name of one session: ``vibebox-<session id>``.

    The whole id: UUIDv7 prefixes repeat for sessions created within a minute.
    """
    return f"vibebox-{session_id.strip().lower()}"


# ---------------------------------------------------------------------------------------------
# Pointing the guest at the proxy


def guest_proxy_env(gateway_ip: str, port: int = PROXY_PORT) -> dict[str, str]:
    """Return the proxy environment for the guest (``guest.json`` "env").

    Both spellings are set because tools disagree on which one they read (curl ignores
    upper-case ``HTTP_PROXY``; others only read upper case).
    """
    url = f"http://{ipaddress.IPv4Address(gateway_ip)}:{port}"
    no_proxy = "localhost,127.0.0.1,::1"
    return {
        "http_proxy": url,
        "https_proxy": url,
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "no_proxy": no_proxy,
        "NO_PROXY": no_proxy,
    }


# ---------------------------------------------------------------------------------------------
# Approval: a digest of what the guest may reach (mounts + network)


class _MountLike(Protocol):
    @property
    def host(self) -> Path: ...
    @property
    def guest(self) -> str: ...
    @property
    def read_only(self) -> bool: ...


class _PortLike(Protocol):
    @property
    def host_port(self) -> int: ...
    @property
    def guest_port(self) -> int: ...


class _NetworkLike(Protocol):
    @property
    def mode(self) -> str: ...
    @property
    def entries(self) -> tuple[str, ...]: ...
    @property
    def ports(self) -> tuple[_PortLike, ...]: ...


class _BoxLike(Protocol):
    @property
    def mounts(self) -> tuple[_MountLike, ...]: ...


class PolicyConfig(Protocol):
    """The parts of ``config.Config`` the approval digest covers."""

    @property
    def box(self) -> _BoxLike: ...
    @property
    def network(self) -> _NetworkLike: ...


POLICY_VERSION = 1
APPROVED_DIGEST_KEY = "approved_policy"
APPROVED_POLICY_KEY = "approved_policy_json"


def canonical_policy(config: PolicyConfig) -> dict[str, Any]:
    """Return the approvable part of a config as plain JSON data.

    Covers the extra mounts (the project mount is always the same) and the whole
    ``[network]`` table. Entries are sorted and de-duplicated (order means nothing); mounts
    keep their order (a later mount may shadow an earlier one).
    """
    return {
        "version": POLICY_VERSION,
        "mounts": [
            {"host": str(m.host), "guest": m.guest, "read_only": bool(m.read_only)}
            for m in config.box.mounts
        ],
        "network": {
            "mode": config.network.mode,
            "entries": sorted(set(config.network.entries)),
            "ports": [[p.host_port, p.guest_port] for p in config.network.ports],
        },
    }


def canonical_json(policy: Mapping[str, Any]) -> str:
    """Serialise a canonical policy the one way the digest is computed over."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def policy_digest(config: PolicyConfig | Mapping[str, Any]) -> str:
    """Return ``sha256:<hex>`` over the canonical mounts + network of a config.

    Args:
        config: a ``Config`` or an already canonical policy dict.
    """
    policy = config if isinstance(config, Mapping) else canonical_policy(config)
    return "sha256:" + hashlib.sha256(canonical_json(policy).encode()).hexdigest()


def _mount_text(mount: Mapping[str, Any]) -> str:
    access = "ro" if mount.get("read_only") else "rw"
    return f"{mount.get('host')} → {mount.get('guest')} ({access})"


def policy_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Describe, one line each, how ``new`` differs from ``old`` (both canonical policies).

    Lines start with ``+`` (added or widened), ``-`` (removed) or ``~`` (changed), e.g.
    ``"+ network entry: evil.example"``; the approval dialog shows them as they are.
    """
    lines: list[str] = []
    old_mounts = {m.get("guest"): m for m in old.get("mounts", [])}
    new_mounts = {m.get("guest"): m for m in new.get("mounts", [])}
    for guest, mount in new_mounts.items():
        before = old_mounts.get(guest)
        if before is None:
            lines.append(f"+ mount: {_mount_text(mount)}")
        elif before != mount:
            lines.append(f"~ mount: {_mount_text(before)} is now {_mount_text(mount)}")
    for guest, mount in old_mounts.items():
        if guest not in new_mounts:
            lines.append(f"- mount: {_mount_text(mount)}")

    old_net: Mapping[str, Any] = old.get("network", {})
    new_net: Mapping[str, Any] = new.get("network", {})
    if old_net.get("mode") != new_net.get("mode"):
        lines.append(f"~ network mode: {old_net.get('mode')} → {new_net.get('mode')}")
    old_entries = set(old_net.get("entries", []))
    new_entries = set(new_net.get("entries", []))
    for entry in sorted(new_entries - old_entries):
        lines.append(f"+ network entry: {entry}")
    for entry in sorted(old_entries - new_entries):
        lines.append(f"- network entry: {entry}")
    old_ports = [tuple(p) for p in old_net.get("ports", [])]
    new_ports = [tuple(p) for p in new_net.get("ports", [])]
    for host_port, guest_port in (p for p in new_ports if p not in old_ports):
        lines.append(f"+ port forward: host 127.0.0.1:{host_port} → guest {guest_port}")
    for host_port, guest_port in (p for p in old_ports if p not in new_ports):
        lines.append(f"- port forward: host 127.0.0.1:{host_port} → guest {guest_port}")
    # The rest of an approved snapshot (vibebox_core.config.approval): resources, URI, grace.
    for table, keys in _VALUE_KEYS:
        old_table: Mapping[str, Any] = old.get(table, {})
        new_table: Mapping[str, Any] = new.get(table, {})
        for key in keys:
            if key in new_table and old_table.get(key) != new_table.get(key):
                lines.append(f"~ {key}: {old_table.get(key, '-')} → {new_table.get(key)}")
    if not lines and canonical_json(old) != canonical_json(new):
        lines.append("~ policy format changed")
    # Paths and values come from a guest-writable file: never a raw control character.
    return [clean(line, None) for line in lines]


_VALUE_KEYS = (
    ("box", ("cpus", "memory_mb", "disk_gb", "accel", "libvirt_uri")),
    ("supervisor", ("auto_shutdown_ms",)),
)


@dataclass(frozen=True)
class ApprovalCheck:
    """How a config's mounts + network compare with what the user last approved.

    Attributes:
        status: ``"new"`` (nothing approved yet), ``"approved"`` or ``"changed"``.
        digest: digest of the config as it is now.
        diff: lines from :func:`policy_diff` (empty unless ``"changed"``).
    """

    status: Literal["new", "approved", "changed"]
    digest: str
    diff: tuple[str, ...] = ()

    @property
    def needs_approval(self) -> bool:
        """True when the user must confirm before the session may start with this config."""
        return self.status == "changed"


def check_approval(extra: Mapping[str, Any], config: PolicyConfig) -> ApprovalCheck:
    """Compare a config with the approval stored in a session index entry's ``extra``.

    Args:
        extra: ``SessionEntry.extra`` (keys :data:`APPROVED_DIGEST_KEY` and
            :data:`APPROVED_POLICY_KEY`).
        config: the project's config as it is now.
    """
    policy = canonical_policy(config)
    digest = policy_digest(policy)
    approved = extra.get(APPROVED_DIGEST_KEY)
    if not approved:
        return ApprovalCheck("new", digest)
    if approved == digest:
        return ApprovalCheck("approved", digest)
    old: Mapping[str, Any] = {}
    stored = extra.get(APPROVED_POLICY_KEY)
    if isinstance(stored, str):
        try:
            loaded = json.loads(stored)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict) and policy_digest(loaded) == approved:
            # The index may hold the whole approved snapshot (vibebox_core.config.approval): only
            # its mounts + network are compared here.
            old = {key: loaded[key] for key in _POLICY_KEYS if key in loaded}
            if policy_digest(old) == digest:
                return ApprovalCheck("approved", digest)
    diff = policy_diff(old, policy) if old else ["~ the previously approved policy is unknown"]
    return ApprovalCheck("changed", digest, tuple(diff))


_POLICY_KEYS = ("version", "mounts", "network")


class _ExtraWriter(Protocol):
    def set_extra(self, session_id: str, key: str, value: Any) -> None: ...


def record_approval(index: _ExtraWriter, session_id: str, config: PolicyConfig) -> str:
    """Store a config's mounts + network as approved for a session; return the digest.

    Both the digest and the canonical JSON are kept (as strings, so any TOML writer can
    hold them) so the next change can be shown as a difference.
    """
    return record_values(index, session_id, canonical_policy(config))


def record_values(index: _ExtraWriter, session_id: str, values: Mapping[str, Any]) -> str:
    """Store approved canonical values (a policy, or a whole approved snapshot's values) in a
    session's index entry; return their digest."""
    digest = policy_digest(values)
    index.set_extra(session_id, APPROVED_POLICY_KEY, canonical_json(values))
    index.set_extra(session_id, APPROVED_DIGEST_KEY, digest)
    return digest


class PolicyNotApprovedError(NetworkPolicyError):
    """The project's mounts or network changed since the user last approved them.

    Attributes:
        check: the comparison, with the difference to show (``check.diff``).
    """

    def __init__(self, check: ApprovalCheck, *, project: str = "", first: bool = False) -> None:
        where = f" in {clean(project, None)}" if project else ""
        lines = "\n".join(f"  {clean(line, None)}" for line in check.diff)
        if first:
            message = (
                "vibebox.toml grants more than the defaults and was never approved for this "
                f"project (it may come from a cloned repository or a program in the guest):\n"
                f"{lines}"
            )
        else:
            message = (
                "vibebox.toml changed the session's mounts, network or resources since you "
                f"approved them (a program in the guest can edit it):\n{lines}"
            )
        super().__init__(
            message,
            hint=f"review the change, then run `vibebox approve`{where} to apply it, "
            "or undo it in vibebox.toml",
        )
        self.check = check
        self.first = first


class _ApprovalIndex(_ExtraWriter, Protocol):
    def get(self, session_id: str) -> Any: ...


def require_approval(
    index: _ApprovalIndex, session_id: str, config: PolicyConfig, *, project: str = ""
) -> ApprovalCheck:
    """Gate a start on the user's approval of the config's mounts + network.

    The first start of a session approves what it finds only when it adds no mounts and no
    port forwards (a cloned repository's file is not the user's word); later starts must
    match the approved digest. :func:`vibebox_core.config.approval.gate` is the full gate (every
    value, the snapshot outside the project) that starts use.

    Args:
        index: the session index (``SessionIndex``).
        session_id: the session.
        config: the project's config as it is now.
        project: the project directory, named in the error's hint.

    Raises:
        PolicyNotApprovedError: the policy changed; ``.check.diff`` says how. After the user
            agrees, call :func:`record_approval` and start again.
    """
    check = check_approval(index.get(session_id).extra, config)
    if check.status == "new":
        policy = canonical_policy(config)
        if policy["mounts"] or policy["network"]["ports"]:
            # Extra mounts or port forwards were never approved: ask, even the first time.
            diff = policy_diff({"mounts": [], "network": policy["network"]}, policy)
            raise PolicyNotApprovedError(
                ApprovalCheck("changed", check.digest, tuple(diff)), project=project, first=True
            )
        record_approval(index, session_id, config)
        return check
    if check.needs_approval:
        raise PolicyNotApprovedError(check, project=project)
    return check
