"""An in-memory :class:`~vibebox_tui.backend.base.Backend` for tests, snapshots and demos.

VM states live in a :class:`~vibebox_core.hypervisor.fake.FakeHypervisor` (an in-memory
hypervisor); the index and the terminals in plain dictionaries. Everything is deterministic:
fixed session ids, fixed timestamps, fixed progress steps with fixed elapsed times, so a
snapshot taken today matches one taken tomorrow. Terminals are
:class:`~vibebox_core.streams.MemoryStream` objects the caller feeds by hand
(``backend.streams[session_id].feed(b"...")``; the tabs opened next to it are in
``backend.tab_streams[session_id]``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from vibebox_core.config.grants import ApprovalCheck, PolicyNotApprovedError
from vibebox_core.errors import SessionNotFoundError, VibeboxError
from vibebox_core.hypervisor.base import VMState
from vibebox_core.hypervisor.fake import FakeDomain, FakeHypervisor
from vibebox_core.progress import ProgressCallback, ProgressEvent
from vibebox_core.session.steer import Action, HostChange, SteerResult, plan_steer
from vibebox_core.streams import MemoryStream
from vibebox_tui.backend.base import (
    Attachment,
    CheckpointList,
    CheckpointRow,
    InspectorData,
    MountRow,
    NetLine,
    SecretRow,
    SessionRow,
)
from vibebox_tui.backend.demo import (
    BOOT_STEPS,
    CONSOLE_LINES,
    FIXED_NOW,
    GUEST_HOME,
    fake_id,
    net_line,
)

#: The demo project's allowlist (until a test or a steer changes it).
DEFAULT_ENTRIES = ("pypi.org", "files.pythonhosted.org", "github.com")


class FakeBackend:
    """A backend whose sessions, VMs and terminals live in memory.

    Args:
        sessions: the initial index.
        project: the directory vibebox was "started" in.
        fail_attach: raise this from :meth:`attach` (after the first progress step).
        hold_boot: when set, :meth:`attach` stops after the boot steps until the event is set
            (lets a test or snapshot look at the progress view).
        prompt: bytes fed to every new terminal.
        provision: events a cold start reports after its boot steps (before ``hold_boot``),
            e.g. :data:`PROVISION_FAILING`; ``provision_notice`` is what the attachment then
            tells (``provision_failed``: of a failure).
    """

    def __init__(
        self,
        sessions: list[SessionRow] | None = None,
        project: Path | None = None,
        *,
        fail_attach: VibeboxError | None = None,
        hold_boot: asyncio.Event | None = None,
        prompt: bytes = b"vibecoder@vibebox:~$ ",
        hypervisor: FakeHypervisor | None = None,
        provision: tuple[ProgressEvent, ...] = (),
        provision_notice: str = "",
        provision_failed: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self.hypervisor = hypervisor or FakeHypervisor()
        self._sessions: dict[str, SessionRow] = {}
        for session in sessions or []:
            self._add(session)
        self._project = project
        self._next = len(self._sessions) + 1
        self.fail_attach = fail_attach
        self.hold_boot = hold_boot
        self.prompt = prompt
        self.provision = provision
        self.provision_notice = provision_notice
        self.provision_failed = provision_failed
        #: What the inspector says about provisioning, per directory.
        self.provision_line: dict[Path, tuple[str, bool]] = {}
        self.streams: dict[str, MemoryStream] = {}
        #: The terminals opened as tabs next to each session's first one, oldest first.
        self.tab_streams: dict[str, list[MemoryStream]] = {}
        self.deleted: list[str] = []
        self.recreated: list[str] = []
        self.config_revision: dict[Path, int] = {}
        self.network_mode: dict[Path, str] = {}
        self.network_entries: dict[Path, tuple[str, ...]] = {}
        self.network_log: dict[Path, tuple[NetLine, ...]] = {}
        #: The approved secrets the inspector shows, per directory.
        self.secrets: dict[Path, tuple[SecretRow, ...]] = {}
        #: Every confirmed steer: (directory, hosts, action).
        self.steered: list[tuple[Path, tuple[str, ...], str]] = []
        self.fail_list = False
        #: Directories whose vibebox.toml changed since approval: the diff lines to show.
        self.unapproved: dict[Path, tuple[str, ...]] = {}
        self.approved: list[Path] = []
        #: What the running session's supervisor says about its policy (see set_policy_state).
        self.policy_state: dict[Path, tuple[str, tuple[str, ...]]] = {}
        #: Each directory's checkpoints, oldest first; restores and removals done.
        self.checkpoint_rows: dict[Path, list[CheckpointRow]] = {}
        self.restored: list[tuple[Path, str]] = []
        self.removed: list[tuple[Path, str]] = []
        #: Raise this from the checkpoint methods (a test's failure).
        self.fail_checkpoint: VibeboxError | None = None

    # -- the VMs, in the fake hypervisor ------------------------------------------------------

    def _add(self, session: SessionRow) -> None:
        """Index ``session`` and define its VM in the fake hypervisor."""
        self._sessions[session.id] = session
        name = f"vibebox-{session.name}-{session.short_id}"
        self.hypervisor.domains[session.id] = FakeDomain(
            session_id=session.id,
            name=name,
            xml=f"<domain type='qemu'><name>{name}</name><uuid>{session.id}</uuid></domain>",
            mac=None,
            network=None,
            console_log=None,
            state=cast(VMState, session.state),
            reason=session.reason,
        )
        self.hypervisor.set_console(session.id, "\n".join(CONSOLE_LINES))

    def _live(self, session: SessionRow) -> SessionRow:
        """``session`` with the VM state the hypervisor reports now."""
        status = self.hypervisor.status(session.id)
        reason = status.reason if status.state == "broken" else ""
        return replace(session, state=status.state, reason=reason)

    # -- knobs for tests -------------------------------------------------------------------

    def set_state(self, session_id: str, state: str, reason: str = "") -> None:
        """Change a session's VM state, as a hypervisor event would."""
        self.hypervisor.set_status(session_id, cast(VMState, state), reason)

    def edit_config(
        self,
        directory: Path,
        *,
        mode: str | None = None,
        entries: tuple[str, ...] | None = None,
    ) -> None:
        """Simulate a saved edit of ``vibebox.toml``."""
        with self._lock:
            if mode is not None:
                self.network_mode[directory] = mode
            if entries is not None:
                self.network_entries[directory] = entries
            self.config_revision[directory] = self.config_revision.get(directory, 0) + 1

    def set_policy_state(
        self, directory: Path, applied: str | None, pending: tuple[str, ...] = ()
    ) -> None:
        """Say how the approved policy reached the running session, as its supervisor would:
        ``"live"``, ``"next start"`` with the ``pending`` lines, or None (not known)."""
        with self._lock:
            if applied is None:
                self.policy_state.pop(directory, None)
            else:
                self.policy_state[directory] = (applied, pending)

    def log_network(
        self, directory: Path, line: str, *, host: str | None = None, verdict: str | None = None
    ) -> None:
        """Append one allowed/blocked line to the session's network log.

        ``host`` and ``verdict`` default to what the line says (``"10:15:03 blocked proxy
        evil.example:443 (reason)"``: the word after the verdict and the source, its port cut).
        """
        row = net_line(line, host=host, verdict=verdict)
        with self._lock:
            self.network_log[directory] = (*self.network_log.get(directory, ()), row)

    def session_for(self, directory: Path) -> SessionRow | None:
        with self._lock:
            session = self._find(directory)
            return self._live(session) if session else None

    # -- Backend ---------------------------------------------------------------------------

    @property
    def project(self) -> Path | None:
        return self._project

    def list_sessions(self) -> list[SessionRow]:
        with self._lock:
            if self.fail_list:
                raise VibeboxError(
                    "The session index is damaged: sessions.toml line 3",
                    hint="Fix or remove the file.",
                )
            return sorted(
                (self._live(s) for s in self._sessions.values()),
                key=lambda s: s.last_active or FIXED_NOW,
                reverse=True,
            )

    def _find(self, directory: Path) -> SessionRow | None:
        for session in self._sessions.values():
            if session.directory == directory:
                return session
        return None

    async def attach(
        self, directory: Path, cols: int, rows: int, progress: ProgressCallback
    ) -> Attachment:
        with self._lock:
            found = self._find(directory)
            if found is None:
                found = SessionRow(fake_id(self._next), directory, "shut off", 0, FIXED_NOW)
                self._next += 1
                self._add(found)
            session = self._live(found)
        diff = self.unapproved.get(directory)
        if diff:
            check = ApprovalCheck("changed", "0" * 64, diff)
            raise PolicyNotApprovedError(check, project=str(directory))
        if session.state == "broken":
            raise VibeboxError(
                f"Session {session.short_id} is broken: {session.reason}",
                hint=f"Delete it (`vibebox delete {session.short_id}`) and start again.",
            )
        booted = session.state != "running"
        if booted:
            progress(BOOT_STEPS[0])
            if self.fail_attach is not None:
                raise self.fail_attach
            for event in BOOT_STEPS[1:]:
                progress(event)
            for event in self.provision:
                progress(event)
            if self.hold_boot is not None:
                await self.hold_boot.wait()
        elif self.fail_attach is not None:
            raise self.fail_attach
        stream = MemoryStream()
        stream.feed(self.prompt)
        await stream.resize(cols, rows)
        with self._lock:
            current = self._sessions[session.id]
            attached = (current.attached or 0) + 1
            session = replace(current, state="running", attached=attached, last_active=FIXED_NOW)
            self._sessions[session.id] = session
            self.hypervisor.set_status(session.id, "running")
            self.streams[session.id] = stream
            self.tab_streams[session.id] = []
        session_id = session.id

        async def release() -> None:
            with self._lock:
                now = self._sessions.get(session_id)
                if now is not None:
                    self._sessions[session_id] = replace(
                        now, attached=max(0, (now.attached or 1) - 1)
                    )

        notice = self.provision_notice if booted else ""

        async def open_tab(cols: int, rows: int) -> MemoryStream:
            # Another PTY, as the supervisor's relay opens one: the count stays as it is.
            tab = MemoryStream()
            tab.feed(self.prompt)
            await tab.resize(cols, rows)
            with self._lock:
                self.tab_streams.setdefault(session_id, []).append(tab)
            return tab

        return Attachment(
            session,
            stream,
            release,
            opener=open_tab,
            notice=notice,
            notice_failed=self.provision_failed,
        )

    def approve(self, directory: Path, expected: str | None = None) -> str:
        with self._lock:
            self.unapproved.pop(directory, None)
            self.approved.append(directory)
        return "next start"

    def delete(self, session_id: str) -> None:
        with self._lock:
            if session_id not in self._sessions:
                raise SessionNotFoundError(f"No session {session_id[:8]} in the index.")
            del self._sessions[session_id]
            self.hypervisor.undefine(session_id)
            self.deleted.append(session_id)

    def recreate(self, session_id: str, progress: ProgressCallback) -> SessionRow:
        with self._lock:
            old = self._sessions.pop(session_id, None)
            if old is None:
                raise SessionNotFoundError(f"No session {session_id[:8]} in the index.")
            self.hypervisor.undefine(session_id)
            self.recreated.append(session_id)
            new = SessionRow(fake_id(self._next), old.directory, "shut off", 0, FIXED_NOW)
            self._next += 1
            self._add(new)
        progress(ProgressEvent("deleting session", old.short_id, 0.3, True))
        return new

    def add_checkpoint(self, directory: Path, name: str, size: str = "12.5 MiB") -> None:
        """Give the session of ``directory`` a checkpoint (saved at the fixed time)."""
        with self._lock:
            row = CheckpointRow(name, FIXED_NOW, size)
            self.checkpoint_rows.setdefault(directory, []).append(row)

    def _checkpoint_session(self, directory: Path) -> SessionRow:
        if self.fail_checkpoint is not None:
            raise self.fail_checkpoint
        session = self._find(directory)
        if session is None:
            raise SessionNotFoundError(f"{directory} has no session")
        return session

    def checkpoints(self, directory: Path) -> CheckpointList:
        with self._lock:
            self._checkpoint_session(directory)
            rows = tuple(self.checkpoint_rows.get(directory, ()))
            return CheckpointList(rows, "1.4 GiB")

    def save_checkpoint(self, directory: Path, progress: ProgressCallback) -> str:
        with self._lock:
            session = self._live(self._checkpoint_session(directory))
            taken = {row.name for row in self.checkpoint_rows.get(directory, ())}
            name, n = "ckpt-20261127-101500", 1
            while name in taken:
                n += 1
                name = f"ckpt-20261127-101500-{n}"
            self.checkpoint_rows.setdefault(directory, []).append(
                CheckpointRow(name, FIXED_NOW, "3.0 MiB")
            )
        if session.state == "running":
            return f"saved checkpoint {name} (the VM was paused 0.02 s)"
        return f"saved checkpoint {name} (the VM is off)"

    def restore_checkpoint(self, directory: Path, name: str, progress: ProgressCallback) -> bool:
        with self._lock:
            session = self._live(self._checkpoint_session(directory))
            if name not in {row.name for row in self.checkpoint_rows.get(directory, ())}:
                raise VibeboxError(f"no checkpoint {name!r} in this session")
            was_running = session.state == "running"
            if was_running:
                self.hypervisor.set_status(session.id, "shut off")
            self.restored.append((directory, name))
        progress(ProgressEvent("restoring checkpoint", name, 0.2, True))
        return was_running

    def remove_checkpoint(self, directory: Path, name: str) -> None:
        with self._lock:
            self._checkpoint_session(directory)
            rows = self.checkpoint_rows.get(directory, [])
            self.checkpoint_rows[directory] = [row for row in rows if row.name != name]
            self.removed.append((directory, name))

    def _network_values(self, directory: Path) -> dict[str, Any]:
        mode = self.network_mode.get(directory, "allowlist")
        entries = self.network_entries.get(directory, DEFAULT_ENTRIES)
        return {"network": {"mode": mode, "entries": list(entries)}}

    def plan_steer(self, directory: Path, host: str, action: Action) -> HostChange:
        with self._lock:
            (change,) = plan_steer(self._network_values(directory), [host], action).changes
        return change

    def steer(self, directory: Path, hosts: Sequence[str], action: Action) -> SteerResult:
        with self._lock:
            planned = plan_steer(self._network_values(directory), hosts, action)
            self.steered.append((directory, tuple(hosts), action))
            if planned.changed:
                self.network_entries[directory] = tuple(planned.values["network"]["entries"])
                self.config_revision[directory] = self.config_revision.get(directory, 0) + 1
            found = self._find(directory)
            running = found is not None and self._live(found).state == "running"
        return SteerResult(planned.changes, "live" if running and planned.changed else "next start")

    def inspect(self, directory: Path) -> InspectorData:
        with self._lock:
            found = self._find(directory)
            session = self._live(found) if found else None
            running = session is not None and session.state == "running"
            name = directory.name
            applied, pending = self.policy_state.get(directory, (None, ()))
            provision_line, provision_warn = self.provision_line.get(directory, ("", False))
            return InspectorData(
                project=directory,
                session_id=session.id if session else None,
                mounts=(
                    MountRow(str(directory), f"{GUEST_HOME}/{name}", False, True),
                    MountRow(str(Path.home() / ".gitconfig"), f"{GUEST_HOME}/.gitconfig", True),
                ),
                network_mode=self.network_mode.get(directory, "allowlist"),
                network_entries=self.network_entries.get(directory, DEFAULT_ENTRIES),
                ports=("8000 → 8000",),
                recent_network=self.network_log.get(directory, ()),
                secrets=self.secrets.get(directory, ()),
                storage=(
                    ("config", "vibebox.toml"),
                    ("cache", ".vibebox/"),
                    ("disk", ".vibebox/disk.qcow2"),
                    ("console log", ".vibebox/console.log"),
                ),
                vm_state=session.state if session else "missing",
                ipv4="192.168.122.57" if running else None,
                cpus=2,
                memory_mb=2048,
                attached=session.attached if session else None,
                policy_applied=applied if running else None,
                policy_pending=pending if running else (),
                provision=provision_line,
                provision_warn=provision_warn,
            )

    def fingerprint(self, directory: Path) -> Hashable:
        with self._lock:
            found = self._find(directory)
            session = self._live(found) if found else None
            return (
                self.config_revision.get(directory, 0),
                session.state if session else None,
                session.attached if session else None,
                len(self.network_log.get(directory, ())),
                self.policy_state.get(directory),
                self.provision_line.get(directory),
            )

    def console_tail(self, directory: Path, lines: int = 15) -> list[str]:
        with self._lock:
            session = self._find(directory)
        if session is None:
            return []
        return self.hypervisor.console_tail(session.id, lines).splitlines()
