"""The supervisor's roles: what it needs from the VM, the shells it relays and the services.

:class:`~vibebox_core.supervisor.server.Supervisor` sees the VM as a :class:`VMControl`, the
guest's SSH (a boot's wait, the shells it relays, the port forwards) as :class:`Terminals`, and
the session's host-side services (the network policy's proxy and DNS filter) are
:class:`SessionServices`: small role interfaces the
composition root (:mod:`vibebox_core.supervisor.__main__`) fills with the real pieces and the
tests (``tests/core/supervisor/``) with fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.progress import ProgressCallback
from vibebox_core.streams import ByteStream


class VMControl(Protocol):
    """What the supervisor needs from the VM (a Hypervisor bound to one session).

    A role interface: :class:`HypervisorVM` in the supervisor process, a fake VM in the tests.
    """

    def state(self) -> str:
        """``running``, ``shut off``, ``missing``, ..."""
        ...

    def start(self) -> None:
        """Start the VM (no-op if it runs)."""
        ...

    def stop(self, timeout: float) -> bool:
        """ACPI shutdown, forced after ``timeout``; True when the guest stopped by itself."""
        ...


@dataclass
class HypervisorVM:
    """:class:`VMControl` over a :class:`~vibebox_core.hypervisor.base.Hypervisor`."""

    hypervisor: Hypervisor
    session_id: str

    def state(self) -> str:
        return str(self.hypervisor.state(self.session_id))

    def start(self) -> None:
        self.hypervisor.start(self.session_id)

    def stop(self, timeout: float) -> bool:
        return bool(self.hypervisor.stop(self.session_id, timeout=timeout))


class Forwarded(Protocol):
    """Port forwards held open (``[network] ports``): which could not be opened, and closing."""

    @property
    def problems(self) -> Sequence[VibeboxError]: ...

    def close(self) -> None: ...


class Terminals(Protocol):
    """The supervisor's way into the guest: it waits for a boot's SSH, opens the shells of
    ``pty`` requests and the approved port forwards.

    A role interface: :class:`vibebox_core.supervisor.shared_ssh.SharedSSH` in the supervisor
    process, in-memory shells in ``tests/core/supervisor/test_relay.py``.
    """

    async def wait_for_ssh(self, *, booted: bool, accel: str, progress: ProgressCallback) -> str:
        """Wait until the guest answers SSH (the connection then shared); its address.

        Raises:
            VibeboxError: the boot failed (:func:`vibebox_core.ssh.wait.wait_for_ssh`).
        """
        ...

    async def open_shell(
        self, cols: int, rows: int, command_token: str | None = None
    ) -> ByteStream:
        """A login shell in a PTY (its vibebox commands signed with ``command_token``,
        :mod:`vibebox_core.commandtoken`)."""
        ...

    async def open_forwards(self) -> Forwarded:
        """Forward the approved ``[network] ports`` (host loopback -> guest).

        Raises:
            VibeboxError: the guest cannot be reached.
        """
        ...

    async def close(self) -> None:
        """Close the SSH connection (before the VM is shut down)."""
        ...


class SessionServices(Protocol):
    """The session's host-side services while the VM runs (the network policy's).

    A role interface: :class:`vibebox_core.network.enforce.SessionNetwork` in the supervisor
    process (started by ``session_services`` in :mod:`vibebox_core.supervisor.__main__`).
    """

    def status(self) -> dict[str, Any]:
        """Fields added to the ``status`` answer (JSON-able, small)."""
        ...

    async def reload(self) -> dict[str, Any]:
        """Apply the approved policy now; return the fields of :meth:`status`."""
        ...

    async def stop(self) -> None:
        """Stop them (before the VM is shut down)."""
        ...


#: A function run when the supervisor is up, returning the services it started (or None).
ServicesHook = Callable[[], Awaitable[SessionServices | None]]
