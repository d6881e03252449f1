"""The real :class:`~vibebox_tui.backend.base.Backend`: sessions driven through ``vibebox_core``.

It only adapts: the decisions are the core's. Starting, attaching and the terminal (a direct
SSH PTY or the supervisor's relay, port forwards in the background) go through
:mod:`vibebox_core.session.start`, states through :mod:`vibebox_core.session.status`, delete and
recreate through :mod:`vibebox_core.session.teardown`, checkpoints through
:mod:`vibebox_core.session.checkpoint`, the inspector's data through
:func:`vibebox_core.session.explain.gather` (what ``vibebox explain`` shows too), allowing and
blocking a host from it through :mod:`vibebox_core.session.steer` (as ``vibebox allow/block``).
What is the dashboard's own is its threads (:mod:`vibebox_tui.backend.io_thread`): an early
connection is made on an IO thread and its terminal crosses to the app's loop.
Everything here is either a coroutine (attach) or blocking code the app runs in worker threads;
every failure is a :class:`~vibebox_core.errors.VibeboxError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from vibebox_core.config import snapshot
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import PROJECT_CACHE, PROJECT_CONFIG, ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressEvent
from vibebox_core.session import (
    approve,
    checkpoint,
    provision,
    provision_record,
    start,
    teardown,
)
from vibebox_core.session import steer as steering
from vibebox_core.session.explain import gather
from vibebox_core.session.status import SessionStatus, list_statuses, session_status
from vibebox_core.session.steer import Action, HostChange, SteerResult
from vibebox_core.streams import ByteStream
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
from vibebox_tui.backend.io_thread import IOThread, ThreadedStream

#: How the dashboard names itself to the session's supervisor (its log).
CLIENT_NAME = "vibebox dashboard"
#: Network decisions the inspector shows.
RECENT_NETWORK = 20


def _row(status: SessionStatus) -> SessionRow:
    entry = status.entry
    return SessionRow(
        id=entry.id,
        directory=entry.directory,
        state=status.state,
        attached=status.attached,
        last_active=entry.last_active,
        reason=status.reason if status.state == "broken" else "",
    )


def _policy(status: SessionStatus | None) -> tuple[str | None, tuple[str, ...]]:
    """What the supervisor says about the running session's network policy (checked: it
    comes over a socket)."""
    policy = status.policy if status is not None else None
    if policy is None:
        return None, ()
    applied, pending = policy.get("applied"), policy.get("pending")
    lines = tuple(str(line) for line in pending) if isinstance(pending, list) else ()
    return (applied if applied in ("live", "next start") else None), lines


def _provision_line(status: provision_record.Status | None) -> str:
    """The inspector's provisioning line: nothing while there is no list and no run."""
    if status is None or (status.steps == 0 and status.record is None):
        return ""
    if status.steps is None:
        return status.summary
    return f"{status.steps} step{'s' if status.steps != 1 else ''}; {status.summary}"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


