"""Following the user's approvals while a session runs: what applies at once, what waits.

The running session enforces the *approved* policy from the session index, never the file.
:class:`ApprovalFollower` hands each newly approved policy (and set of secrets) to the running
:class:`~vibebox_core.network.enforcer.NetworkEnforcer`, and says which approved changes wait for
the next start (:func:`change_applies` says the same of one change); :func:`follow_approvals`
polls for them and :func:`follow_once` is one round of it (also run on the supervisor's
``reload``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from vibebox_core.config.grants import policy_diff
from vibebox_core.config.policy import Policy
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.errors import VibeboxError
from vibebox_core.network import ratelimit

if TYPE_CHECKING:  # the dashboard asks change_applies(); the proxy's modules stay unloaded
    from vibebox_core.network.enforcer import NetworkEnforcer


def change_applies(old: dict[str, Any], new: dict[str, Any]) -> Literal["live", "next start"]:
    """Say when an approved change of canonical policy takes effect on a running session.

    Entries are judged by the running proxy and DNS filter, so a change of entries only is
    applied at once (``"live"``; port forwards follow on the next attach). A change of mode
    (the network's isolation and nwfilter) or of mounts needs the VM restarted, and so does a
    change of secrets for the guest (its placeholders and CA come with the boot; the proxy
    follows at once, so a removed secret is never sent again).
    """
    if old.get("mounts") != new.get("mounts") or old.get("secrets") != new.get("secrets"):
        return "next start"
    if old.get("network", {}).get("mode") != new.get("network", {}).get("mode"):
        return "next start"
    return "live"


def policy_from_canonical(data: Mapping[str, Any]) -> Policy:
    """Build the :class:`Policy` of a canonical policy dict (the approved one in the index).

    Raises:
        ValueError: the dict is not a canonical policy.
    """
    network = data.get("network")
    if not isinstance(network, Mapping):
        raise ValueError("canonical policy without a network table")
    mode, entries = network.get("mode"), network.get("entries", [])
    if mode not in ("allowlist", "blocklist") or not isinstance(entries, list):
        raise ValueError("canonical policy with a bad network table")
    return Policy("allowlist" if mode == "allowlist" else "blocklist", tuple(map(str, entries)))


class ApprovalFollower:
    """Applies the policy the user approves while a session runs.

    The running session enforces the *approved* policy from the session index, never the
    file: the guest can edit ``vibebox.toml`` but not the index on the host.

    Args:
        enforcer: the running proxy and DNS filter.
        applied: the approved canonical policy the session started with (None: it started
            fail-closed, and the first approval seen is applied).
    """

    def __init__(self, enforcer: NetworkEnforcer, applied: dict[str, Any] | None = None) -> None:
        self.enforcer = enforcer
        self.applied = applied
        # One read-and-apply at a time (the 2-s poll and a reload): a read that started
        # before a newer approval can never be applied after it.
        self.reading = asyncio.Lock()
        # The mounts the VM was defined with; its mode is the enforcer's, which never changes.
        self._started_mounts = applied.get("mounts") if applied is not None else None
        # The secrets whose placeholders the guest got at boot.
        self._started_secrets = applied.get("secrets") if applied is not None else None

    @property
    def pending(self) -> list[str]:
        """The approved changes that wait for the next start, as :func:`policy_diff` lines.

        Compared with what the VM started with, so approving the old mode or mounts again
        clears them. A change of secrets is listed too: the proxy follows it at once (a
        removed secret is never sent again), but the guest's placeholders are those of its
        boot.
        """
        if self.applied is None:
            return []

        def restart_part(mode: Any, mounts: Any, secrets: Any) -> dict[str, Any]:
            part = {"mounts": mounts or [], "network": {"mode": mode}}
            return {**part, "secrets": secrets} if secrets else part

        return policy_diff(
            restart_part(self.enforcer.policy.mode, self._started_mounts, self._started_secrets),
            restart_part(
                self.applied.get("network", {}).get("mode"),
                self.applied.get("mounts"),
                self.applied.get("secrets"),
            ),
        )

    @property
    def pending_restart(self) -> bool:
        """An approved change (mode or mounts) waits for the next start."""
        return bool(self.pending)

    def status(self) -> dict[str, Any]:
        """What the supervisor's ``status`` answer says about the policy (for the inspector).

        ``{"applied": "live" | "next start", "pending": [lines]}``: ``"live"`` when the
        approved policy is the one in force, ``"next start"`` when part of it (``pending``)
        needs the VM restarted.
        """
        pending = self.pending
        return {"applied": "next start" if pending else "live", "pending": pending}

    def update(self, approved: dict[str, Any] | None) -> Literal["live", "next start"] | None:
        """Take the approved canonical policy as it is now; apply it when it is new.

        Returns:
            ``"live"`` when the whole approved policy is in force (a change of entries),
            ``"next start"`` when part of it needs a restart (mode or mounts; new entries
            still apply at once when the mode is unchanged), None when nothing new was
            approved.
        """
        if approved is None or approved == self.applied:
            return None
        policy = policy_from_canonical(approved)
        secrets = secrets_from_canonical(approved)  # both checked before either applies
        first = self.applied is None
        self.applied = approved
        if first:
            # Started fail-closed: the VM has the mounts and secrets of this first approval.
            self._started_mounts = approved.get("mounts")
            self._started_secrets = approved.get("secrets")
        if self.enforcer.secrets is not None:
            self.enforcer.secrets.update(secrets)
        if policy.mode == self.enforcer.policy.mode:
            self.enforcer.set_policy(policy)
        return "next start" if self.pending else "live"


async def follow_approvals(
    follower: ApprovalFollower,
    approved: Callable[[], dict[str, Any] | None],
    *,
    interval: float = 2.0,
    on_change: Callable[[str], None] | None = None,
) -> None:
    """Apply policy changes the user approves while the session runs (a supervisor task).

    Every ``interval`` seconds ``approved()`` (run in a thread) reads the approved canonical
    policy from the session index (:func:`vibebox_core.config.snapshot.read_approved`); a new
    one goes to :meth:`ApprovalFollower.update`. Mount changes always wait for the next start.

    Args:
        follower: holds the enforcer and the policy the session started with.
        approved: reads the approved canonical policy; a VibeboxError, OSError or
            ValueError skips the round.
        interval: seconds between checks.
        on_change: told ``"live"`` or ``"next start"`` for each newly approved policy.
    """
    while True:
        await follow_once(follower, approved, on_change=on_change)
        ratelimit.flush_all()  # summaries of finished log windows, even when the flood stopped
        await asyncio.sleep(interval)


async def follow_once(
    follower: ApprovalFollower,
    approved: Callable[[], dict[str, Any] | None],
    *,
    on_change: Callable[[str], None] | None = None,
) -> Literal["live", "next start"] | None:
    """Read the approved canonical policy once and apply it when it is new.

    One round of :func:`follow_approvals`, also run by :meth:`SessionNetwork.reload` (the
    supervisor's ``reload`` op, after ``vibebox allow``/``block``) so a change applies now
    rather than at the next poll. Rounds never overlap (:attr:`ApprovalFollower.reading`).

    Returns:
        What :meth:`ApprovalFollower.update` returned (None: nothing new, or unreadable).
    """
    async with follower.reading:
        try:
            data = await asyncio.to_thread(approved)
            outcome = follower.update(data)
        except (VibeboxError, OSError, ValueError):
            outcome = None
    if outcome is not None and on_change is not None:
        on_change(outcome)
    return outcome
