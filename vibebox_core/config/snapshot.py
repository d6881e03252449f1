"""The approved snapshot: the values the host approved of a project, kept outside it.

``$VIBEBOX_HOME/approved/<key>.json`` (mode 0600, ``<key>`` derived from the project's real
directory path) holds the approved *values* (:func:`approved_values`), a digest over them, when
they were approved and the pinned directories of the approved mounts
(:mod:`vibebox_core.share.pins`), so a start can tell a directory swapped after approval. A
damaged snapshot counts as none. :func:`config_from_values` checks every value again before
the host uses it; :func:`grants_more` says whether new values give the guest or the VM
anything the old ones did not. The approved mounts, network and secrets are also copied into
the session index entry, where :func:`read_approved` reads them back (the supervisor builds
its secrets with :func:`~vibebox_core.config.secrets.secrets_from_canonical`). How a project's
file is compared with its snapshot is :mod:`vibebox_core.config.approval`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config.grants import (
    APPROVED_DIGEST_KEY,
    APPROVED_POLICY_KEY,
    canonical_json,
    canonical_policy,
    policy_digest,
)
from vibebox_core.config.hostnames import normalize_entry
from vibebox_core.config.mounts import mount_refusal
from vibebox_core.config.schema import (
    ACCELS,
    AUTO_SHUTDOWN_MS_RANGE,
    CPUS_RANGE,
    DISK_GB_RANGE,
    MEMORY_MB_RANGE,
    NETWORK_MODES,
    BoxConfig,
    Config,
    Mount,
    NetworkConfig,
    PortForward,
    SupervisorConfig,
)
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.config.validate import check_libvirt_uri
from vibebox_core.errors import ConfigError
from vibebox_core.fileio import ProjectFileError, read_bounded, write_atomic
from vibebox_core.paths import ProjectPaths, vibebox_home
from vibebox_core.share.pins import pin

SNAPSHOT_VERSION = 1
#: The largest snapshot read back (a snapshot is a few hundred bytes).
_SNAPSHOT_LIMIT = 256 * 1024


# ---------------------------------------------------------------------------------------------
# Values


def approved_values(config: Config) -> dict[str, Any]:
    """The approvable values of a config as plain JSON data.

    :func:`~vibebox_core.config.grants.canonical_policy` (the extra mounts, ``[network]`` and,
    when there are any, the ``secrets``) plus ``box`` (``cpus``, ``memory_mb``, ``disk_gb``,
    ``accel``, ``libvirt_uri``) and ``supervisor`` (``auto_shutdown_ms``). Load the config
    with ``env=False``: the ``$VIBEBOX_ACCEL`` override is the host user's, not the file's.
    """
    values = canonical_policy(config)
    values["box"] = {
        "cpus": config.box.cpus,
        "memory_mb": config.box.memory_mb,
        "disk_gb": config.box.disk_gb,
        "accel": config.box.accel,
        "libvirt_uri": config.box.libvirt_uri,
    }
    values["supervisor"] = {"auto_shutdown_ms": config.supervisor.auto_shutdown_ms}
    return values


def default_values(project: ProjectPaths) -> dict[str, Any]:
    """The values of a project without a ``vibebox.toml`` (every key at its default)."""
    return approved_values(Config(path=project.config))


def _int_in(value: Any, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{value} is out of range")
    return value


def config_from_values(project: ProjectPaths, values: Mapping[str, Any]) -> Config:
    """Rebuild the :class:`~vibebox_core.config.schema.Config` a snapshot's values describe.

    Every value is checked again (ranges, the URI rule, the mount rules, the secret rules), so
    a damaged snapshot never drives libvirt, nor makes the host read or send a secret.
    ``$VIBEBOX_ACCEL`` is not applied (:func:`vibebox_core.config.load.apply_env`).

    Raises:
        ValueError: the values are not a valid approved config.
    """
    box = values.get("box")
    network = values.get("network")
    sup = values.get("supervisor")
    mounts = values.get("mounts")
    if not (
        isinstance(box, Mapping)
        and isinstance(network, Mapping)
        and isinstance(sup, Mapping)
        and isinstance(mounts, list)
    ):
        raise ValueError("approved values without box, network, supervisor or mounts")
    uri = box.get("libvirt_uri")
    if not isinstance(uri, str) or check_libvirt_uri(uri) is not None:
        raise ValueError(f"approved libvirt_uri {uri!r} is not allowed")
    accel = box.get("accel")
    if accel not in ACCELS:
        raise ValueError(f"approved accel {accel!r} is not allowed")
    parsed_mounts: list[Mount] = []
    for item in mounts:
        if not isinstance(item, Mapping):
            raise ValueError("a bad approved mount")
        host, guest, read_only = item.get("host"), item.get("guest"), item.get("read_only")
        if not isinstance(host, str) or not isinstance(guest, str) or not guest.startswith("/"):
            raise ValueError("a bad approved mount")
        refused = mount_refusal(Path(host), project)
        if refused is not None or not Path(host).is_absolute():
            raise ValueError(f"approved mount refused: {refused}")
        parsed_mounts.append(Mount(Path(host), guest, bool(read_only)))
    mode = network.get("mode")
    entries = network.get("entries", [])
    ports = network.get("ports", [])
    if mode not in NETWORK_MODES or not isinstance(entries, list) or not isinstance(ports, list):
        raise ValueError("a bad approved network table")
    normalised = tuple(dict.fromkeys(normalize_entry(str(e)) for e in entries))
    forwards: list[PortForward] = []
    for pair in ports:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("a bad approved port forward")
        forwards.append(PortForward(_int_in(pair[0], (1, 65535)), _int_in(pair[1], (1, 65535))))
    secrets = secrets_from_canonical(values)
    return Config(
        path=project.config,
        box=BoxConfig(
            cpus=_int_in(box.get("cpus"), CPUS_RANGE),
            memory_mb=_int_in(box.get("memory_mb"), MEMORY_MB_RANGE),
            disk_gb=_int_in(box.get("disk_gb"), DISK_GB_RANGE),
            accel="kvm" if accel == "kvm" else "tcg" if accel == "tcg" else "auto",
            libvirt_uri=uri,
            mounts=tuple(parsed_mounts),
        ),
        network=NetworkConfig(
            mode="allowlist" if mode == "allowlist" else "blocklist",
            entries=normalised,
            ports=tuple(forwards),
        ),
        supervisor=SupervisorConfig(
            auto_shutdown_ms=_int_in(sup.get("auto_shutdown_ms"), AUTO_SHUTDOWN_MS_RANGE)
        ),
        secrets=secrets,
    )


def _secrets_grow(base: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def by_name(values: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
        items = values.get("secrets", [])
        if not isinstance(items, list):
            return {}
        return {s.get("name"): s for s in items if isinstance(s, Mapping)}

    old_secrets = by_name(base)
    for name, secret in by_name(new).items():
        before = old_secrets.get(name)
        if before is None or before.get("source") != secret.get("source"):
            return True
        if set(secret.get("hosts", [])) - set(before.get("hosts", [])):
            return True
    # new holds something that is not a list of secrets: never call that narrowing
    return "secrets" in new and not isinstance(new.get("secrets"), list)


def grants_more(base: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when ``new`` lets the guest or the VM have something ``base`` does not.

    A grant: a mount not in ``base`` (or one turned read-write), a port forward not in
    ``base``, a wider network (blocklist from allowlist, a new allowlist entry, a removed
    blocklist entry), more CPUs, memory, disk or shutdown grace, or another libvirt URI or
    accelerator. Narrowing (fewer resources, an allowlist, a blocklist entry) is no grant.
    A secret not in ``base``, or one with another source or a new host, is a grant too: it
    makes the host read a value and send it out. Removing a secret or a host is not.
    """
    if any(m not in base.get("mounts", []) for m in new.get("mounts", [])):
        return True
    if _secrets_grow(base, new):
        return True
    old_net: Mapping[str, Any] = base.get("network", {})
    new_net: Mapping[str, Any] = new.get("network", {})
    old_ports = [list(p) for p in old_net.get("ports", [])]
    if any(list(p) not in old_ports for p in new_net.get("ports", [])):
        return True
    old_entries, new_entries = set(old_net.get("entries", [])), set(new_net.get("entries", []))
    if old_net.get("mode") == "allowlist":
        if new_net.get("mode") != "allowlist" or new_entries - old_entries:
            return True
    elif new_net.get("mode") != "allowlist" and old_entries - new_entries:
        return True
    old_box: Mapping[str, Any] = base.get("box", {})
    new_box: Mapping[str, Any] = new.get("box", {})
    for key in ("cpus", "memory_mb", "disk_gb"):
        if int(new_box.get(key, 0)) > int(old_box.get(key, 0)):
            return True
    if new_box.get("libvirt_uri") != old_box.get("libvirt_uri"):
        return True
    if new_box.get("accel") != old_box.get("accel"):
        return True
    old_grace = int(base.get("supervisor", {}).get("auto_shutdown_ms", 0))
    return int(new.get("supervisor", {}).get("auto_shutdown_ms", 0)) > old_grace


