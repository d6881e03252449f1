"""What is in force for a project: its approved snapshot, and the file reviewed against it.

``vibebox.toml`` lives in the project directory, which the guest can write (as root) and which
a cloned repository brings along. So nothing in it that changes what the *host* does is taken
from the file: the libvirt URI, the mounts (resolved host paths), the ``[network]`` mode,
entries and ports, the ``[[secrets]]`` (which host values go to which hosts), ``cpus``,
``memory_mb``, ``disk_gb``, ``accel`` and ``auto_shutdown_ms`` come from the **approved
snapshot** (:mod:`vibebox_core.config.snapshot`), kept outside the project under
``$VIBEBOX_HOME``. The snapshot holds the approved *values*, so the host runs
from them (starts, status polls, ``vibebox list``, the dashboard, ``vibebox explain``'s
enforced view) while a change the file holds and nobody approved yet is shown apart
(:attr:`Review.diff`).

The rules:

- A project whose file grants nothing beyond the defaults
  (:func:`~vibebox_core.config.snapshot.grants_more`) is approved by its first start without
  asking (:func:`vibebox_core.session.approve.gate`). Any other first start, and every later
  change of one of those keys, must be approved on the host (``vibebox approve`` or the
  dashboard's dialog), which shows the difference.
- The snapshot belongs to the project directory, not to a session: ``:new``, ``delete`` and
  start again keep it. A second clone (another path) has its own.
- The approved mounts and network are also copied into the session index entry
  (:data:`~vibebox_core.config.grants.APPROVED_POLICY_KEY`), where the running supervisor and the
  port forwards read them.
- The approved mounts' directories are pinned (device and inode, :mod:`vibebox_core.share.pins`)
  in the snapshot, so a start can tell a directory swapped after approval.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from vibebox_core.config.grants import (
    ApprovalCheck,
    PolicyNotApprovedError,
    policy_diff,
    policy_digest,
)
from vibebox_core.config.load import apply_env, load_config
from vibebox_core.config.schema import BoxConfig, Config
from vibebox_core.config.snapshot import (
    Snapshot,
    approved_values,
    config_from_values,
    default_values,
    grants_more,
    read_snapshot,
)
from vibebox_core.config.validate import check_libvirt_uri
from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths

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
        diff: the pending change, one line each (:func:`~vibebox_core.config.grants.policy_diff`
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
        """The pending change as an :class:`~vibebox_core.config.grants.ApprovalCheck`.

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
