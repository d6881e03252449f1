"""Which accelerator a domain runs under: KVM or TCG, and what to say when a boot stalls.

``accel = "auto" | "kvm" | "tcg"`` (vibebox.toml ``[box]``, or ``VIBEBOX_ACCEL``) is the user's
setting (the config's ``Accel``); :func:`resolve_accel` turns it into the
:data:`ResolvedAccel` a domain is built with (README.md, "``[box]`` — the VM").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from vibebox_core.errors import VMError

#: The accelerator a domain really runs under, once ``auto`` is decided.
ResolvedAccel = Literal["kvm", "tcg"]


def kvm_device_usable(device: Path = Path("/dev/kvm")) -> bool:
    """Return True when ``device`` exists and this process can open it read-write."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def resolve_accel(requested: str, *, kvm_available: bool, nested: bool = False) -> ResolvedAccel:
    """Decide the accelerator for a domain.

    Rule: ``tcg`` and ``kvm`` are taken as asked. ``auto`` means ``kvm`` when the hypervisor
    reports KVM usable (:meth:`Hypervisor.kvm_available`) *and* its host is not itself a
    virtual machine (``nested``, :meth:`Hypervisor.host_is_virtual`), else ``tcg``: on
    nested-virtualisation hosts a KVM guest can hang right after the kernel starts (seen on the
    machines vibebox is tested on), and ``/dev/kvm`` existing proves nothing there. Who knows
    nested KVM works on their host sets ``accel = "kvm"``. Whatever was chosen, a boot that
    shows no progress ends in an error naming ``accel`` (:func:`boot_stalled_hint`).
    ``VIBEBOX_ACCEL`` is applied by the config loader before this is called.

    Args:
        requested: ``auto``, ``kvm`` or ``tcg`` (any case, surrounding blanks ignored).
        kvm_available: libvirt can run KVM guests.
        nested: the hypervisor's host is a virtual machine itself.

    Raises:
        VMError: ``kvm`` was asked for but is not available, or ``requested`` is unknown.
    """
    setting = requested.strip().lower()
    if setting == "tcg":
        return "tcg"
    if setting == "kvm":
        if not kvm_available:
            raise VMError(
                'accel = "kvm" was asked for, but KVM is not available to libvirt here',
                hint='set accel = "tcg" under [box] in vibebox.toml (or VIBEBOX_ACCEL=tcg), '
                "or load the kvm module and give libvirt access to /dev/kvm",
            )
        return "kvm"
    if setting == "auto":
        return "kvm" if kvm_available and not nested else "tcg"
    raise VMError(
        f"unknown accel {requested!r}",
        hint='use one of "auto", "kvm" or "tcg" (vibebox.toml [box] accel, or VIBEBOX_ACCEL)',
    )


def boot_stalled_hint(accel: ResolvedAccel) -> str:
    """Return the next step for a guest that showed no progress while booting under ``accel``."""
    if accel == "kvm":
        return (
            "the VM ran with accel=kvm; on hosts with nested virtualisation KVM guests can hang "
            'right after the kernel starts: set accel = "tcg" under [box] in vibebox.toml '
            "(or export VIBEBOX_ACCEL=tcg) and start again"
        )
    return (
        "the VM ran with accel=tcg (software emulation, slow); check the console log above, "
        'and if KVM works on this host set accel = "kvm" (or "auto") under [box] in vibebox.toml'
    )