# ---------------------------------------------------------------------------------------------
# The snapshot file


def snapshot_path(project: ProjectPaths) -> Path:
    """Where the approved snapshot of a project lives (keyed by its real directory path)."""
    real = os.path.realpath(project.root)
    key = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return vibebox_home() / paths.APPROVED_DIR / f"{key}.json"


@dataclass(frozen=True)
class Snapshot:
    """An approved snapshot as read back.

    Attributes:
        values: the approved values (:func:`approved_values`).
        digest: ``sha256:`` over them (:func:`~vibebox_core.config.grants.policy_digest`).
        approved_at: when, ISO 8601 UTC.
        pins: per approved mount's guest path, its directory when it was approved as
            :meth:`vibebox_core.share.pins.PinnedDir.to_dict` (``{"path", "dev", "ino"}``).
    """

    values: dict[str, Any]
    digest: str
    approved_at: str
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_snapshot(project: ProjectPaths) -> Snapshot | None:
    """The project's approved snapshot; None when there is none or it is damaged.

    A damaged snapshot (bad JSON, a digest that does not match, values that no longer pass
    the rules, another project's) counts as none: the project is treated as never approved.
    """
    path = snapshot_path(project)
    try:
        raw = read_bounded(path, limit=_SNAPSHOT_LIMIT, what="approval snapshot")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ProjectFileError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
        return None
    values, digest = data.get("values"), data.get("digest")
    if not isinstance(values, dict) or not isinstance(digest, str):
        return None
    if data.get("project") != os.path.realpath(project.root):
        return None
    if policy_digest(values) != digest:
        return None
    try:
        config_from_values(project, values)
    except (ValueError, TypeError):
        return None
    pins = data.get("pins")
    return Snapshot(
        values=values,
        digest=digest,
        approved_at=str(data.get("approved_at", "")),
        pins=pins if isinstance(pins, dict) else {},
    )


