"""The seam between the dashboard and everything that drives VMs.

The dashboard never calls libvirt, SSH or the session index directly: it talks to one small
:class:`Backend`. :class:`~vibebox_tui.backend.core.CoreBackend` drives real sessions through
``vibebox_core``; :class:`~vibebox_tui.backend.fake.FakeBackend` keeps everything in memory so
the Pilot tests, the snapshots and ``screenshots/make.py`` run without a hypervisor.

Blocking methods are called from worker threads, never from the event loop; ``attach`` is a
coroutine (SSH is asyncio) that may hand its blocking parts to threads itself. Every failure
is a :class:`~vibebox_core.errors.VibeboxError` with a message and a hint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from vibebox_core.errors import SupervisorError
from vibebox_core.index.ids import short_ids
from vibebox_core.progress import ProgressCallback
from vibebox_core.session.steer import Action, HostChange, SteerResult
from vibebox_core.streams import ByteStream

#: Session states the browser knows how to draw (others are shown as they come).
KNOWN_STATES = ("running", "shut off", "starting", "stopping", "missing", "broken")


@dataclass(frozen=True)
class SessionRow:
    """One row of the session browser.

    Attributes:
        id: the session id (UUIDv7).
        directory: the project directory.
        state: ``running``, ``shut off``, ``starting``, ``stopping``, ``missing`` or ``broken``.
        attached: how many vibebox processes are attached (None when unknown).
        last_active: when the session was last used (UTC), None when unknown.
        reason: why a ``broken`` session is broken (empty otherwise).
    """

    id: str
    directory: Path
    state: str
    attached: int | None = None
    last_active: datetime | None = None
    reason: str = ""
    #: The id as lists show it (see :func:`with_short_ids`); empty: its first 8 digits.
    short: str = ""

    @property
    def short_id(self) -> str:
        return self.short or self.id[:8]

    @property
    def name(self) -> str:
        return self.directory.name or str(self.directory)


def with_short_ids(sessions: Sequence[SessionRow]) -> list[SessionRow]:
    """``sessions`` with :attr:`SessionRow.short` set: ids that share their first 8 digits
    (made within a minute of each other) are shown long enough to tell apart."""
    shorts = short_ids(s.id for s in sessions)
    return [replace(s, short=shorts[s.id]) for s in sessions]


@dataclass(frozen=True)
class MountRow:
    """One mount as the inspector shows it."""

    host: str
    guest: str
    read_only: bool
    default: bool = False


@dataclass(frozen=True)
class NetLine:
    """One network log entry as the inspector lists it (and lets the user steer).

    Attributes:
        line: the ready-made line (time, verdict, source, host, reason), shown escaped.
        host: the host the guest asked for, as logged (guest-chosen: shown escaped, and only
            ever passed to the core's steering, which checks it).
        verdict: ``"allowed"`` or ``"blocked"``.
    """

    line: str
    host: str
    verdict: str


@dataclass(frozen=True)
class SecretRow:
    """An approved secret as the inspector shows it: never a value, the source's kind only."""

    name: str
    hosts: tuple[str, ...]
    source_kind: str


@dataclass(frozen=True)
class InspectorData:
    """Everything the inspector shows for one session, already turned into display values.

    ``storage`` pairs a label with a path relative to the project directory; ``recent_network``
    holds the network log's last entries (newest last), one per allowed or blocked connection;
    ``secrets`` the approved secrets.
    ``policy_applied`` says how the approved network policy reached the running session:
    ``"live"`` (in force now) or ``"next start"`` (``policy_pending`` lists what waits for a
    restart); None when no session runs or nobody knows. ``unapproved`` lists what
    ``vibebox.toml`` asks for that is not approved and so not enforced (everything else shown
    is the approved snapshot). ``provision`` says how ``[provision] run`` stands against its
    last run in this session (empty: nothing to say); ``provision_warn`` that it deserves a
    look (the list changed since it ran, or its last run failed).
    """

    project: Path
    session_id: str | None
    mounts: tuple[MountRow, ...] = ()
    network_mode: str = "blocklist"
    network_entries: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    recent_network: tuple[NetLine, ...] = ()
    secrets: tuple[SecretRow, ...] = ()
    storage: tuple[tuple[str, str], ...] = ()
    vm_state: str | None = None
    ipv4: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    attached: int | None = None
    problem: str = ""
    policy_applied: str | None = None
    policy_pending: tuple[str, ...] = ()
    unapproved: tuple[str, ...] = ()
    provision: str = ""
    provision_warn: bool = False


#: Opens another terminal into an attached session: ``(cols, rows) -> stream``.
TerminalOpener = Callable[[int, int], Awaitable[ByteStream]]


@dataclass(frozen=True)
class CheckpointRow:
    """One checkpoint of a session's guest disk, as the checkpoints dialog shows it.

    Attributes:
        name: as stored in the disk (shown escaped).
        created: when it was saved (UTC).
        size: its data, ready to show (``1.5 MiB``; ``?`` when unknown): the guest's own data on
            top of the base image in that disk state (see ``vibebox_core.session.checkpoint``).
    """

    name: str
    created: datetime
    size: str


@dataclass(frozen=True)
class CheckpointList:
    """A session's checkpoints (oldest first) and what its disk file takes on the host."""

    rows: tuple[CheckpointRow, ...]
    disk_usage: str


@dataclass
class Attachment:
    """A terminal attached to a running session, and the tabs opened next to it.

    Holding it keeps the session's reference count up (once, however many terminals are open);
    :meth:`close` closes every stream and lets go (the VM then stays up for the grace period
    and shuts down if nobody else is attached).

    Attributes:
        session: the session's row.
        stream: the first terminal.
        release: lets go of the session (detach), after the streams are closed.
        opener: opens another terminal into the session (None: this attachment has no tabs).
        notice: what the start has to tell once the terminal shows (how provisioning a new
            session went; empty: nothing).
        notice_failed: the notice tells of a failure.
    """

    session: SessionRow
    stream: ByteStream
    release: Callable[[], Awaitable[None]] | None = None
    notice: str = ""
    notice_failed: bool = False
    opener: TerminalOpener | None = None
    _extra: list[ByteStream] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    async def open_terminal(self, cols: int, rows: int) -> ByteStream:
        """Another terminal into the session (a tab), closed with the attachment.

        Raises:
            SupervisorError: this attachment opens no more terminals, or it was closed.
            VibeboxError: the terminal could not be opened (the backend's error).
        """
        if self.opener is None or self._closed:
            why = "was closed" if self._closed else "opens no more terminals"
            raise SupervisorError(
                f"this session's attachment {why}", hint="attach to the session again"
            )
        stream = await self.opener(cols, rows)
        if self._closed:  # detached while the terminal was being opened
            await stream.close()
            raise SupervisorError("the session was detached while the terminal opened")
        self._extra.append(stream)
        return stream

    async def close_terminal(self, stream: ByteStream) -> None:
        """Close one of this attachment's terminals (a tab); the attachment stays."""
        if stream in self._extra:
            self._extra.remove(stream)
        await stream.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        extra, self._extra = self._extra, []
        try:
            for stream in extra:
                with contextlib.suppress(Exception):  # a broken tab must not keep us attached
                    await stream.close()
            await self.stream.close()
        finally:
            if self.release is not None:
                await self.release()


class Backend(Protocol):
    """What the dashboard needs from the rest of vibebox."""

    @property
    def project(self) -> Path | None:
        """The project directory vibebox was started in (None: only browse)."""
        ...

    def list_sessions(self) -> list[SessionRow]:
        """Every session in the index with its live state; a broken one never raises (blocking)."""
        ...

    async def attach(
        self, directory: Path, cols: int, rows: int, progress: ProgressCallback
    ) -> Attachment:
        """Start the session of ``directory`` if needed (creating it, building the image) and
        open a terminal on it; reports each step to ``progress`` (possibly from a thread)."""
        ...

    def approve(self, directory: Path, expected: str | None = None) -> str:
        """Approve what ``vibebox.toml`` asks for (after the user agreed in a dialog); returns
        when it applies: ``"live"`` or ``"next start"`` (blocking). ``expected`` is the digest
        the dialog showed (``PolicyNotApprovedError.check.digest``): when the file says
        something else by now, nothing is approved and ``PolicyNotApprovedError`` is raised."""
        ...

    def delete(self, session_id: str) -> None:
        """Stop the VM and remove the session, its cache and its index entry (blocking)."""
        ...

    def recreate(self, session_id: str, progress: ProgressCallback) -> SessionRow:
        """Delete the session and create a fresh one for the same directory (blocking)."""
        ...

    def checkpoints(self, directory: Path) -> CheckpointList:
        """The checkpoints of the session of ``directory`` (blocking)."""
        ...

    def save_checkpoint(self, directory: Path, progress: ProgressCallback) -> str:
        """Save a checkpoint under a default name; returns the line to show (blocking)."""
        ...

    def restore_checkpoint(self, directory: Path, name: str, progress: ProgressCallback) -> bool:
        """Restore checkpoint ``name``; a running VM is stopped first and left off for the
        dashboard to start again by attaching. Returns True when it was running (blocking)."""
        ...

    def remove_checkpoint(self, directory: Path, name: str) -> None:
        """Remove checkpoint ``name`` (blocking)."""
        ...

    def plan_steer(self, directory: Path, host: str, action: Action) -> HostChange:
        """What allowing or blocking ``host`` would change in the approved policy, to ask
        before (blocking; reads, never writes). Raises ``ConfigError`` for a host that cannot
        be steered (an IP address, not a domain name)."""
        ...

    def steer(self, directory: Path, hosts: Sequence[str], action: Action) -> SteerResult:
        """Allow or block ``hosts`` after the user confirmed: the approval, written to
        ``vibebox.toml`` and the snapshot and applied to a running session (blocking)."""
        ...

    def inspect(self, directory: Path) -> InspectorData:
        """Build the explain model of ``directory`` for the inspector (blocking)."""
        ...

    def fingerprint(self, directory: Path) -> Hashable:
        """A cheap value that changes when the inspector's data may have changed (blocking):
        ``vibebox.toml``'s mtime, the VM state, the network log's size."""
        ...

    def console_tail(self, directory: Path, lines: int = 15) -> list[str]:
        """The last lines of the VM's serial console log (blocking; empty when none)."""
        ...
