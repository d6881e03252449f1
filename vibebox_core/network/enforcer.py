"""The proxy and the DNS filter of one running session, on its network's gateway.

:class:`NetworkEnforcer` starts and stops both, binds them to the session's gateway so only its
own guest is served, and takes each approved policy at once (:meth:`NetworkEnforcer.set_policy`).
The proxy also holds the session's approved secrets and CA (:mod:`vibebox_core.network.intercept`).
What feeds it approvals is :mod:`vibebox_core.network.follow`; the whole running side is
:mod:`vibebox_core.network.enforce`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
from pathlib import Path

from vibebox_core.config.policy import Policy
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.network import ratelimit
from vibebox_core.network.definition import DNS_FILTER_PORT, PROXY_PORT
from vibebox_core.network.dnsfilter import DnsFilter, Upstream, start_dns_filter
from vibebox_core.network.proxy import FilteringProxy, Resolver
from vibebox_core.network.secrets import SecretVault
from vibebox_core.network.tlsca import SessionCA


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
