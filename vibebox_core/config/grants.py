"""What a config grants the guest (its extra mounts, ``[network]`` and ``[[secrets]]``), as
approved data.

The approvable part of a config has one canonical JSON form (:func:`canonical_policy`) and a
digest over it (:func:`policy_digest`); the session index keeps both for the approved policy,
so a change shows as a difference (:func:`policy_diff`), one line each, and a start can be
gated on the user's word (:func:`require_approval`). The whole approved snapshot, which also
holds the resources and the libvirt URI, is :mod:`vibebox_core.config.snapshot`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vibebox_core.config.schema import Config
from vibebox_core.config.secrets import canonical_secrets
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.sanitize import clean

POLICY_VERSION = 1
APPROVED_DIGEST_KEY = "approved_policy"
APPROVED_POLICY_KEY = "approved_policy_json"


def canonical_policy(config: Config) -> dict[str, Any]:
    """Return the approvable part of a config as plain JSON data.

    Covers the extra mounts (the project mount is always the same), the whole ``[network]``
    table and the ``[[secrets]]`` (``"secrets"``, sorted by name, each one's hosts sorted).
    Entries are sorted and de-duplicated (order means nothing); mounts keep their order (a
    later mount may shadow an earlier one). ``"secrets"`` is there only when there is a
    secret, so a config without any keeps the digest it had before secrets existed (nobody
    re-approves after an upgrade).
    """
    policy: dict[str, Any] = {
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
    if config.secrets:
        policy["secrets"] = canonical_secrets(config.secrets)
    return policy


def canonical_json(policy: Mapping[str, Any]) -> str:
    """Serialise a canonical policy the one way the digest is computed over."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def policy_digest(config: Config | Mapping[str, Any]) -> str:
    """Return ``sha256:<hex>`` over the canonical mounts + network of a config.

    Args:
        config: a ``Config`` or an already canonical policy dict.
    """
    policy = config if isinstance(config, Mapping) else canonical_policy(config)
    return "sha256:" + hashlib.sha256(canonical_json(policy).encode()).hexdigest()


def _mount_text(mount: Mapping[str, Any]) -> str:
    access = "ro" if mount.get("read_only") else "rw"
    return f"{mount.get('host')} → {mount.get('guest')} ({access})"


def _secret_text(secret: Mapping[str, Any]) -> str:
    # The whole source is shown: a command: source runs on the host once approved.
    hosts = ", ".join(str(h) for h in secret.get("hosts", []))
    return f"from {secret.get('source')} for {hosts}"


def _secret_lines(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    def by_name(policy: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
        items = policy.get("secrets", [])
        if not isinstance(items, list):
            return {}
        return {s.get("name"): s for s in items if isinstance(s, Mapping)}

    old_secrets, new_secrets = by_name(old), by_name(new)
    lines: list[str] = []
    for name, secret in new_secrets.items():
        before = old_secrets.get(name)
        if before is None:
            lines.append(f"+ secret {name} {_secret_text(secret)}")
        elif _secret_text(before) != _secret_text(secret):
            lines.append(f"~ secret {name}: {_secret_text(before)} is now {_secret_text(secret)}")
    for name, secret in old_secrets.items():
        if name not in new_secrets:
            lines.append(f"- secret {name} {_secret_text(secret)}")
    return lines


def policy_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Describe, one line each, how ``new`` differs from ``old`` (both canonical policies).

    Lines start with ``+`` (added or widened), ``-`` (removed) or ``~`` (changed), e.g.
    ``"+ network entry: evil.example"`` or ``"+ secret TOKEN from env:TOKEN for api.example"``;
    the approval dialog shows them as they are.
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
    lines += _secret_lines(old, new)
    # The rest of an approved snapshot (vibebox_core.config.snapshot): resources, URI, grace.
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


def check_approval(extra: Mapping[str, Any], config: Config) -> ApprovalCheck:
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
            # The index may hold the whole approved snapshot (vibebox_core.config.snapshot): only
            # its mounts + network are compared here.
            old = {key: loaded[key] for key in _POLICY_KEYS if key in loaded}
            if policy_digest(old) == digest:
                return ApprovalCheck("approved", digest)
    diff = policy_diff(old, policy) if old else ["~ the previously approved policy is unknown"]
    return ApprovalCheck("changed", digest, tuple(diff))


_POLICY_KEYS = ("version", "mounts", "network", "secrets")


class ExtraWriter(Protocol):
    """Where approvals are stored: the session index (``SessionIndex``), or a test's dict.

    A role interface, not an import dodge: the config layer never imports the index.
    """

    def set_extra(self, session_id: str, key: str, value: Any) -> None: ...


def record_approval(index: ExtraWriter, session_id: str, config: Config) -> str:
    """Store a config's mounts + network as approved for a session; return the digest.

    Both the digest and the canonical JSON are kept (as strings, so any TOML writer can
    hold them) so the next change can be shown as a difference.
    """
    return record_values(index, session_id, canonical_policy(config))


def record_values(index: ExtraWriter, session_id: str, values: Mapping[str, Any]) -> str:
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
                "vibebox.toml changed the session's mounts, network, secrets or resources since "
                f"you approved them (a program in the guest can edit it):\n{lines}"
            )
        super().__init__(
            message,
            hint=f"review the change, then run `vibebox approve`{where} to apply it, "
            "or undo it in vibebox.toml",
        )
        self.check = check
        self.first = first


class ApprovalIndex(ExtraWriter, Protocol):
    """The session index as the gate reads and writes it (``SessionIndex``, or a test's dict)."""

    def get(self, session_id: str) -> Any: ...


def require_approval(
    index: ApprovalIndex, session_id: str, config: Config, *, project: str = ""
) -> ApprovalCheck:
    """Gate a start on the user's approval of the config's mounts + network.

    The first start of a session approves what it finds only when it adds no mounts, no
    port forwards and no secrets (a cloned repository's file is not the user's word); later
    starts must match the approved digest. :func:`vibebox_core.session.approve.gate` is the
    full gate (every value, the snapshot outside the project) that starts use.

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
        if policy["mounts"] or policy["network"]["ports"] or policy.get("secrets"):
            # Extra mounts, port forwards or secrets were never approved: ask, even the first
            # time.
            diff = policy_diff({"mounts": [], "network": policy["network"]}, policy)
            raise PolicyNotApprovedError(
                ApprovalCheck("changed", check.digest, tuple(diff)), project=project, first=True
            )
        record_approval(index, session_id, config)
        return check
    if check.needs_approval:
        raise PolicyNotApprovedError(check, project=project)
    return check
