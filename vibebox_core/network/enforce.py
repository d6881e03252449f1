"""The running side of a session's network policy: its filters and the approvals they follow.

While the VM runs, the session's supervisor keeps a :class:`SessionNetwork`: a
:class:`NetworkEnforcer` (the filtering proxy and the DNS filter, both on the network's
gateway, the proxy with the session's approved secrets and CA) and an
:class:`ApprovalFollower` that hands it each policy (and each set of secrets) the user approves
(:meth:`NetworkEnforcer.set_policy`). How the network itself is defined is
:mod:`vibebox_core.network.definition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vibebox_core.config.grants import (
    policy_diff,
)
from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import Secret
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.errors import NetworkPolicyError, VibeboxError
from vibebox_core.network import ratelimit
from vibebox_core.network.definition import DNS_FILTER_PORT, PROXY_PORT
from vibebox_core.network.dnsfilter import DnsFilter, Upstream, start_dns_filter
from vibebox_core.network.proxy import FilteringProxy, Resolver
from vibebox_core.network.secrets import SecretVault, load_placeholder_key
from vibebox_core.network.tlsca import SessionCA


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


class NetworkEnforcer:
    """The proxy and the DNS filter of one running session, on its gateway.

    Args:
        policy: the approved policy.
        log_path: the session's network log (``ProjectPaths.network_log``).
        gateway_ip: the host's address on the session network (binds there).
        subnet: the session network; only its guest (and its dnsmasq) are served.
        proxy_port, dns_port: where to listen (0 picks free ports, for tests).
        resolver, upstream: name resolution for the proxy and the DNS filter (tests).
        secrets: the session's approved secrets (the proxy injects them); None: none.
        ca: the session CA the guest trusts (the proxy terminates TLS with it for the hosts
            that carry a secret); None: every HTTPS connection stays a blind tunnel.
    """

    def __init__(
        self,
        policy: Policy,
        log_path: Path,
        gateway_ip: str,
        subnet: str | ipaddress.IPv4Network | None = None,
        *,
        proxy_port: int = PROXY_PORT,
        dns_port: int = DNS_FILTER_PORT,
        resolver: Resolver | None = None,
        upstream: Upstream | None = None,
        secrets: SecretVault | None = None,
        ca: SessionCA | None = None,
    ) -> None:
        self.gateway_ip = gateway_ip
        self.clients = ipaddress.IPv4Network(str(subnet)) if subnet is not None else None
        self.proxy_port = proxy_port
        self.dns_port = dns_port
        self.secrets = secrets
        self.proxy = FilteringProxy(
            policy, log_path, resolver=resolver, clients=self.clients, secrets=secrets, ca=ca
        )
        self._upstream = upstream
        self._log_path = log_path
        self._server: asyncio.Server | None = None
        self.dns: DnsFilter | None = None

    @property
    def policy(self) -> Policy:
        return self.proxy.policy

    async def start(self) -> None:
        """Listen on the gateway; call once the session network is up.

        Raises:
            NetworkPolicyError: an address or port cannot be bound (the network is not up,
                or another program holds the port).
        """
        try:
            self._server = await self.proxy.start(self.gateway_ip, self.proxy_port)
            self.proxy_port = int(self._server.sockets[0].getsockname()[1])
            self.dns = await start_dns_filter(
                self.gateway_ip,
                self.dns_port,
                self.proxy.policy,
                self._log_path,
                upstream=self._upstream,
                clients=self.clients,
            )
            self.dns_port = self.dns.address[1]
        except OSError as exc:
            await self.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                raise NetworkPolicyError(
                    f"cannot start the network filter: {self.gateway_ip} is not an address "
                    "of this host (is the session's network up?)",
                    hint="start the session again; `virsh net-list --all` shows its network",
                ) from exc
            raise NetworkPolicyError(
                f"cannot start the network filter on {self.gateway_ip}: {exc.strerror or exc}",
                hint=f"another program may hold port {self.proxy_port} or {self.dns_port} there",
            ) from exc

    def set_policy(self, policy: Policy) -> None:
        """Apply an approved policy to new connections and queries at once."""
        self.proxy.policy = policy
        if self.dns is not None:
            self.dns.policy = policy

    async def close(self) -> None:
        """Stop listening and cut open connections."""
        if self.dns is not None:
            self.dns.close()
            self.dns = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self.proxy.close_connections()
        ratelimit.close(self._log_path)  # the summaries of the last window


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
        :meth:`status` once it is applied."""
        if self.approved is not None:
            await follow_once(self.follower, self.approved, on_change=self.on_change)
        return self.status()

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
