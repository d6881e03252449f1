"""The hypervisor as the rest of vibebox sees it: the :class:`Hypervisor` protocol and VM states.

The rest of vibebox drives VMs only through :class:`Hypervisor`, so the dashboard and its tests
can run on :class:`vibebox_core.hypervisor.fake.FakeHypervisor`;
:class:`vibebox_core.hypervisor.libvirt.LibvirtHypervisor` is the real one. Domains are
addressed by session id (= their UUID). Every method blocks; callers run them in threads
(``asyncio.to_thread`` in core, ``@work(thread=True)`` in the TUI). Removal is tolerant:
destroying, shutting down or undefining something that is already gone is not an error.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

VMState = Literal["running", "shut off", "starting", "stopping", "missing", "broken"]


@dataclass(frozen=True)
class VMStatus:
    """A session's VM as the hypervisor sees it.

    Attributes:
        state: one of :data:`VMState`. libvirt itself never reports ``starting`` except for a
            domain paused while starting up; "booting until SSH answers" is the runtime's to say.
        reason: why it is ``broken`` (or a note such as ``crashed`` for ``shut off``).
        name: the libvirt domain name, when there is a domain.
    """

    state: VMState
    reason: str = ""
    name: str | None = None


@runtime_checkable
class Hypervisor(Protocol):
    """What vibebox needs from a hypervisor. Domains are addressed by session id (= UUID)."""

    uri: str

    def kvm_available(self) -> bool:
        """True when the hypervisor can run KVM guests (see :func:`accelerator.resolve_accel`)."""
        ...

    def host_is_virtual(self) -> bool:
        """True when the hypervisor's host is itself a VM (its CPU has the hypervisor flag)."""
        ...

    def state(self, session_id: str) -> VMState:
        """The session VM's state (``missing`` when there is no domain)."""
        ...

    def status(self, session_id: str) -> VMStatus:
        """The state with its reason; per-VM problems are ``broken``, never raised."""
        ...

    def statuses(self) -> dict[str, VMStatus]:
        """The status of every vibebox domain, by session id (one call for a listing)."""
        ...

    def exists(self, session_id: str) -> bool:
        """True when a domain is defined for the session."""
        ...

    def used_subnets(self, *, exclude_session: str | None = None) -> set[ipaddress.IPv4Network]:
        """Subnets of every network, except the given session's own (for ``pick_subnet``)."""
        ...

    def network_subnet(self, session_id: str) -> ipaddress.IPv4Network | None:
        """The subnet of the session's network if it is defined (to keep it on redefine)."""
        ...

    def define_network(self, network_xml: str) -> None:
        """Define (or update the persistent definition of) a network."""
        ...

    def start_network(self, session_id: str, *, restart: bool = False) -> None:
        """Make the session's network active; ``restart`` re-creates an active one."""
        ...

    def define_domain(self, domain_xml: str) -> None:
        """Define (or update) a domain; a renamed project's inactive domain is renamed."""
        ...

    def define(self, domain_xml: str, network_xml: str) -> None:
        """Define the session's network, then its domain."""
        ...

    def start(self, session_id: str) -> None:
        """Start the network if needed, then the domain (no-op if it runs)."""
        ...

    def shutdown(self, session_id: str) -> None:
        """Ask the guest to power off (ACPI power button); no-op if it is not running."""
        ...

    def destroy(self, session_id: str) -> None:
        """Power the VM off at once; no-op if it is not running."""
        ...

    def stop(self, session_id: str, *, timeout: float = 30.0) -> bool:
        """ACPI shutdown, forced after ``timeout`` s; True if the guest stopped by itself."""
        ...

    def undefine(self, session_id: str) -> None:
        """Destroy and remove the domain, the session's network and the domain's ``vibebox-*``
        nwfilter (unless another domain uses it); missing ones are fine."""
        ...

    def undefine_network(self, session_id: str) -> None:
        """Destroy and remove the session's network only; missing is fine."""
        ...

    def lease_ipv4(self, session_id: str) -> str | None:
        """The guest's IPv4 from the network's DHCP leases for the domain's MAC, or None.

        A lease may be left from the previous boot (libvirt keeps it across a restart): it does
        not prove the guest is up.
        """
        ...

    def console_tail(self, session_id: str, max_lines: int = 40) -> str:
        """The last lines of the serial console log (printable text only), or ``""``."""
        ...

    def suspend(self, session_id: str) -> None:
        """Pause the running VM's vCPUs (libvirt ``suspend``): the guest stops issuing writes."""
        ...

    def resume(self, session_id: str) -> None:
        """Let a paused VM run again (libvirt ``resume``)."""
        ...

    def snapshot_disk(self, session_id: str, disk: str, name: str) -> None:
        """Take an internal qcow2 snapshot ``name`` of the running VM's disk file ``disk``, by
        QEMU itself (the disk only, no memory; see :mod:`.libvirt_disks` for why)."""
        ...

    def delete_disk_snapshot(self, session_id: str, disk: str, name: str) -> None:
        """Delete the internal snapshot ``name`` of the running VM's disk file ``disk``."""
        ...

    def define_nwfilter(self, nwfilter_xml: str) -> None:
        """Define (or update) a libvirt nwfilter (network policy)."""
        ...

    def undefine_nwfilter(self, name: str) -> None:
        """Remove an nwfilter; missing is fine."""
        ...

    def close(self) -> None:
        """Drop the connection (reopened on the next call)."""
        ...
