"""Where the network policy meets a session: its network's definition and its running filters.

Two moments need the policy. When the session's libvirt network and domain are defined,
:func:`plan_network` says how (isolated or NAT, the DNS forwarder, the nwfilter, the guest's
proxy environment). While the VM runs, the session's supervisor keeps a
:class:`NetworkEnforcer` (the filtering proxy and the DNS filter, both on the network's
gateway) and hands it an approved policy change with :meth:`NetworkEnforcer.set_policy`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vibebox_core.dnsfilter import DnsFilter, Upstream, start_dns_filter
from vibebox_core.errors import NetworkPolicyError, VibeboxError
from vibebox_core.netpolicy import (
    DNS_FILTER_PORT,
    PROXY_PORT,
    Policy,
    PolicyConfig,
    canonical_policy,
    guest_proxy_env,
    nwfilter_name,
    nwfilter_xml,
    policy_digest,
)
from vibebox_core.proxy import FilteringProxy, Resolver


@dataclass(frozen=True)
class NetworkPlan:
    """How a session's network is defined for its policy.

    Attributes:
        isolated: no ``<forward>`` in the libvirt network (allowlist: no route out).
        dns_forwarder: ``"GATEWAY#PORT"`` for ``NetworkSpec.dns_forwarder``: dnsmasq asks
            only the DNS filter (with ``no-resolv``/``no-hosts``).
        nwfilter: the nwfilter name for ``DomainSpec.nwfilter`` (allowlist only).
        nwfilter_xml: its definition, for ``Hypervisor.define_nwfilter`` before the domain
            is defined (allowlist only).
        guest_env: the proxy environment for ``guest.json`` "env".
        proxy: (address, port) the proxy listens on.
        dns: (address, port) the DNS filter listens on.
    """

    isolated: bool
    dns_forwarder: str
    nwfilter: str | None
    nwfilter_xml: str | None
    guest_env: dict[str, str] = field(default_factory=dict)
    proxy: tuple[str, int] = ("", PROXY_PORT)
    dns: tuple[str, int] = ("", DNS_FILTER_PORT)


def plan_network(
    session_id: str,
    policy: Policy,
    gateway_ip: str | ipaddress.IPv4Address,
    *,
    proxy_port: int = PROXY_PORT,
    dns_port: int = DNS_FILTER_PORT,
) -> NetworkPlan:
    """Return how to define the session's network and domain for ``policy``.

    Args:
        session_id: the session (names the nwfilter).
        policy: the approved policy.
        gateway_ip: the host's address on the session network (``NetworkSpec.gateway``).
    """
    gateway = str(ipaddress.IPv4Address(str(gateway_ip)))
    allowlist = policy.mode == "allowlist"
    name = nwfilter_name(session_id) if allowlist else None
    return NetworkPlan(
        isolated=allowlist,
        dns_forwarder=f"{gateway}#{dns_port}",
        nwfilter=name,
        nwfilter_xml=nwfilter_xml(name, gateway, proxy_port) if name else None,
        guest_env=guest_proxy_env(gateway, proxy_port),
        proxy=(gateway, proxy_port),
        dns=(gateway, dns_port),
    )


def change_applies(old: dict[str, Any], new: dict[str, Any]) -> Literal["live", "next start"]:
    """Say when an approved change of canonical policy takes effect on a running session.

    Entries are judged by the running proxy and DNS filter, so a change of entries only is
    applied at once (``"live"``; port forwards follow on the next attach). A change of mode
    (the network's isolation and nwfilter) or of mounts needs the VM restarted.
    """
    if old.get("mounts") != new.get("mounts"):
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
    ) -> None:
        self.gateway_ip = gateway_ip
        self.clients = ipaddress.IPv4Network(str(subnet)) if subnet is not None else None
        self.proxy_port = proxy_port
        self.dns_port = dns_port
        self.proxy = FilteringProxy(policy, log_path, resolver=resolver, clients=self.clients)
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


class ApprovalFollower:
    """Decides what to do with the approved policy while a session runs.

    Args:
        enforcer: the running proxy and DNS filter.
        config: the (approved) config the session started with; None takes the first
            approved config seen.
    """

    def __init__(self, enforcer: NetworkEnforcer, config: PolicyConfig | None = None) -> None:
        self.enforcer = enforcer
        self.applied: dict[str, Any] | None = None
        self.digest: str | None = None
        if config is not None:
            self.applied = canonical_policy(config)
            self.digest = policy_digest(self.applied)
        self.pending_restart = False

    def update(
        self, digest: str | None, config: PolicyConfig | None
    ) -> Literal["live", "next start"] | None:
        """Look at the approved digest and the config; apply a newly approved policy.

        Returns:
            ``"live"`` when the whole change took effect (entries), ``"next start"`` when
            part of it needs a restart (mode or mounts; new entries still apply at once when
            the mode is unchanged), None when nothing new was approved. A config
            that does not match the approved digest (edited, not approved) is ignored.
        """
        if digest is None or config is None or digest == self.digest:
            return None
        if policy_digest(config) != digest:
            return None  # edited after (or without) approval: never applied
        new = canonical_policy(config)
        old, self.applied, self.digest = self.applied, new, digest
        if old is None:
            return None  # the session's own start: nothing changed yet
        policy = Policy.from_network(config.network)
        if policy.mode == self.enforcer.policy.mode:
            self.enforcer.set_policy(policy)
        if change_applies(old, new) == "live":
            return "live"
        self.pending_restart = True
        return "next start"


async def follow_approvals(
    follower: ApprovalFollower,
    approved: Callable[[], tuple[str | None, PolicyConfig]],
    *,
    interval: float = 2.0,
    on_change: Callable[[str], None] | None = None,
) -> None:
    """Apply policy changes the user approves while the session runs (a supervisor task).

    Every ``interval`` seconds, ``approved()`` (run in a thread) returns the approved digest
    from the session index and the config as it is now; see :meth:`ApprovalFollower.update`.
    Mount changes always wait for the next start (the VM's devices are fixed while it runs).

    Args:
        follower: holds the enforcer and the policy the session started with.
        approved: reads ``(approved digest, current config)``; a VibeboxError, OSError or
            ValueError skips the round.
        interval: seconds between checks.
        on_change: told ``"live"`` or ``"next start"`` for each newly approved policy.
    """
    while True:
        try:
            digest, config = await asyncio.to_thread(approved)
        except (VibeboxError, OSError, ValueError):
            digest, config = None, None
        outcome = follower.update(digest, config)
        if outcome is not None and on_change is not None:
            on_change(outcome)
        await asyncio.sleep(interval)