class CoreBackend:
    """Drives real sessions (libvirt, SSH, the supervisor).

    Args:
        project: the directory vibebox was started in (None: only browse sessions).
        hypervisor: where VM states come from (None: libvirt at each project's URI; tests
            pass a :class:`~vibebox_core.hypervisor.fake.FakeHypervisor`).
    """

    def __init__(self, project: Path | None, *, hypervisor: Hypervisor | None = None) -> None:
        self._paths = ProjectPaths.for_directory(project) if project else None
        self._project = self._paths.root if self._paths else None
        self._hypervisor = hypervisor
        self._io: IOThread | None = None
        self._early: concurrent.futures.Future[start.Shell] | None = None
        self._lock = threading.Lock()
        self._sink: ProgressCallback | None = None
        self._buffered: list[ProgressEvent] = []

    @property
    def project(self) -> Path | None:
        return self._project

    def list_sessions(self) -> list[SessionRow]:
        return [_row(s) for s in list_statuses(hypervisor=self._hypervisor)]

    def prestart(self, cols: int, rows: int) -> None:
        """Start attaching to the project's session now, before the UI is up.

        The first :meth:`attach` of the project then picks this attempt up (its progress
        events are replayed), so the SSH connect overlaps Textual's start-up.
        """
        if self._paths is None or self._early is not None:
            return
        self._io = IOThread()
        self._early = self._io.submit(
            start.open_shell(self._paths, cols, rows, self._early_progress, client=CLIENT_NAME)
        )

    def _early_progress(self, event: ProgressEvent) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                self._buffered.append(event)
        if sink is not None:
            sink(event)

    async def attach(
        self, directory: Path, cols: int, rows: int, progress: ProgressCallback
    ) -> Attachment:
        early, self._early = self._early, None
        if early is not None and self._io is not None and directory == self._project:
            with self._lock:
                self._sink, buffered = progress, self._buffered
                self._buffered = []
            for event in buffered:
                progress(event)
            shell = await asyncio.wrap_future(early)
            io = self._io
            stream: ByteStream = ThreadedStream(io, shell.stream)

            async def release() -> None:
                await io.call(shell.release())

        else:
            if early is not None:
                early.add_done_callback(self._discard)
            project = ProjectPaths.for_directory(directory)
            shell = await start.open_shell(project, cols, rows, progress, client=CLIENT_NAME)
            stream = shell.stream
            release = shell.release
        running = shell.running
        row = SessionRow(
            id=running.session_id,
            directory=running.project.root,
            state="running",
            attached=shell.attached,
            last_active=running.entry.last_active,
        )
        outcome = shell.provisioned
        said = provision.notice(outcome, success=True) if outcome is not None else ""
        failed = outcome is not None and not outcome.ok
        # Tabs: each another PTY from the supervisor's relay, on this loop (the relay is plain
        # asyncio over the socket); the process stays attached once (Shell.open_terminal).
        return Attachment(
            row, stream, release, opener=shell.open_terminal, notice=said, notice_failed=failed
        )

    def _discard(self, future: concurrent.futures.Future[Any]) -> None:
        """An early attempt nobody wants: detach it (the VM keeps its grace period)."""
        if self._io is None or future.cancelled() or future.exception() is not None:
            return
        self._io.submit(future.result().discard())

    def approve(self, directory: Path, expected: str | None = None) -> str:
        # The approved snapshot outside the project; exactly what the dialog showed.
        return approve.approve(ProjectPaths.for_directory(directory), expected=expected)

    def _entry(self, session_id: str) -> SessionEntry:
        return SessionIndex().get(session_id)

    def delete(self, session_id: str) -> None:
        teardown.delete_session(self._entry(session_id), self._hypervisor)

    def recreate(self, session_id: str, progress: ProgressCallback) -> SessionRow:
        entry = self._entry(session_id)
        new = asyncio.run(teardown.recreate(entry.project))
        return SessionRow(new.id, new.directory, "shut off", 0, new.last_active)

    def checkpoints(self, directory: Path) -> CheckpointList:
        project = ProjectPaths.for_directory(directory)
        found = asyncio.run(checkpoint.list_checkpoints(project, hypervisor=self._hypervisor))
        rows = (CheckpointRow(c.name, c.created, checkpoint.format_size(c.data)) for c in found)
        return CheckpointList(tuple(rows), checkpoint.format_size(checkpoint.disk_usage(project)))

    def save_checkpoint(self, directory: Path, progress: ProgressCallback) -> str:
        project = ProjectPaths.for_directory(directory)
        saved = asyncio.run(
            checkpoint.save(project, hypervisor=self._hypervisor, progress=progress)
        )
        return saved.describe()

    def restore_checkpoint(self, directory: Path, name: str, progress: ProgressCallback) -> bool:
        # The dashboard starts the VM again by attaching (its progress view shows the boot).
        restored = asyncio.run(
            checkpoint.restore(
                ProjectPaths.for_directory(directory),
                name,
                hypervisor=self._hypervisor,
                progress=progress,
                start_again=False,
            )
        )
        return restored.was_running

    def remove_checkpoint(self, directory: Path, name: str) -> None:
        project = ProjectPaths.for_directory(directory)
        asyncio.run(checkpoint.remove(project, name, hypervisor=self._hypervisor))

    def plan_steer(self, directory: Path, host: str, action: Action) -> HostChange:
        (change,) = steering.plan(ProjectPaths.for_directory(directory), [host], action).changes
        return change

    def steer(self, directory: Path, hosts: Sequence[str], action: Action) -> SteerResult:
        return steering.steer(ProjectPaths.for_directory(directory), hosts, action)

    def inspect(self, directory: Path) -> InspectorData:
        project = ProjectPaths.for_directory(directory)
        storage = tuple(
            (label, _relative(path, project.root) + ("/" if path.name == PROJECT_CACHE else ""))
            for label, path in (
                ("config", project.config),
                ("cache", project.cache),
                ("disk", project.disk),
                ("console log", project.console_log),
                ("network log", project.network_log),
            )
        )
        gathered = gather(project, hypervisor=self._hypervisor, recent=RECENT_NETWORK)
        entry, status = gathered.entry, gathered.status
        state: str | None = "missing"
        ipv4: str | None = None
        attached: int | None = None
        problem = ""
        if status is not None:
            state, ipv4, attached = status.state, status.ipv4, status.attached
            if status.state == "broken":
                problem = status.reason
        applied, pending = _policy(status)
        # The log's own lines (with source and reason), not explain's shorter ones.
        recent = tuple(NetLine(e.describe(), e.host, e.verdict) for e in gathered.events)
        # What is enforced: the approved snapshot, never the guest-writable file; the file's
        # unapproved change is shown apart (InspectorData.unapproved).
        found, config, explain = gathered.review, gathered.config, gathered.explain
        if found.error is not None:
            exc = found.error
            hint = f" ({exc.hint})" if exc.hint else ""
            return InspectorData(
                project=project.root,
                session_id=entry.id if entry else None,
                recent_network=recent,
                storage=storage,
                vm_state=state,
                ipv4=ipv4,
                attached=attached,
                problem=f"{PROJECT_CONFIG}: {exc.message}{hint}",
                policy_applied=applied,
                policy_pending=pending,
            )
        return InspectorData(
            project=explain.project,
            session_id=explain.session_id,
            mounts=tuple(
                MountRow(str(m.host), m.guest, m.read_only, m.default) for m in explain.mounts
            ),
            network_mode=explain.network.mode,
            network_entries=explain.network.entries,
            ports=explain.network.ports,
            recent_network=recent,
            secrets=tuple(SecretRow(x.name, x.hosts, x.source_kind) for x in explain.secrets),
            storage=(*((i.label, i.path) for i in explain.storage), *storage[2:]),
            vm_state=state or "missing",
            ipv4=ipv4,
            cpus=config.box.cpus,
            memory_mb=config.box.memory_mb,
            attached=attached,
            problem=problem,
            policy_applied=applied,
            policy_pending=pending,
            unapproved=explain.pending,
            provision=_provision_line(explain.provision),
            provision_warn=bool(explain.provision and explain.provision.needs_attention),
        )

    def fingerprint(self, directory: Path) -> Hashable:
        project = ProjectPaths.for_directory(directory)

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        vm: tuple[str, int, str | None, str | None, tuple[str, ...]] | None = None
        try:
            entry = SessionIndex().find_by_directory(project.root)
        except VibeboxError:
            entry = None
        if entry is not None:
            status = session_status(entry, self._hypervisor)
            vm = (status.state, status.attached, status.ipv4, *_policy(status))
        approved = stat(snapshot.snapshot_path(project))  # an approval changes what is shown
        files = (
            stat(project.config),
            approved,
            stat(project.network_log),
            stat(project.provision_record),  # a run ended, or started
            stat(project.provision_pending),
        )
        return files, vm, entry.id if entry else None

    def console_tail(self, directory: Path, lines: int = 15) -> list[str]:
        path = ProjectPaths.for_directory(directory).console_log
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 16384))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line.rstrip("\r") for line in text.splitlines()[-lines:]]
