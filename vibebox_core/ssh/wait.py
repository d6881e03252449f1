"""Waiting for a session's guest to answer SSH: the DHCP lease, then SSH with the pinned key.

A lease alone proves nothing (it may be left from the previous boot), so only SSH counts. A boot
that never answers within :func:`boot_timeout` stops with a :class:`~vibebox_core.errors.VMError`
quoting the end of the console log and naming ``accel``; so does a VM that stops while booting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

from vibebox_core import paths
from vibebox_core.errors import SSHAuthError, SSHError, VibeboxError, VMError
from vibebox_core.hypervisor import accelerator
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressClock
from vibebox_core.ssh.connect import connect

if TYPE_CHECKING:
    import asyncssh

#: Seconds a boot may take until SSH answers, by accelerator. Measured here under TCG:
#: 31-37 s; the bound leaves room for a loaded machine.
BOOT_TIMEOUT = {"tcg": 240.0, "kvm": 90.0}
#: Environment variable that overrides the boot timeout (seconds).
BOOT_TIMEOUT_ENV = "VIBEBOX_BOOT_TIMEOUT"
#: Seconds between DHCP lease checks while the VM boots.
LEASE_POLL = 0.1


def boot_timeout(accel: str) -> float:
    """Seconds a boot may take until SSH answers (``VIBEBOX_BOOT_TIMEOUT`` overrides)."""
    override = os.environ.get(BOOT_TIMEOUT_ENV)
    if override:
        with contextlib.suppress(ValueError):
            return max(5.0, float(override))
    return BOOT_TIMEOUT.get(accel, BOOT_TIMEOUT["tcg"])


async def wait_for_ssh(
    project: ProjectPaths,
    session_id: str,
    hv: Hypervisor,
    clock: ProgressClock,
    accel: str,
    booted: bool,
) -> tuple[str, asyncssh.SSHClientConnection]:
    """Wait for the lease, then for SSH with the pinned key, within the boot timeout."""
    limit = boot_timeout(accel)
    deadline = time.monotonic() + limit
    ipv4: str | None = None
    if not booted:
        # Warm: the supervisor runs, so the VM does; its address is on file.
        ipv4 = project.recorded_ipv4()
        if ipv4 is not None:
            try:
                return ipv4, await connect(project, ipv4)
            except SSHAuthError:
                raise  # another machine answered, or it refused our key: never wait for it
            except SSHError:
                ipv4 = None  # still booting, or the address changed: the slow path below
    clock("waiting for the VM's address", "DHCP lease")
    while ipv4 is None:
        ipv4 = await asyncio.to_thread(hv.lease_ipv4, session_id)
        if ipv4 is not None:
            break
        await _check_alive(hv, session_id, accel, limit)
        if time.monotonic() > deadline:
            raise await _boot_error(hv, session_id, accel, limit, "no DHCP lease")
        await asyncio.sleep(LEASE_POLL)
    clock("waiting for SSH", ipv4)

    async def still_booting() -> bool:
        state = await asyncio.to_thread(hv.state, session_id)
        return state in ("running", "starting")

    try:
        connection = await connect(project, ipv4, deadline=deadline, still_booting=still_booting)
    except SSHAuthError:
        raise
    except SSHError as exc:
        await _check_alive(hv, session_id, accel, limit)
        raise await _boot_error(hv, session_id, accel, limit, exc.message) from exc
    return ipv4, connection


async def _check_alive(hv: Hypervisor, session_id: str, accel: str, limit: float) -> None:
    state = await asyncio.to_thread(hv.state, session_id)
    if state not in ("running", "starting"):
        raise await _boot_error(hv, session_id, accel, limit, f"the VM is {state}", stopped=True)


async def _boot_error(
    hv: Hypervisor, session_id: str, accel: str, limit: float, why: str, *, stopped: bool = False
) -> VMError:
    tail = ""
    with contextlib.suppress(VibeboxError):
        tail = await asyncio.to_thread(hv.console_tail, session_id, 25)
    quoted = "\n".join(f"    {line}" for line in tail.splitlines()) or "    (console log is empty)"
    resolved: accelerator.ResolvedAccel = "kvm" if accel == "kvm" else "tcg"
    where = f"the end of its console log (.vibebox/{paths.CACHE_CONSOLE_LOG}):\n{quoted}"
    if stopped:
        return VMError(
            f"the VM stopped while booting with accel={accel} ({why}); {where}",
            hint="libvirt's log of the domain (/var/log/libvirt/qemu/NAME.log) says why QEMU "
            f"ended; {accelerator.boot_stalled_hint(resolved)}",
        )
    return VMError(
        f"the VM gave no SSH within {limit:.0f} s with accel={accel} ({why}); {where}",
        hint=accelerator.boot_stalled_hint(resolved),
    )