def _pins(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Pin each approved mount's directory (device and inode, no symlink on the way)."""
    return {m["guest"]: pin(m["host"]).to_dict() for m in values.get("mounts", [])}


def write_snapshot(project: ProjectPaths, values: Mapping[str, Any]) -> Snapshot:
    """Record ``values`` as the project's approved snapshot (atomically, mode 0600).

    Raises:
        ConfigError: the snapshot cannot be written under ``VIBEBOX_HOME``.
        MountPinError: a mount's directory cannot be pinned (a symlink on the way, gone).
    """
    plain = json.loads(canonical_json(values))
    snapshot = Snapshot(
        values=plain,
        digest=policy_digest(plain),
        approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        pins=_pins(plain),
    )
    path = snapshot_path(project)
    document = {
        "version": SNAPSHOT_VERSION,
        "project": os.path.realpath(project.root),
        "approved_at": snapshot.approved_at,
        "digest": snapshot.digest,
        "values": snapshot.values,
        "pins": snapshot.pins,
    }
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(document, indent=2) + "\n").encode(), mode=0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot record the approval in {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable",
        ) from None
    return snapshot


def approved_pins(project: ProjectPaths) -> dict[str, dict[str, Any]]:
    """The pinned directories of the approved mounts, by guest path (see :class:`Snapshot`)."""
    snapshot = read_snapshot(project)
    return snapshot.pins if snapshot is not None else {}


# ---------------------------------------------------------------------------------------------
# The copy in the session index


def read_approved(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the approved canonical policy of a session index entry's ``extra``.

    None when nothing was approved yet or when the stored policy does not match the stored
    digest (a damaged or hand-edited index is not trusted).
    """
    digest, stored = extra.get(APPROVED_DIGEST_KEY), extra.get(APPROVED_POLICY_KEY)
    if not isinstance(digest, str) or not isinstance(stored, str):
        return None
    try:
        data = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(data, dict) or policy_digest(data) != digest:
        return None
    return data
