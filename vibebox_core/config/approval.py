"""The approved snapshot: what the host takes from ``vibebox.toml``, kept outside the project.

``vibebox.toml`` lives in the project directory, which the guest can write (as root) and which
a cloned repository brings along. So nothing in it that changes what the *host* does is taken
from the file: the libvirt URI, the mounts (resolved host paths), the ``[network]`` mode,
entries and ports, ``cpus``, ``memory_mb``, ``disk_gb``, ``accel`` and ``auto_shutdown_ms``
come from the **approved snapshot**, ``$VIBEBOX_HOME/approved/<key>.json`` (mode 0600), where
``<key>`` is derived from the project's real directory path. The snapshot holds the approved
*values*, so the host runs from them (starts, status polls, ``vibebox list``, the dashboard,
``vibebox explain``'s enforced view) while a change the file holds and nobody approved yet is
shown apart (:attr:`Review.diff`).

The rules:

- A project whose file grants nothing beyond the defaults (:func:`grants_more`) is approved
  by its first start without asking. Any other first start, and every later change of one of
  those keys, must be approved on the host (``vibebox approve`` or the dashboard's dialog),
  which shows the difference.
- The snapshot belongs to the project directory, not to a session: ``:new``, ``delete`` and
  start again keep it. A second clone (another path) has its own.
- The approved mounts and network are also copied into the session index entry
  (:data:`~vibebox_core.network.rules.APPROVED_POLICY_KEY`), where the running supervisor and the
  port forwards read them.
- The approved mounts' directories are pinned (device and inode, :mod:`vibebox_core.share.pins`)
  in the snapshot, so a start can tell a directory swapped after approval.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vibebox_core.config.load import (
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
    apply_env,
    check_libvirt_uri,
    load_config,
    mount_refusal,
)
from vibebox_core.config.projectfile import ProjectFileError, read_bounded
from vibebox_core.errors import ConfigError, VibeboxError
from vibebox_core.fileio import write_atomic
from vibebox_core.network import rules as netpolicy
from vibebox_core.network.rules import (
    ApprovalCheck,
    PolicyNotApprovedError,
    canonical_json,
    canonical_policy,
    policy_diff,
    policy_digest,
)
from vibebox_core.paths import ProjectPaths, vibebox_home
from vibebox_core.share.pins import pin

#: Directory under ``VIBEBOX_HOME`` that holds one snapshot per approved project.
APPROVED_DIR = "approved"
SNAPSHOT_VERSION = 1
#: The largest snapshot read back (a snapshot is a few hundred bytes).
_SNAPSHOT_LIMIT = 256 * 1024

When = Literal["live", "next start"]


# ---------------------------------------------------------------------------------------------
# Values


def approved_values(config: Config) -> dict[str, Any]:
    """The approvable values of a config as plain JSON data.

    :func:`~vibebox_core.network.rules.canonical_policy` (the extra mounts and ``[network]``)
    plus ``box`` (``cpus``, ``memory_mb``, ``disk_gb``, ``accel``, ``libvirt_uri``) and
    ``supervisor`` (``auto_shutdown_ms``). Load the config with ``env=False``: the
    ``$VIBEBOX_ACCEL`` override is the host user's, not the file's.
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
    """Rebuild the :class:`~vibebox_core.config.load.Config` a snapshot's values describe.

    Every value is checked again (ranges, the URI rule, the mount rules), so a damaged
    snapshot never drives libvirt. ``$VIBEBOX_ACCEL`` is not applied (see :func:`apply_env`).

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
    normalised = tuple(dict.fromkeys(netpolicy.normalize_entry(str(e)) for e in entries))
    forwards: list[PortForward] = []
    for pair in ports:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("a bad approved port forward")
        forwards.append(PortForward(_int_in(pair[0], (1, 65535)), _int_in(pair[1], (1, 65535))))
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
    )


def grants_more(base: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when ``new`` lets the guest or the VM have something ``base`` does not.

    A grant: a mount not in ``base`` (or one turned read-write), a port forward not in
    ``base``, a wider network (blocklist from allowlist, a new allowlist entry, a removed
    blocklist entry), more CPUs, memory, disk or shutdown grace, or another libvirt URI or
    accelerator. Narrowing (fewer resources, an allowlist, a blocklist entry) is no grant.
    """
    if any(m not in base.get("mounts", []) for m in new.get("mounts", [])):
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
    return vibebox_home() / APPROVED_DIR / f"{key}.json"


