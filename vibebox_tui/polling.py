"""The dashboard's polling: session list, inspector data and console tail, in threads.

Polls run on timers (``on_mount`` of the app sets them up); each starts a thread worker that
asks the backend and posts the answer as a message. A poll is skipped while the previous one
of its kind still runs: a thread cannot be cancelled, so they must never pile up.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from textual import work
from textual.app import App
from textual.worker import WorkerState

from vibebox_tui import messages as msg
from vibebox_tui.backend.base import Backend
from vibebox_tui.widgets import BootProgress, Inspector


class PollingApp(App[int]):
    """Base of :class:`~vibebox_tui.app.VibeboxApp`: the background polls."""

    backend: Backend
    directory: Path | None
    inspector: Inspector
    progress: BootProgress
    _inspector_fingerprint: Hashable

    def _busy(self, group: str) -> bool:
        """A worker of ``group`` still runs (a thread cannot be cancelled: never pile up)."""
        return any(
            w.group == group and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def _poll_sessions(self) -> None:
        if not self._busy("sessions"):
            self.refresh_sessions()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions")
    def refresh_sessions(self) -> None:
        try:
            sessions = self.backend.list_sessions()
        except Exception as exc:
            self.post_message(msg.Failed("Listing sessions", exc, dialog=False))
            return
        self.post_message(msg.SessionsListed(sessions))

    def _poll_inspector(self) -> None:
        if self.directory is not None and self.inspector.display and not self._busy("inspector"):
            self.refresh_inspector(self.directory, self._inspector_fingerprint)

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspector")
    def refresh_inspector(self, directory: Path, last: Hashable) -> None:
        try:
            fingerprint = self.backend.fingerprint(directory)
            if fingerprint == last:
                return
            data = self.backend.inspect(directory)
        except Exception as exc:
            self.post_message(msg.Failed("Inspecting the session", exc, dialog=False))
            return
        self._inspector_fingerprint = fingerprint
        self.post_message(msg.InspectorUpdated(data))

    def _poll_console(self) -> None:
        progress = self.progress
        if (
            self.directory is not None
            and progress.console_shown
            and progress.display
            and not self._busy("console")
        ):
            self.fetch_console(self.directory)

    @work(thread=True, exclusive=True, exit_on_error=False, group="console")
    def fetch_console(self, directory: Path) -> None:
        try:
            lines = self.backend.console_tail(directory)
        except Exception as exc:
            self.post_message(msg.Failed("Reading the console log", exc, dialog=False))
            return
        self.post_message(msg.ConsoleTail(lines))
