"""The real :class:`~vibebox_tui.backend.Backend`: sessions driven through ``vibebox_core``.

Lifecycle goes through :mod:`vibebox_core.runtime` (start, attach, delete, recreate), the data
through :mod:`vibebox_core.config`, :mod:`vibebox_core.sessions` and
:mod:`vibebox_core.netlog`. Everything here is either a coroutine (attach) or blocking code the
app runs in worker threads; every failure is a :class:`~vibebox_core.errors.VibeboxError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable
from pathlib import Path

from vibebox_core import netlog, runtime
from vibebox_core.config import load_config
from vibebox_core.errors import VibeboxError
from vibebox_core.explain import VMInfo, build_explain
from vibebox_core.paths import PROJECT_CACHE, PROJECT_CONFIG, ProjectPaths
from vibebox_core.progress import ProgressCallback
from vibebox_core.pty import SSHPtyStream
from vibebox_core.sessions import SessionEntry, SessionIndex
from vibebox_tui.backend import Attachment, InspectorData, MountRow, SessionStatus

#: How the dashboard names itself to the session's supervisor (its log).
CLIENT_NAME = "vibebox dashboard"
RECENT_NETWORK = 20


def _status(status: runtime.SessionStatus) -> SessionStatus:
    entry = status.entry
    return SessionStatus(
        id=entry.id,
        directory=entry.directory,
        state=status.state,
        attached=status.attached,
        last_active=entry.last_active,
        reason=status.reason if status.state == "broken" else "",
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


class CoreBackend:
    """Drives real sessions (libvirt, SSH, the supervisor).

    Args:
        project: the directory vibebox was started in (None: only browse sessions).
    """

    def __init__(self, project: Path | None) -> None:
        self._project = ProjectPaths.for_directory(project).root if project else None

    @property
    def project(self) -> Path | None:
        return self._project

    def list_sessions(self) -> list[SessionStatus]:
        return [_status(s) for s in runtime.list_statuses()]

    async def attach(
        self, directory: Path, cols: int, rows: int, progress: ProgressCallback
    ) -> Attachment:
        running = await runtime.ensure_running(directory, progress, client=CLIENT_NAME)
        try:
            stream = await SSHPtyStream.open(running.connection, cols, rows)
            attached = await running.attached_count()
        except BaseException:
            await running.close()
            raise
        status = SessionStatus(
            id=running.session_id,
            directory=running.project.root,
            state="running",
            attached=attached,
            last_active=running.entry.last_active,
        )
        return Attachment(status, stream, running.close)

    def _entry(self, session_id: str) -> SessionEntry:
        return SessionIndex().get(session_id)

    def delete(self, session_id: str) -> None:
        runtime.delete_session(self._entry(session_id))

    def recreate(self, session_id: str, progress: ProgressCallback) -> SessionStatus:
        entry = self._entry(session_id)
        new = asyncio.run(runtime.recreate(entry.directory))
        return SessionStatus(new.id, new.directory, "shut off", 0, new.last_active)

    def inspect(self, directory: Path) -> InspectorData:
        project = ProjectPaths.for_directory(directory)
        entry = SessionIndex().find_by_directory(project.root)
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
        state: str | None = "missing"
        ipv4: str | None = None
        attached: int | None = None
        problem = ""
        if entry is not None:
            status = runtime.session_status(entry)
            state, ipv4, attached = status.state, status.ipv4, status.attached
            if status.state == "broken":
                problem = status.reason
        recent: tuple[str, ...] = ()
        with contextlib.suppress(OSError, ValueError):
            recent = tuple(e.describe() for e in netlog.tail(project.network_log, RECENT_NETWORK))
        try:
            config = load_config(project, create=False)
        except VibeboxError as exc:
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
            )
        events: tuple[netlog.NetEvent, ...] = ()
        with contextlib.suppress(OSError, ValueError):
            events = tuple(netlog.tail(project.network_log, RECENT_NETWORK))
        vm = VMInfo(state or "missing", ipv4, config.box.cpus, config.box.memory_mb, attached)
        explain = build_explain(
            project,
            config,
            session_id=entry.id if entry else None,
            vm=vm,
            recent_network=events,
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
            recent_network=tuple(e.describe() for e in explain.recent_network),
            storage=(*((i.label, i.path) for i in explain.storage), *storage[2:]),
            vm_state=vm.state,
            ipv4=vm.ipv4,
            cpus=vm.cpus,
            memory_mb=vm.memory_mb,
            attached=vm.attached,
            problem=problem,
        )

    def fingerprint(self, directory: Path) -> Hashable:
        project = ProjectPaths.for_directory(directory)

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        vm: tuple[str, int, str | None] | None = None
        try:
            entry = SessionIndex().find_by_directory(project.root)
        except VibeboxError:
            entry = None
        if entry is not None:
            status = runtime.session_status(entry)
            vm = (status.state, status.attached, status.ipv4)
        return stat(project.config), stat(project.network_log), vm, entry.id if entry else None

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