@dataclass(frozen=True)
class Snapshot:
    """An approved snapshot as read back.

    Attributes:
        values: the approved values (:func:`approved_values`).
        digest: ``sha256:`` over them (:func:`~vibebox_core.network.rules.policy_digest`).
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
# Review: the file against the snapshot


@dataclass(frozen=True)
class Review:
    """How a project's ``vibebox.toml`` compares with what was approved.

    Attributes:
        status: ``"approved"`` (the file holds the approved values), ``"changed"`` (it
            differs: :attr:`diff` is pending), ``"new"`` (nothing approved yet) or
            ``"unreadable"`` (the file is refused: :attr:`error`).
        snapshot: the approved snapshot, None when there is none.
        file_values: what the file says (None when unreadable).
        diff: the pending change, one line each (:func:`~vibebox_core.network.rules.policy_diff`
            against the snapshot, or against the defaults before the first approval).
        error: why the file was refused.
    """

    project: ProjectPaths
    status: Literal["approved", "changed", "new", "unreadable"]
    snapshot: Snapshot | None
    file_values: dict[str, Any] | None
    diff: tuple[str, ...] = ()
    error: ConfigError | None = None

    @property
    def enforced_values(self) -> dict[str, Any]:
        """What the host uses: the snapshot's values, the defaults before any approval."""
        if self.snapshot is not None:
            return self.snapshot.values
        return default_values(self.project)

    @property
    def needs_approval(self) -> bool:
        """True when a start must ask first (a change, or a first start that grants more)."""
        if self.status == "changed":
            return True
        if self.status == "new" and self.file_values is not None:
            return grants_more(default_values(self.project), self.file_values)
        return False

    def enforced_config(self) -> Config:
        """The enforced values as a config, with ``$VIBEBOX_ACCEL`` applied."""
        try:
            config = config_from_values(self.project, self.enforced_values)
        except (ValueError, TypeError):  # an approved mount went bad since: defaults
            config = Config(path=self.project.config)
        return apply_env(config)

    def check(self) -> ApprovalCheck:
        """The pending change as an :class:`~vibebox_core.network.rules.ApprovalCheck`.

        Its ``digest`` is over the file's values: approving passes it back, so exactly what
        was shown is approved (a file changed again meanwhile is refused, not approved).
        """
        digest = policy_digest(self.file_values) if self.file_values is not None else ""
        status: Literal["new", "approved", "changed"] = (
            "changed" if self.needs_approval else "approved" if self.status == "approved" else "new"
        )
        return ApprovalCheck(status, digest, self.diff)

    def refusal(self) -> PolicyNotApprovedError:
        """The error a start raises while :attr:`needs_approval`."""
        return PolicyNotApprovedError(
            self.check(), project=str(self.project.root), first=self.status == "new"
        )


def review(project: ProjectPaths) -> Review:
    """Compare the project's ``vibebox.toml`` with its approved snapshot. Reads, never writes."""
    snapshot = read_snapshot(project)
    try:
        file_values = approved_values(load_config(project, create=False, env=False))
    except ConfigError as exc:
        return Review(project, "unreadable", snapshot, None, error=exc)
    if snapshot is None:
        base = default_values(project)
        diff = tuple(policy_diff(base, file_values))
        return Review(project, "new", None, file_values, diff)
    if policy_digest(file_values) == snapshot.digest:
        return Review(project, "approved", snapshot, file_values)
    diff = tuple(policy_diff(snapshot.values, file_values))
    return Review(project, "changed", snapshot, file_values, diff or ("~ a value changed",))


