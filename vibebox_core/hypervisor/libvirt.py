"""The libvirt-python adapter: :class:`LibvirtHypervisor`, the real :class:`Hypervisor`.

It sends the XML built by :mod:`vibebox_core.hypervisor.domain_xml` and
:mod:`vibebox_core.hypervisor.network_xml` through libvirt-python and turns every
``libvirtError`` into a :class:`~vibebox_core.errors.VMError` whose message and hint a user can
act on (:mod:`vibebox_core.hypervisor.errors`). The connection lives in
:mod:`vibebox_core.hypervisor.libvirt_connection`, networks and filters in
:mod:`vibebox_core.hypervisor.libvirt_networks`, pausing a VM and its disk's internal snapshots
in :mod:`vibebox_core.hypervisor.libvirt_disks`; this module holds the domains: their states,
their definition and their lifecycle.

Every method blocks; callers run them in threads. Removal is tolerant: destroying, shutting
down or undefining something that is already gone is not an error.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from vibebox_core.errors import VirtiofsdError, VMError
from vibebox_core.hypervisor import names
from vibebox_core.hypervisor.base import Hypervisor, VMState, VMStatus
from vibebox_core.hypervisor.console import read_console_tail
from vibebox_core.hypervisor.domain_xml import (
    parse_console_log,
    parse_domain_filter,
    parse_domain_interface,
)
from vibebox_core.hypervisor.errors import translate_libvirt_error
from vibebox_core.hypervisor.failure import (
    ERR_INVALID_ARG,
    ERR_NO_DOMAIN,
    ERR_NO_NETWORK,
    ERR_NO_SUPPORT,
    ERR_OPERATION_INVALID,
)
from vibebox_core.hypervisor.libvirt_connection import XML_INACTIVE
from vibebox_core.hypervisor.libvirt_disks import LibvirtDisks
from vibebox_core.hypervisor.libvirt_networks import LibvirtNetworks
from vibebox_core.hypervisor.virtiofs import virtiofsd_log_reason

if TYPE_CHECKING:
    import libvirt

# virDomainState values.
_NOSTATE, _RUNNING, _BLOCKED, _PAUSED, _SHUTDOWN, _SHUTOFF, _CRASHED, _PMSUSPENDED = range(8)
_PAUSED_REASONS = {
    1: "paused by a user (`virsh resume` continues it)",
    2: "paused for migration",
    3: "paused while saving",
    4: "paused for a core dump",
    5: "paused after a disk I/O error (is the host disk full?)",
    6: "paused by the watchdog",
    7: "paused after a snapshot restore",
    9: "paused for a snapshot",
    10: "paused after a guest crash",
    12: "paused in post-copy migration",
    13: "paused: post-copy migration failed",
    14: "paused after an API error",
}
_PAUSED_STARTING_UP = 11
_PAUSED_SHUTTING_DOWN = 8
_SHUTOFF_REASONS = {3: "crashed", 6: "failed to start", 8: "libvirtd stopped it"}
_IPV4 = 0
_UNDEFINE_FLAGS = 1 | 2  # also drop a managed save image and snapshot metadata
_ACPI_POWER_BTN = 1


def _status_from(state: int, reason: int, name: str) -> VMStatus:
    if state in (_RUNNING, _BLOCKED):
        return VMStatus("running", name=name)
    if state == _SHUTOFF:
        return VMStatus("shut off", _SHUTOFF_REASONS.get(reason, ""), name=name)
    if state == _SHUTDOWN:
        return VMStatus("stopping", name=name)
    if state == _PAUSED:
        if reason == _PAUSED_STARTING_UP:
            return VMStatus("starting", name=name)
        if reason == _PAUSED_SHUTTING_DOWN:
            return VMStatus("stopping", name=name)
        return VMStatus("broken", _PAUSED_REASONS.get(reason, "paused"), name=name)
    if state == _CRASHED:
        return VMStatus("broken", "the guest crashed (`vibebox stop` then start again)", name)
    if state == _PMSUSPENDED:
        return VMStatus("broken", "suspended by the guest's power management", name=name)
    return VMStatus("starting", name=name)


class LibvirtHypervisor(LibvirtNetworks, LibvirtDisks):
    """:class:`Hypervisor` on libvirt-python. Thread-safe; the connection opens lazily.

    Args:
        uri: libvirt connection URI, e.g. ``qemu:///system`` or ``qemu+ssh://host/system``.
        poll_interval: seconds between state checks in :meth:`stop`.
        repress_interval: seconds between ACPI power-button presses in :meth:`stop`.
    """

    def __init__(
        self,
        uri: str = "qemu:///system",
        *,
        poll_interval: float = 0.2,
        repress_interval: float = 5.0,
    ) -> None:
        super().__init__(uri)
        self.poll_interval = poll_interval
        self.repress_interval = repress_interval

    # ---------------------------------------------------------------- queries

    def kvm_available(self) -> bool:
        """True when libvirt reports KVM domain capabilities for x86_64."""
        import libvirt  # deferred for start-up: see libvirt_connection

        conn = self._connection()
        try:
            conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        except libvirt.libvirtError:
            return False
        return True

    def host_is_virtual(self) -> bool:
        """True when libvirt's host CPU reports the ``hypervisor`` feature (a nested host)."""
        conn = self._connection()
        with self._errors("read the host capabilities"):
            caps = conn.getCapabilities()
        try:
            root = ET.fromstring(caps)
        except ET.ParseError:
            return False
        return any(f.get("name") == "hypervisor" for f in root.iterfind("host/cpu/feature"))

    def state(self, session_id: str) -> VMState:
        """The session VM's state (``missing`` when there is no domain)."""
        return self.status(session_id).state

    def status(self, session_id: str) -> VMStatus:
        """The state with its reason; a domain whose network is gone is ``broken``."""
        dom = self._lookup(session_id)
        if dom is None:
            return VMStatus("missing")
        return self._domain_status(dom, session_id, None)

    def _domain_status(
        self, dom: libvirt.virDomain, session_id: str, networks: set[str] | None
    ) -> VMStatus:
        import libvirt  # deferred for start-up: see libvirt_connection

        try:
            name = dom.name()
            state, reason = dom.state()
            status = _status_from(state, reason, name)
            if status.state == "shut off":
                _, net_name = parse_domain_interface(dom.XMLDesc(XML_INACTIVE))
                if net_name is not None:
                    present = (
                        net_name in networks
                        if networks is not None
                        else self._network_by_name(net_name) is not None
                    )
                    if not present:
                        return VMStatus(
                            "broken",
                            f"its network {net_name} is missing (recreate the session: `:new`, "
                            "or `vibebox delete` and start again)",
                            name,
                        )
            return status
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_DOMAIN:
                return VMStatus("missing")
            return VMStatus("broken", exc.get_error_message() or str(exc))

    def statuses(self) -> dict[str, VMStatus]:
        """The status of every domain named ``vibebox-*``, by session id."""
        conn = self._connection()
        with self._errors("list VMs"):
            domains = conn.listAllDomains(0)
            networks = {net.name() for net in conn.listAllNetworks(0)}
        result: dict[str, VMStatus] = {}
        for dom in domains:
            try:
                name = dom.name()
                sid = dom.UUIDString()
            except Exception:  # a domain vanishing mid-listing is not an error
                continue
            if name.startswith("vibebox-"):
                result[sid] = self._domain_status(dom, sid, networks)
        return result

    def exists(self, session_id: str) -> bool:
        """True when a domain is defined for the session."""
        return self._lookup(session_id) is not None

    def _mac(self, session_id: str) -> str:
        dom = self._lookup(session_id)
        if dom is not None:
            with self._errors(f"read the VM of session {session_id}"):
                mac, _ = parse_domain_interface(dom.XMLDesc(XML_INACTIVE))
            if mac:
                return mac.lower()
        return names.mac_address(session_id)

    def lease_ipv4(self, session_id: str) -> str | None:
        """The newest IPv4 DHCP lease of the session network for the domain's MAC."""
        net = self._network(session_id)
        if net is None:
            return None
        mac = self._mac(session_id)
        leases = self._tolerant(
            f"read the DHCP leases of {names.network_name(session_id)}",
            lambda: net.DHCPLeases(mac, 0),
            ERR_NO_NETWORK,
            ERR_OPERATION_INVALID,  # network not active
        )
        v4 = [lease for lease in leases or [] if lease.get("type") == _IPV4]
        if not v4:
            return None
        newest = max(v4, key=lambda lease: int(lease.get("expirytime") or 0))
        address = newest.get("ipaddr")
        return str(address) if address else None

    def console_tail(self, session_id: str, max_lines: int = 40) -> str:
        """The end of the console log named in the domain's serial ``<log>``."""
        dom = self._lookup(session_id)
        if dom is None:
            return ""
        with self._errors(f"read the VM of session {session_id}"):
            path = parse_console_log(dom.XMLDesc(XML_INACTIVE))
        return read_console_tail(path, max_lines) if path is not None else ""

    # ---------------------------------------------------------------- definitions

    def define_domain(self, domain_xml: str) -> None:
        """Define a domain (or update it). Handles a project renamed since the last define:
        an inactive domain is renamed, a running one keeps its old name until it stops."""
        root = ET.fromstring(domain_xml)
        uuid_el, name_el = root.find("uuid"), root.find("name")
        if uuid_el is None or name_el is None or not uuid_el.text or not name_el.text:
            raise VMError("domain XML without <uuid> or <name> (a vibebox bug)")
        sid, wanted = uuid_el.text, name_el.text
        dom = self._lookup(sid)
        conn = self._connection()
        with self._errors(f"define VM {wanted}"):
            if dom is not None and dom.name() != wanted:
                if dom.isActive():
                    name_el.text = dom.name()
                    domain_xml = ET.tostring(root, encoding="unicode")
                else:
                    dom.rename(wanted, 0)
            conn.defineXML(domain_xml)

    def define(self, domain_xml: str, network_xml: str) -> None:
        """Define the session's network, then its domain."""
        self.define_network(network_xml)
        self.define_domain(domain_xml)

    # ---------------------------------------------------------------- lifecycle

    def start(self, session_id: str) -> None:
        """Start the network if needed, then the domain (no-op if it runs)."""
        dom = self._require(session_id, "start the VM")
        with self._errors(f"start VM {dom.name()}"):
            if dom.isActive():
                return
            _, net_name = parse_domain_interface(dom.XMLDesc(XML_INACTIVE))
        if net_name is not None and net_name == names.network_name(session_id):
            self.start_network(session_id)
        name = dom.name()
        try:
            self._tolerant(f"start VM {name}", dom.create, ERR_OPERATION_INVALID)
        except VirtiofsdError as exc:
            # QEMU only saw virtiofsd's socket refuse; virtiofsd's own log says why.
            reason = virtiofsd_log_reason(name) if self.uri.startswith("qemu:///") else ""
            if not reason:
                raise
            raise VirtiofsdError(
                f"could not start VM {name}: virtiofsd refused to serve one of its shares: "
                f"{reason}",
                hint=exc.hint,
            ) from exc

    def shutdown(self, session_id: str) -> None:
        """Press the ACPI power button; no-op if the VM is missing or not running."""
        dom = self._lookup(session_id)
        if dom is None:
            return
        import libvirt  # deferred for start-up: see libvirt_connection

        action = f"shut down VM {session_id}"
        active = self._tolerant(action, dom.isActive, ERR_NO_DOMAIN)
        if not active:
            return
        try:
            dom.shutdownFlags(_ACPI_POWER_BTN)
            return
        except libvirt.libvirtError as exc:
            code = self._code(exc)
            if code in (ERR_OPERATION_INVALID, ERR_NO_DOMAIN):
                return
            if code not in (ERR_INVALID_ARG, ERR_NO_SUPPORT):
                raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc
        # A driver without the ACPI flag: its default shutdown method.
        self._tolerant(action, dom.shutdown, ERR_OPERATION_INVALID, ERR_NO_DOMAIN)

    def destroy(self, session_id: str) -> None:
        """Power off at once; no-op if the VM is missing or not running."""
        dom = self._lookup(session_id)
        if dom is None:
            return
        if not self._tolerant(f"force off VM {session_id}", dom.isActive, ERR_NO_DOMAIN):
            return
        self._tolerant(
            f"force off VM {session_id}", dom.destroy, ERR_OPERATION_INVALID, ERR_NO_DOMAIN
        )

    def stop(self, session_id: str, *, timeout: float = 30.0) -> bool:
        """ACPI shutdown, forced after ``timeout`` seconds; True if the guest stopped itself.

        The power button is pressed again every :attr:`repress_interval` seconds: a press that
        comes before the guest's systemd-logind listens (early in boot) is lost otherwise.
        """
        if self.state(session_id) in ("missing", "shut off"):
            return True
        start = time.monotonic()
        deadline = start + timeout
        next_press = start
        while time.monotonic() < deadline:
            if time.monotonic() >= next_press:
                self.shutdown(session_id)
                next_press = time.monotonic() + self.repress_interval
            time.sleep(self.poll_interval)
            if self.state(session_id) in ("missing", "shut off"):
                return True
        self.destroy(session_id)
        return False

    def undefine(self, session_id: str) -> None:
        """Destroy and remove the domain, then the session's network and the domain's
        ``vibebox-*`` nwfilter (kept while another domain uses it); missing ones are fine."""
        import libvirt  # deferred for start-up: see libvirt_connection

        dom = self._lookup(session_id)
        nwfilter = None
        if dom is not None:
            self.destroy(session_id)
            xml = self._tolerant(
                f"read the VM of session {session_id}",
                lambda: dom.XMLDesc(XML_INACTIVE),
                ERR_NO_DOMAIN,  # removed meanwhile by another vibebox deleting it
            )
            if xml is not None:
                nwfilter = parse_domain_filter(xml)
                self._undefine_domain(dom, session_id)
        self.undefine_network(session_id)
        if nwfilter is not None and nwfilter.startswith("vibebox-"):
            if self._filter_users(nwfilter):
                return
            try:
                self.undefine_nwfilter(nwfilter)
            except VMError as exc:
                cause = exc.__cause__
                in_use = isinstance(cause, libvirt.libvirtError) and (
                    self._code(cause) == ERR_OPERATION_INVALID
                )
                if not in_use:
                    raise

    def _undefine_domain(self, dom: libvirt.virDomain, session_id: str) -> None:
        import libvirt  # deferred for start-up: see libvirt_connection

        action = f"remove VM {session_id}"
        # NO_DOMAIN: gone already; OPERATION_INVALID: transient, so gone with destroy.
        ignore = (ERR_NO_DOMAIN, ERR_OPERATION_INVALID)
        try:
            dom.undefineFlags(_UNDEFINE_FLAGS)
            return
        except libvirt.libvirtError as exc:
            code = self._code(exc)
            if code in ignore or self._lookup(session_id) is None:  # removed meanwhile
                return
            if code not in (ERR_INVALID_ARG, ERR_NO_SUPPORT):
                raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc
        self._tolerant(action, dom.undefine, *ignore)  # a driver without those flags


if TYPE_CHECKING:
    _conforms: Hypervisor = LibvirtHypervisor()
