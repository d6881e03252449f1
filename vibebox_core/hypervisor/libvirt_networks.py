"""The session's libvirt network and network filter, as the adapter defines and removes them.

:class:`LibvirtNetworks` is the network half of
:class:`~vibebox_core.hypervisor.libvirt.LibvirtHypervisor`: the subnets in use, defining,
starting and removing a session's network, and its nwfilter (the fence of
:mod:`vibebox_core.hypervisor.nwfilter`), defined with the UUID libvirt already knows.
"""

from __future__ import annotations

import ipaddress

from vibebox_core.errors import NwfilterError, VMError
from vibebox_core.hypervisor import names, nwfilter
from vibebox_core.hypervisor.domain_xml import parse_domain_filter
from vibebox_core.hypervisor.errors import translate_libvirt_error
from vibebox_core.hypervisor.failure import (
    ERR_NO_NETWORK,
    ERR_NO_NWFILTER,
    ERR_OPERATION_INVALID,
)
from vibebox_core.hypervisor.libvirt_connection import XML_INACTIVE, LibvirtConnection
from vibebox_core.hypervisor.network_xml import SUBNET_PREFIX, parse_network_subnets, parse_routes

ROUTES = "/proc/net/route"
"""The host's IPv4 routes: libvirt refuses to start a network whose subnet one of them has."""


class LibvirtNetworks(LibvirtConnection):
    """Networks and network filters over a :class:`LibvirtConnection`; missing ones are fine."""

    def used_subnets(self, *, exclude_session: str | None = None) -> set[ipaddress.IPv4Network]:
        """IPv4 subnets of every libvirt network (active or not) and, on this host, of every
        interface's route (no broader than a session's network: an interface libvirt does
        not know, say a bridge left behind, makes libvirt refuse that subnet too), minus one
        session's own."""
        conn = self._connection()
        skip = names.network_name(exclude_session) if exclude_session else None
        used: set[ipaddress.IPv4Network] = set()
        if self.uri.startswith("qemu:///"):
            own = names.bridge_name(exclude_session) if exclude_session else None
            try:
                with open(ROUTES, encoding="ascii", errors="replace") as table:
                    routes = parse_routes(table.read())
            except OSError:
                routes = []
            used.update(
                network
                for interface, network in routes
                if interface != own and network.prefixlen >= SUBNET_PREFIX
            )
        with self._errors("list networks"):
            networks = conn.listAllNetworks(0)
        for net in networks:
            try:
                if net.name() == skip:
                    continue
                used.update(parse_network_subnets(net.XMLDesc(0)))
            except Exception:  # a network vanishing mid-listing is not an error
                continue
        return used

    def network_subnet(self, session_id: str) -> ipaddress.IPv4Network | None:
        """The subnet of the session's network if it is defined."""
        net = self._network(session_id)
        if net is None:
            return None
        with self._errors(f"read network {names.network_name(session_id)}"):
            subnets = parse_network_subnets(net.XMLDesc(0))
        return subnets[0] if subnets else None

    def define_network(self, network_xml: str) -> None:
        """Define a network, or update the persistent definition of an existing one."""
        conn = self._connection()
        with self._errors("define the session network"):
            conn.networkDefineXML(network_xml)

    def start_network(self, session_id: str, *, restart: bool = False) -> None:
        """Make the session's network active (re-create it first when ``restart``)."""
        name = names.network_name(session_id)
        net = self._network(session_id)
        if net is None:
            raise VMError(
                f"the network {name} of session {session_id} is not defined",
                hint="recreate the session (`:new`), or delete it with `vibebox delete`",
            )
        with self._errors(f"start network {name}"):
            active = bool(net.isActive())
        if active and restart:
            self._tolerant(f"stop network {name}", net.destroy, ERR_OPERATION_INVALID)
            active = False
        if not active:
            # OPERATION_INVALID: another thread or process started it meanwhile.
            self._tolerant(f"start network {name}", net.create, ERR_OPERATION_INVALID)

    def undefine_network(self, session_id: str) -> None:
        """Destroy and remove the session's network; missing is fine."""
        net = self._network(session_id)
        if net is None:
            return
        name = names.network_name(session_id)
        try:
            self._tolerant(
                f"stop network {name}", net.destroy, ERR_OPERATION_INVALID, ERR_NO_NETWORK
            )
            self._tolerant(
                f"remove network {name}", net.undefine, ERR_NO_NETWORK, ERR_OPERATION_INVALID
            )
        except VMError:
            # Another vibebox deleting the same session removed it meanwhile: libvirt then
            # fails on the config file it already deleted ("cannot remove config file").
            if self._network(session_id) is not None:
                raise

    def define_nwfilter(self, nwfilter_xml: str) -> None:
        """Define (or update) an nwfilter, keeping the UUID libvirt already has for its name.

        libvirt refuses a redefinition that carries another UUID ("already exists with
        uuid", and the next start of the session fails), so an existing filter's UUID wins. On
        this host, a filter is only defined when bridged traffic reaches iptables (its
        connection-state layer).

        Raises:
            NwfilterError: ``br_netfilter`` is off here, or libvirt refused the filter.
        """
        import libvirt  # deferred for start-up: see libvirt_connection

        if self.uri.startswith("qemu:///"):
            problem = nwfilter.bridge_netfilter_problem()
            if problem is not None:
                raise NwfilterError(
                    f"cannot fence the session's network: {problem}, so the VM's connection "
                    "filter would not apply",
                    hint="run `sudo modprobe br_netfilter && sudo sysctl -w "
                    "net.bridge.bridge-nf-call-iptables=1`, then start again",
                )
        conn = self._connection()
        name = nwfilter.filter_name(nwfilter_xml)
        try:
            existing = conn.nwfilterLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) != ERR_NO_NWFILTER:
                raise translate_libvirt_error(
                    exc, action=f"find filter {name}", uri=self.uri
                ) from exc
        else:
            with self._errors(f"read filter {name}"):
                nwfilter_xml = nwfilter.with_uuid(nwfilter_xml, existing.UUIDString())
        with self._errors("define the network filter"):
            conn.nwfilterDefineXML(nwfilter_xml)

    def undefine_nwfilter(self, name: str) -> None:
        """Remove an nwfilter; missing is fine."""
        import libvirt  # deferred for start-up: see libvirt_connection

        conn = self._connection()
        try:
            nwfilter = conn.nwfilterLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_NWFILTER:
                return
            raise translate_libvirt_error(exc, action=f"find filter {name}", uri=self.uri) from exc
        self._tolerant(f"remove filter {name}", nwfilter.undefine, ERR_NO_NWFILTER)

    def _filter_users(self, nwfilter: str) -> list[str]:
        """Names of the defined domains whose interface references ``nwfilter``.

        libvirt refuses to remove a filter only while a *running* domain uses it; an inactive
        domain left pointing at a removed filter would fail to start.
        """
        import libvirt  # deferred for start-up: see libvirt_connection

        conn = self._connection()
        with self._errors("list VMs"):
            domains = conn.listAllDomains(0)
        users = []
        for dom in domains:
            try:
                if parse_domain_filter(dom.XMLDesc(XML_INACTIVE)) == nwfilter:
                    users.append(dom.name())
            except libvirt.libvirtError:  # a domain vanishing mid-listing is not a user
                continue
        return users