def enforced_config(project: ProjectPaths) -> Config:
    """The config the host uses for ``project``: its approved snapshot, never the file.

    Before any approval every value is the default. ``$VIBEBOX_ACCEL`` is applied. Never
    reads ``vibebox.toml``, so a guest edit cannot reach status polls or ``vibebox list``.
    """
    snapshot = read_snapshot(project)
    config = Config(path=project.config)
    if snapshot is not None:
        with contextlib.suppress(ValueError, TypeError):
            config = config_from_values(project, snapshot.values)
    return apply_env(config)


def enforced_uri(project: ProjectPaths) -> str:
    """The approved libvirt URI of ``project`` (``qemu:///system`` before any approval)."""
    snapshot = read_snapshot(project)
    if snapshot is not None:
        uri = snapshot.values.get("box", {}).get("libvirt_uri")
        if isinstance(uri, str) and check_libvirt_uri(uri) is None:
            return uri
    return BoxConfig().libvirt_uri


# ---------------------------------------------------------------------------------------------
# Starting and approving


def _sync_index(project: ProjectPaths, values: Mapping[str, Any], session_id: str | None) -> None:
    """Copy the approved values into the session's index entry (the supervisor reads them)."""
    from vibebox_core.index.sessions import SessionIndex
    from vibebox_core.network.enforce import read_approved

    index = SessionIndex()
    entry = index.get(session_id) if session_id else index.find_by_directory(project.root)
    if entry is None:
        return
    if read_approved(entry.extra) != values:
        netpolicy.record_values(index, entry.id, values)


def gate(project: ProjectPaths, session_id: str | None = None) -> Config:
    """Decide what a (cold) start may use; raise when the user must approve first.

    A project never approved whose file grants nothing beyond the defaults is approved here
    (its snapshot written). The approved values are copied into the session's index entry.

    Returns:
        The approved config, with ``$VIBEBOX_ACCEL`` applied.

    Raises:
        ConfigError: ``vibebox.toml`` is refused (bad value, symlink, FIFO, too large ...).
        PolicyNotApprovedError: a change, or a first start that grants more than the
            defaults, waits for approval; ``.check.diff`` says what.
    """
    found = review(project)
    if found.error is not None:
        raise found.error
    if found.needs_approval:
        raise found.refusal()
    assert found.file_values is not None
    snapshot = found.snapshot
    if snapshot is None:
        snapshot = write_snapshot(project, found.file_values)
    _sync_index(project, snapshot.values, session_id)
    return apply_env(config_from_values(project, snapshot.values))


def applies(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> When:
    """When an approved change reaches a running session: entries live, the rest next start."""
    from vibebox_core.network.enforce import change_applies

    if old is None:
        return "next start"
    if old.get("box") != new.get("box") or old.get("supervisor") != new.get("supervisor"):
        return "next start"
    return change_applies(dict(old), dict(new))


def approve(project: ProjectPaths, *, expected: str | None = None) -> When:
    """Approve what ``vibebox.toml`` says now; return when it takes effect.

    Args:
        project: the project.
        expected: the digest the user was shown (:meth:`Review.check`). When the file says
            something else by now (the guest changed it again), nothing is approved.

    Raises:
        ConfigError: the file is refused.
        PolicyNotApprovedError: ``expected`` no longer matches; the error holds the new diff.
    """
    found = review(project)
    if found.error is not None:
        raise found.error
    assert found.file_values is not None
    if expected is not None and policy_digest(found.file_values) != expected:
        raise found.refusal()
    old = found.snapshot.values if found.snapshot is not None else None
    snapshot = write_snapshot(project, found.file_values)
    with contextlib.suppress(VibeboxError):
        _sync_index(project, snapshot.values, None)
    return applies(old, snapshot.values)
