"""An in-memory hypervisor for TUI tests and demos.

:class:`FakeHypervisor` keeps domains, networks and leases in dictionaries and behaves like
:class:`~vibebox_core.hypervisor.libvirt.LibvirtHypervisor` where callers can observe it: the same
tolerant removal, the same errors for missing definitions, leases handed out on start. Tests
steer it with :meth:`FakeHypervisor.set_status`, :meth:`~FakeHypervisor.set_lease`,
:meth:`~FakeHypervisor.fail` and friends, and read :attr:`FakeHypervisor.calls`.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vibebox_core.errors import QemuError, SubnetInUseError, VMError
from vibebox_core.hypervisor import names
from vibebox_core.hypervisor.base import Hypervisor, VMState, VMStatus
from vibebox_core.hypervisor.domain_xml import (
    parse_console_log,
    parse_domain_filter,
    parse_domain_interface,
)
from vibebox_core.hypervisor.network_xml import parse_network_subnets


@dataclass
class FakeDomain:
    """One defined domain."""

    session_id: str
    name: str
    xml: str
    mac: str | None
    network: str | None
    console_log: str | None
    state: VMState = "shut off"
    reason: str = ""
    paused: bool = False


@dataclass
class FakeNetwork:
    """One defined network."""

    name: str
    xml: str
    subnets: list[ipaddress.IPv4Network]
    fixed_hosts: dict[str, str] = field(default_factory=dict)  # mac -> ip
    active: bool = False
    leases: dict[str, str] = field(default_factory=dict)  # mac -> ip


#: What a paused domain's status says (as the libvirt adapter says for "paused by a user").
PAUSED_REASON = "paused by a user (`virsh resume` continues it)"


class FakeHypervisor:
    """:class:`~vibebox_core.hypervisor.base.Hypervisor` in memory. Thread-safe.

    Args:
        uri: reported as the connection URI.
        kvm: what :meth:`kvm_available` answers.
        nested: what :meth:`host_is_virtual` answers.
        lease_on_start: hand the guest its DHCP lease as soon as it starts (else call
            :meth:`set_lease`).
        shutdown_completes: an ACPI shutdown stops the VM at once (else it stays ``stopping``
            until :meth:`finish_shutdown`).
    """

    def __init__(
        self,
        uri: str = "fake:///",
        *,
        kvm: bool = False,
        nested: bool = False,
        lease_on_start: bool = True,
        shutdown_completes: bool = True,
    ) -> None:
        self.uri = uri
        self.kvm = kvm
        self.nested = nested
        self.lease_on_start = lease_on_start
        self.shutdown_completes = shutdown_completes
        self.domains: dict[str, FakeDomain] = {}
        self.networks: dict[str, FakeNetwork] = {}
        self.nwfilters: dict[str, str] = {}
        self.consoles: dict[str, str] = {}
        #: Interfaces on the host that are no network of this hypervisor (a bridge left
        #: behind): their subnets are used, and no network starts on one.
        self.interfaces: dict[str, ipaddress.IPv4Network] = {}
        self.calls: list[tuple[str, ...]] = []
        self.closed = False
        self._failures: dict[str, list[VMError]] = {}
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- steering

    def fail(self, method: str, error: VMError | None = None, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error`` (a generic VMError)."""
        err = error or VMError(f"fake failure in {method}", hint="injected by a test")
        with self._lock:
            self._failures.setdefault(method, []).extend([err] * times)

    def set_status(self, session_id: str, state: VMState, reason: str = "") -> None:
        """Force a defined domain into ``state`` (e.g. ``broken`` with a reason)."""
        with self._lock:
            dom = self._domain(session_id, "set the state")
            dom.state, dom.reason = state, reason

    def set_lease(self, session_id: str, ipv4: str | None) -> None:
        """Give (or take away, with None) the guest's DHCP lease."""
        with self._lock:
            dom = self._domain(session_id, "set the lease")
            net = self.networks.get(dom.network or "")
            if net is None or dom.mac is None:
                raise VMError(f"session {session_id} has no network to lease from")
            if ipv4 is None:
                net.leases.pop(dom.mac, None)
            else:
                net.leases[dom.mac] = ipv4

    def set_console(self, session_id: str, text: str) -> None:
        """Set what :meth:`console_tail` returns for the session."""
        with self._lock:
            self.consoles[names.canonical_session_id(session_id)] = text

    def finish_shutdown(self, session_id: str) -> None:
        """Complete an ACPI shutdown started with ``shutdown_completes=False``."""
        with self._lock:
            dom = self._domain(session_id, "finish the shutdown")
            if dom.state == "stopping":
                dom.state = "shut off"

    # ---------------------------------------------------------------- plumbing

    def _enter(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _domain(self, session_id: str, action: str) -> FakeDomain:
        dom = self.domains.get(names.canonical_session_id(session_id))
        if dom is None:
            raise VMError(
                f"cannot {action}: session {session_id} has no VM defined",
                hint="`vibebox` in the project directory defines it again",
            )
        return dom

    # ---------------------------------------------------------------- queries

    def kvm_available(self) -> bool:
        with self._lock:
            self._enter("kvm_available")
            return self.kvm

    def host_is_virtual(self) -> bool:
        with self._lock:
            self._enter("host_is_virtual")
            return self.nested

    def state(self, session_id: str) -> VMState:
        return self.status(session_id).state

    def status(self, session_id: str) -> VMStatus:
        with self._lock:
            self._enter("status", session_id)
            return self._status(names.canonical_session_id(session_id))

    def _status(self, sid: str) -> VMStatus:
        dom = self.domains.get(sid)
        if dom is None:
            return VMStatus("missing")
        if dom.paused:
            return VMStatus("broken", PAUSED_REASON, dom.name)
        if dom.state == "shut off" and dom.network and dom.network not in self.networks:
            return VMStatus("broken", f"its network {dom.network} is missing", dom.name)
        return VMStatus(dom.state, dom.reason, dom.name)

    def statuses(self) -> dict[str, VMStatus]:
        with self._lock:
            self._enter("statuses")
            return {sid: self._status(sid) for sid in self.domains}

    def exists(self, session_id: str) -> bool:
        with self._lock:
            self._enter("exists", session_id)
            return names.canonical_session_id(session_id) in self.domains

    def used_subnets(self, *, exclude_session: str | None = None) -> set[ipaddress.IPv4Network]:
        with self._lock:
            self._enter("used_subnets")
            skip = names.network_name(exclude_session) if exclude_session else None
            used = {s for net in self.networks.values() if net.name != skip for s in net.subnets}
            return used | set(self.interfaces.values())

    def network_subnet(self, session_id: str) -> ipaddress.IPv4Network | None:
        with self._lock:
            self._enter("network_subnet", session_id)
            net = self.networks.get(names.network_name(session_id))
            return net.subnets[0] if net and net.subnets else None

    def lease_ipv4(self, session_id: str) -> str | None:
        with self._lock:
            self._enter("lease_ipv4", session_id)
            dom = self.domains.get(names.canonical_session_id(session_id))
            mac = dom.mac if dom and dom.mac else names.mac_address(session_id)
            net = self.networks.get(names.network_name(session_id))
            if net is None or not net.active:
                return None
            return net.leases.get(mac)

    def console_tail(self, session_id: str, max_lines: int = 40) -> str:
        with self._lock:
            self._enter("console_tail", session_id)
            text = self.consoles.get(names.canonical_session_id(session_id), "")
            return "\n".join(text.splitlines()[-max_lines:])

    # ---------------------------------------------------------------- definitions

    def define_network(self, network_xml: str) -> None:
        with self._lock:
            self._enter("define_network")
            root = ET.fromstring(network_xml)
            name = root.findtext("name")
            if not name:
                raise VMError("network XML without <name>")
            hosts = {
                (h.get("mac") or "").lower(): h.get("ip") or ""
                for h in root.iter("host")
                if h.get("mac")
            }
            old = self.networks.get(name)
            self.networks[name] = FakeNetwork(
                name=name,
                xml=network_xml,
                subnets=parse_network_subnets(network_xml),
                fixed_hosts=hosts,
                active=old.active if old else False,
                leases=old.leases if old else {},
            )

    def start_network(self, session_id: str, *, restart: bool = False) -> None:
        with self._lock:
            self._enter("start_network", session_id)
            name = names.network_name(session_id)
            net = self.networks.get(name)
            if net is None:
                raise VMError(f"the network {name} of session {session_id} is not defined")
            if restart:
                net.leases.clear()
            if not net.active:
                # libvirt's check: no other interface (an active network's bridge) has the subnet.
                taken = dict(self.interfaces)
                taken.update(
                    (other.name, subnet)
                    for other in self.networks.values()
                    if other.active and other is not net
                    for subnet in other.subnets
                )
                for interface, subnet in taken.items():
                    if subnet in net.subnets:
                        raise SubnetInUseError(
                            f"could not start network {name}: internal error: Network is "
                            f"already in use by interface {interface}"
                        )
            net.active = True

    def define_domain(self, domain_xml: str) -> None:
        with self._lock:
            self._enter("define_domain")
            root = ET.fromstring(domain_xml)
            name, sid = root.findtext("name"), root.findtext("uuid")
            if not name or not sid:
                raise VMError("domain XML without <uuid> or <name> (a vibebox bug)")
            sid = names.canonical_session_id(sid)
            for other in self.domains.values():
                if other.name == name and other.session_id != sid:
                    raise VMError(
                        f"could not define VM {name}: domain '{name}' already exists with "
                        f"uuid {other.session_id}",
                        hint=f"another libvirt domain uses the name {name!r}",
                    )
            mac, network = parse_domain_interface(domain_xml)
            log = parse_console_log(domain_xml)
            old = self.domains.get(sid)
            if old is not None and old.state not in ("shut off", "missing"):
                name = old.name  # a running domain keeps its name until it stops
            self.domains[sid] = FakeDomain(
                session_id=sid,
                name=name,
                xml=domain_xml,
                mac=mac.lower() if mac else None,
                network=network,
                console_log=str(log) if log else None,
                state=old.state if old else "shut off",
                reason=old.reason if old else "",
            )

    def define(self, domain_xml: str, network_xml: str) -> None:
        self.define_network(network_xml)
        self.define_domain(domain_xml)

    def define_nwfilter(self, nwfilter_xml: str) -> None:
        with self._lock:
            self._enter("define_nwfilter")
            name = ET.fromstring(nwfilter_xml).get("name")
            if not name:
                raise VMError("nwfilter XML without a name")
            self.nwfilters[name] = nwfilter_xml

    def undefine_nwfilter(self, name: str) -> None:
        with self._lock:
            self._enter("undefine_nwfilter", name)
            self.nwfilters.pop(name, None)

    # ---------------------------------------------------------------- lifecycle

    def start(self, session_id: str) -> None:
        with self._lock:
            self._enter("start", session_id)
            dom = self._domain(session_id, "start the VM")
            if dom.state == "running":
                return
            net = self.networks.get(dom.network or "")
            if net is None:
                raise VMError(
                    f"could not start VM {dom.name}: network '{dom.network}' not found",
                    hint="recreate the session (`:new`)",
                )
            net.active = True
            dom.state, dom.reason = "running", ""
            if self.lease_on_start and dom.mac:
                fixed = net.fixed_hosts.get(dom.mac)
                net.leases[dom.mac] = fixed or str(net.subnets[0].network_address + 2)

    def shutdown(self, session_id: str) -> None:
        with self._lock:
            self._enter("shutdown", session_id)
            dom = self.domains.get(names.canonical_session_id(session_id))
            if dom is None or dom.state != "running":
                return
            dom.state = "shut off" if self.shutdown_completes else "stopping"

    def destroy(self, session_id: str) -> None:
        with self._lock:
            self._enter("destroy", session_id)
            dom = self.domains.get(names.canonical_session_id(session_id))
            if dom is not None and dom.state != "shut off":
                dom.state, dom.reason, dom.paused = "shut off", "destroyed", False

    def stop(self, session_id: str, *, timeout: float = 30.0) -> bool:
        with self._lock:
            self._enter("stop", session_id)
            dom = self.domains.get(names.canonical_session_id(session_id))
            if dom is None or dom.state == "shut off":
                return True
            if self.shutdown_completes:
                dom.state = "shut off"
                return True
            dom.state, dom.reason = "shut off", "destroyed"
            return False

    def suspend(self, session_id: str) -> None:
        with self._lock:
            self._enter("suspend", session_id)
            dom = self._domain(session_id, "pause the VM")
            if dom.state != "running":
                raise VMError(f"could not pause VM {dom.name}: domain is not running")
            dom.paused = True

    def resume(self, session_id: str) -> None:
        with self._lock:
            self._enter("resume", session_id)
            dom = self._domain(session_id, "resume the VM")
            if not dom.paused:
                raise VMError(f"could not resume VM {dom.name}: domain is not paused")
            dom.paused = False

    def snapshot_disk(self, session_id: str, disk: str, name: str) -> None:
        """As QEMU would: the snapshot lands in ``disk`` (``qemu-img snapshot -c``) when it is
        a file; the VM must run (paused or not)."""
        self._disk_snapshot("snapshot_disk", "-c", session_id, disk, name)

    def delete_disk_snapshot(self, session_id: str, disk: str, name: str) -> None:
        self._disk_snapshot("delete_disk_snapshot", "-d", session_id, disk, name)

    def _disk_snapshot(self, method: str, flag: str, session_id: str, disk: str, name: str) -> None:
        with self._lock:
            self._enter(method, session_id, name)
            dom = self._domain(session_id, "snapshot the disk")
            if dom.state != "running":
                raise VMError(f"could not snapshot the disk of VM {dom.name}: it is not running")
            if not os.path.isfile(disk):
                return
            done = subprocess.run(
                ["qemu-img", "snapshot", "-q", flag, name, disk], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise QemuError(f"QEMU refused the disk snapshot: {done.stderr.strip()}")

    def undefine(self, session_id: str) -> None:
        with self._lock:
            self._enter("undefine", session_id)
            dom = self.domains.pop(names.canonical_session_id(session_id), None)
            self.networks.pop(names.network_name(session_id), None)
            nwfilter = parse_domain_filter(dom.xml) if dom is not None else None
            in_use = any(parse_domain_filter(d.xml) == nwfilter for d in self.domains.values())
            if nwfilter is not None and nwfilter.startswith("vibebox-") and not in_use:
                self.nwfilters.pop(nwfilter, None)

    def undefine_network(self, session_id: str) -> None:
        with self._lock:
            self._enter("undefine_network", session_id)
            self.networks.pop(names.network_name(session_id), None)

    def close(self) -> None:
        with self._lock:
            self.calls.append(("close",))
            self.closed = True


if TYPE_CHECKING:
    _conforms: Hypervisor = FakeHypervisor()
