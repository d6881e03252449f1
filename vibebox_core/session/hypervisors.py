"""The libvirt connections sessions use: one per URI for this process, at the approved URI.

Each process shares one (thread-safe, lazily connecting) libvirt connection per URI
(:func:`shared_hypervisor`), so the dashboard's once-a-second status checks do not open one each
time. A project's URI is the approved one (:func:`libvirt_uri`), never the one ``vibebox.toml``
holds.
"""

from __future__ import annotations

import atexit
import threading

from vibebox_core.config import approval
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.paths import ProjectPaths

_hypervisors: dict[str, LibvirtHypervisor] = {}
_hypervisors_lock = threading.Lock()


def _close_shared() -> None:
    with _hypervisors_lock:
        for hv in _hypervisors.values():
            hv.close()
        _hypervisors.clear()


# Close before the interpreter tears libvirt's module down (else libvirt's __del__ complains).
atexit.register(_close_shared)


def shared_hypervisor(uri: str) -> Hypervisor:
    """One (thread-safe, lazily connecting) libvirt connection per URI for this process, so
    the dashboard's once-a-second status checks do not open a connection each time."""
    with _hypervisors_lock:
        hv = _hypervisors.get(uri)
        if hv is None:
            hv = _hypervisors[uri] = LibvirtHypervisor(uri)
        return hv


def libvirt_uri(project: ProjectPaths) -> str:
    """The project's approved libvirt URI (the default before any approval).

    Never the one ``vibebox.toml`` holds: the guest can write that file, and some URIs run
    programs on the host (:func:`vibebox_core.config.validate.check_libvirt_uri`).
    """
    return approval.enforced_uri(project)


def project_hypervisor(project: ProjectPaths, hypervisor: Hypervisor | None = None) -> Hypervisor:
    """``hypervisor`` when given, else the shared connection at the project's approved URI."""
    if hypervisor is not None:
        return hypervisor
    return shared_hypervisor(libvirt_uri(project))
