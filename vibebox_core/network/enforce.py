"""The running side of a session's network policy: its filters and the approvals they follow.

While the VM runs, the session's supervisor keeps a :class:`SessionNetwork`: a
:class:`~vibebox_core.network.enforcer.NetworkEnforcer` (the filtering proxy and the DNS
filter, both on the network's gateway, the proxy with the session's approved secrets and CA)
and an :class:`~vibebox_core.network.follow.ApprovalFollower` that hands it each policy (and
each set of secrets) the user approves. :func:`start_session_network` builds and starts them.
How the network itself is defined is :mod:`vibebox_core.network.definition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import Secret
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.errors import NetworkPolicyError, VibeboxError
from vibebox_core.network.definition import DNS_FILTER_PORT, PROXY_PORT
from vibebox_core.network.enforcer import NetworkEnforcer
from vibebox_core.network.follow import (
    ApprovalFollower,
    follow_approvals,
    follow_once,
    policy_from_canonical,
)
from vibebox_core.network.secrets import SecretVault, load_placeholder_key
from vibebox_core.network.tlsca import SessionCA

#: Until the user approved anything, nothing gets out: an empty allowlist.
FAIL_CLOSED = Policy("allowlist", ())


@dataclass
class SessionNetwork:
    """The running network services of one session (what the supervisor keeps).

    Attributes:
        enforcer: the proxy and the DNS filter.
        follower: applies approvals; ``follower.pending`` lists the approved changes that
            wait for the next start.
    """

    enforcer: NetworkEnforcer
    follower: ApprovalFollower
    task: asyncio.Task[None] | None = None
    #: Reads the approved canonical policy (what :func:`follow_approvals` polls); None: no
    #: reload (it answers the status as it is).
    approved: Callable[[], dict[str, Any] | None] | None = None
    on_change: Callable[[str], None] | None = None

    def status(self) -> dict[str, Any]:
        """Fields for the supervisor's ``status`` answer: ``{"policy": ...}``
        (:meth:`ApprovalFollower.status`)."""
        return {"policy": self.follower.status()}

    async def reload(self) -> dict[str, Any]:
        """Re-read the approved policy now (the supervisor's ``reload`` op); return
        :meth:`status` once it is applied, with the ``"mode"`` in force (approved entries
        apply at once only while the approved mode is that one)."""
        if self.approved is not None:
            await follow_once(self.follower, self.approved, on_change=self.on_change)
        return {**self.status(), "mode": self.enforcer.policy.mode}

    async def stop(self) -> None:
        """Stop following approvals and close the proxy and the DNS filter."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.enforcer.close()


async def _session_secrets(
    current: dict[str, Any] | None, directory: Path | None, ca_trusted: bool
) -> tuple[SecretVault | None, SessionCA | None]:
    """The vault of the approved secrets and the CA the guest trusts, for the proxy."""
    if directory is None:
        return None, None
    started: tuple[Secret, ...] = ()
    if current is not None:
        with contextlib.suppress(ValueError):  # a bad entry: no secrets (never a wrong one)
            started = secrets_from_canonical(current)
    key = await asyncio.to_thread(load_placeholder_key, directory)
    ca = None
    if ca_trusted:  # made by the cold start that seeded it; loaded here
        ca = await asyncio.to_thread(SessionCA.load_or_create, directory, directory.name[:8])
    return SecretVault(started, key), ca


async def start_session_network(
    log_path: Path,
    subnet: str | ipaddress.IPv4Network,
    approved: Callable[[], dict[str, Any] | None],
    *,
    interval: float = 2.0,
    on_change: Callable[[str], None] | None = None,
    bind_timeout: float = 10.0,
    proxy_port: int = PROXY_PORT,
    dns_port: int = DNS_FILTER_PORT,
    secrets_dir: Path | None = None,
    ca_trusted: bool = False,
) -> SessionNetwork:
    """Start a session's proxy and DNS filter on its gateway, enforcing the approved policy.

    For the supervisor, once the VM (and so its network) runs.

    Args:
        log_path: the session's network log.
        subnet: the session network (``Hypervisor.network_subnet``); the gateway is its
            first address.
        approved: reads the approved canonical policy from the session index, e.g.
            ``lambda: read_approved(SessionIndex().get(session_id).extra)``; None (nothing
            approved, or unreadable) enforces :data:`FAIL_CLOSED`.
        interval: seconds between checks for newly approved policies.
        on_change: told ``"live"`` / ``"next start"`` when an approved change arrives.
        bind_timeout: seconds to retry while the gateway address is not up yet.
        secrets_dir: the session's host-only secrets directory (its placeholder key and CA,
            :func:`vibebox_core.paths.session_secrets_dir`); None: no secrets are injected.
        ca_trusted: this boot's guest trusts the session CA (the seed had it): only then does
            the proxy terminate TLS for the hosts that carry a secret.

    Raises:
        NetworkPolicyError: the services cannot listen on the gateway.
        VibeboxError: the secrets directory holds a damaged key or CA.
    """
    network = ipaddress.IPv4Network(str(subnet))
    gateway = str(network.network_address + 1)
    try:
        current = await asyncio.to_thread(approved)
    except (VibeboxError, OSError, ValueError):
        current = None
    policy = FAIL_CLOSED
    if current is not None:
        try:
            policy = policy_from_canonical(current)
        except ValueError:
            current = None
    vault, ca = await _session_secrets(current, secrets_dir, ca_trusted)
    enforcer = NetworkEnforcer(
        policy,
        log_path,
        gateway,
        network,
        proxy_port=proxy_port,
        dns_port=dns_port,
        secrets=vault,
        ca=ca,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bind_timeout
    while True:
        try:
            await enforcer.start()
            break
        except NetworkPolicyError as exc:
            cause = exc.__cause__
            not_yet = isinstance(cause, OSError) and cause.errno == errno.EADDRNOTAVAIL
            if not not_yet or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.25)  # the bridge's address appears with the network
    session = SessionNetwork(
        enforcer, ApprovalFollower(enforcer, current), approved=approved, on_change=on_change
    )
    session.task = asyncio.create_task(
        follow_approvals(session.follower, approved, interval=interval, on_change=on_change)
    )
    return session
