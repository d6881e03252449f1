"""The dashboard's session actions: attach the terminal, approve, recreate, delete, leave, the
checkpoints of the guest's disk (save, restore, remove), and allowing or blocking a host of the
inspector's network log (after a confirmation: the user's answer is the approval).

Each action that waits on the backend runs in a worker (a thread for blocking calls, an async
worker for attaching) and posts its result as a message (:mod:`vibebox_tui.messages`); the
app's :meth:`~vibebox_tui.app.VibeboxApp.on_failed` decides how a failure is shown. The app's
widgets are made and laid out by :class:`~vibebox_tui.app.VibeboxApp`; these actions only use
them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import work
from textual.widgets import ContentSwitcher

from vibebox_core.config.grants import PolicyNotApprovedError
from vibebox_core.progress import ProgressEvent, ignore_progress
from vibebox_core.session.steer import Action, HostChange
from vibebox_tui import messages as msg
from vibebox_tui.backend.base import Attachment, SessionRow
from vibebox_tui.polling import PollingApp
from vibebox_tui.safe import clean, guest_lines
from vibebox_tui.screens.checkpoints import CheckpointChoice, CheckpointsScreen
from vibebox_tui.screens.confirm import (
    confirm_approval,
    confirm_recreate,
    confirm_remove_checkpoint,
    confirm_restore,
    confirm_steer,
)
from vibebox_tui.terminal import TerminalView
from vibebox_tui.widgets import Inspector, SessionBrowser, SessionHeader
from vibebox_tui.widgets.tabs import TerminalTabs


class SessionActionsApp(PollingApp):
    """Base of :class:`~vibebox_tui.app.VibeboxApp`: what the dashboard does to sessions."""

    attachment: Attachment | None
    sessions: list[SessionRow]
    header: SessionHeader
    browser: SessionBrowser
    centre: ContentSwitcher
    tabs: TerminalTabs

    @property
    def terminal(self) -> TerminalView:
        """The terminal on screen (the shown tab)."""
        return self.tabs.active

    # -- the attached session --------------------------------------------------------------

    @property
    def current_session(self) -> SessionRow | None:
        if self.attachment is not None:
            sid = self.attachment.session.id
            return next((s for s in self.sessions if s.id == sid), self.attachment.session)
        if self.directory is not None:
            return next((s for s in self.sessions if s.directory == self.directory), None)
        return None

    def _update_header(self) -> None:
        header = self.header
        session = self.current_session
        header.project = self.directory.name if self.directory else ""
        header.session_id = session.id if session else ""
        header.short_id = session.short_id if session else ""
        header.state = session.state if session else ""

    def _show(self, view: str) -> None:
        self.centre.current = view

    # -- attaching -------------------------------------------------------------------------

    def attach_directory(self, directory: Path, *, startup: bool) -> None:
        """Attach the terminal to the session of ``directory``, starting it if needed."""
        self.directory = directory
        self._inspector_fingerprint = object()
        self._start_attach(directory, startup)

    def _terminal_size(self) -> tuple[int, int]:
        size = self.centre.size
        return max(20, size.width), max(5, size.height)

    def _progress(self, event: ProgressEvent) -> None:
        # May be called from a core thread; post_message is thread-safe.
        self.post_message(msg.Progress(event))

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def _start_attach(self, directory: Path, startup: bool) -> None:
        await self._release()
        progress = self.progress
        progress.begin(f"Starting the session of {directory}")
        self._show("progress")
        if self.screen is self.screen_stack[0]:
            progress.focus()  # keys typed now are kept for the shell; ctrl+o shows the console
        self._update_header()
        cols, rows = self._terminal_size()
        try:
            attachment = await self.backend.attach(directory, cols, rows, self._progress)
        except PolicyNotApprovedError as exc:
            self._show("idle")
            self.browser.focus()
            self.post_message(msg.ApprovalNeeded(directory, exc, startup))
            return
        except Exception as exc:
            self._show("idle")
            self.browser.focus()
            self.post_message(msg.Failed(f"Could not start {directory.name}", exc, fatal=startup))
            return
        self.post_message(msg.Attached(attachment))

    def on_approval_needed(self, message: msg.ApprovalNeeded) -> None:
        directory = message.directory

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.approve_and_attach(directory, message.startup, message.error.check.digest)
            else:
                action = f"Not starting {directory.name}"
                self.post_message(msg.Failed(action, message.error, fatal=message.startup))

        diff, first = message.error.check.diff, message.error.first
        self.push_screen(confirm_approval(directory, diff, first=first), answered)

    @work(exclusive=True, exit_on_error=False, group="approve")
    async def approve_and_attach(self, directory: Path, startup: bool, expected: str = "") -> None:
        try:
            when = await asyncio.to_thread(self.backend.approve, directory, expected or None)
        except PolicyNotApprovedError as exc:  # the file changed again since the dialog
            self.post_message(msg.ApprovalNeeded(directory, exc, startup))
            return
        except Exception as exc:
            self.post_message(msg.Failed("Approving vibebox.toml", exc, fatal=startup))
            return
        applies = "now" if when == "live" else "from this start on"
        self.notify(f"Approved the new mounts and network; they apply {applies}.")
        self.attach_directory(directory, startup=startup)

    def on_progress(self, message: msg.Progress) -> None:
        self.progress.add_event(message.event)

    def on_attached(self, message: msg.Attached) -> None:
        self.attachment = message.attachment
        self.directory = message.attachment.session.directory
        self.terminal.attach(message.attachment.stream)
        typed = self.progress.take_typed_ahead()
        if typed:
            self.run_worker(self.terminal.send(typed), group="typed-ahead")
        self._show("terminal")
        self.terminal.focus()
        self._update_header()
        self.refresh_sessions()
        notice, failed = message.attachment.notice, message.attachment.notice_failed
        if notice:  # how provisioning a new session went (the core's words, guest text in it)
            self.notify(
                guest_lines(notice),
                severity="warning" if failed else "information",
                timeout=12 if failed else 5,
                markup=False,
            )

    async def _release(self) -> None:
        attachment, self.attachment = self.attachment, None
        if attachment is None:
            return
        await self.tabs.reset()  # every tab's stream detached; the attachment closes them
        self.header.title = ""  # the guest's window title belonged to that shell
        try:
            await attachment.close()
        except Exception as exc:
            self.post_message(msg.Failed("Detaching", exc, dialog=False))

    # -- recreating, deleting, leaving -----------------------------------------------------

    def action_new_session(self) -> None:
        if self.centre.current == "progress":
            # Keys typed ahead of the prompt land here while a VM boots: never let them start
            # deleting the session being started.
            self.notify("The session is starting; :new works once it runs.", severity="warning")
            return
        session = self.current_session
        if session is None or self.directory is None:
            self.notify("No session to recreate here.", severity="warning")
            return
        directory = self.directory

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.recreate_session(session, directory)

        self.push_screen(confirm_recreate(session, directory), answered)

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def recreate_session(self, session: SessionRow, directory: Path) -> None:
        await self._release()
        progress = self.progress
        progress.begin(f"Recreating the session of {directory}")
        self._show("progress")
        try:
            await asyncio.to_thread(self.backend.recreate, session.id, self._progress)
        except Exception as exc:
            self._show("idle")
            self.browser.focus()
            self.post_message(msg.Failed(f"Recreating session {session.short_id}", exc))
            return
        self.attach_directory(directory, startup=False)

    async def action_quit_app(self) -> None:
        """Leave vibebox; the session stays up for its grace period."""
        await self._release()
        self.exit(0)

    @work(exclusive=True, exit_on_error=False, group="delete")
    async def delete_session(self, session: SessionRow) -> None:
        if self.attachment is not None and self.attachment.session.id == session.id:
            await self._release()
            self._show("idle")
        try:
            await asyncio.to_thread(self.backend.delete, session.id)
        except Exception as exc:
            self.post_message(msg.Failed(f"Deleting session {session.short_id}", exc))
            return
        self.post_message(msg.Done("delete", f"Deleted session {session.short_id}."))

    # -- checkpoints of the guest's disk ---------------------------------------------------

    def _checkpoint_directory(self) -> Path | None:
        """The directory whose session the checkpoint actions act on, or None (said why)."""
        if self.centre.current == "progress":
            self.notify(
                "The session is starting; checkpoints work once it runs or is off.",
                severity="warning",
            )
            return None
        if self.current_session is None or self.directory is None:
            self.notify("No session here to checkpoint.", severity="warning")
            return None
        return self.directory

    def action_save_checkpoint(self) -> None:
        directory = self._checkpoint_directory()
        if directory is not None:
            self.save_checkpoint(directory)

    @work(exclusive=True, exit_on_error=False, group="checkpoint")
    async def save_checkpoint(self, directory: Path) -> None:
        self.notify("Saving a checkpoint of the guest's disk…", timeout=3)
        try:
            text = await asyncio.to_thread(self.backend.save_checkpoint, directory, ignore_progress)
        except Exception as exc:
            self.post_message(msg.Failed("Saving a checkpoint", exc))
            return
        self.post_message(msg.Done("checkpoint", text[:1].upper() + text[1:] + "."))

    def action_checkpoints(self) -> None:
        directory = self._checkpoint_directory()
        session = self.current_session
        if directory is not None and session is not None:
            self.list_checkpoints(directory, session.state == "running")

    @work(exclusive=True, exit_on_error=False, group="checkpoint")
    async def list_checkpoints(self, directory: Path, running: bool) -> None:
        try:
            found = await asyncio.to_thread(self.backend.checkpoints, directory)
        except Exception as exc:
            self.post_message(msg.Failed("Listing the checkpoints", exc))
            return
        self.post_message(msg.CheckpointsListed(directory, found, running))

    def on_checkpoints_listed(self, message: msg.CheckpointsListed) -> None:
        directory = message.directory

        def chosen(choice: CheckpointChoice | None) -> None:
            if choice is None:
                return
            if choice.action == "save":
                self.save_checkpoint(directory)
                return
            name = choice.name

            def answered(confirmed: bool | None) -> None:
                if not confirmed:
                    return
                if choice.action == "restore":
                    self.restore_checkpoint(directory, name)
                else:
                    self.remove_checkpoint(directory, name)

            if choice.action == "restore":
                screen = confirm_restore(name, directory, running=message.running)
            else:
                screen = confirm_remove_checkpoint(name, directory)
            self.push_screen(screen, answered)

        self.push_screen(CheckpointsScreen(directory, message.checkpoints), chosen)

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def restore_checkpoint(self, directory: Path, name: str) -> None:
        attached = self.attachment is not None
        await self._release()  # the VM is shut down: this terminal goes with it
        progress = self.progress
        progress.begin(f"Restoring checkpoint {name} of {directory}")
        self._show("progress")
        try:
            was_running = await asyncio.to_thread(
                self.backend.restore_checkpoint, directory, name, self._progress
            )
        except Exception as exc:
            self._show("idle")
            self.browser.focus()
            self.post_message(msg.Failed(f"Restoring checkpoint {name}", exc))
            return
        self.post_message(
            msg.Done(
                "restore",
                f"Restored checkpoint {name}; project files on the host are untouched.",
            )
        )
        if was_running or attached:
            self.attach_directory(directory, startup=False)  # starts it again, as it was
        else:
            self._show("idle")
            self.browser.focus()

    @work(exclusive=True, exit_on_error=False, group="checkpoint")
    async def remove_checkpoint(self, directory: Path, name: str) -> None:
        try:
            await asyncio.to_thread(self.backend.remove_checkpoint, directory, name)
        except Exception as exc:
            self.post_message(msg.Failed(f"Removing checkpoint {name}", exc))
            return
        self.post_message(msg.Done("checkpoint", f"Removed checkpoint {name}."))

    # -- steering the network policy from the inspector -------------------------------------

    def on_inspector_steer_requested(self, message: Inspector.SteerRequested) -> None:
        if self.directory is not None:
            self.plan_steer(self.directory, message.entry.host, message.action)

    @work(exclusive=True, exit_on_error=False, group="steer")
    async def plan_steer(self, directory: Path, host: str, action: Action) -> None:
        try:
            change = await asyncio.to_thread(self.backend.plan_steer, directory, host, action)
        except Exception as exc:
            verb = "Allowing" if action == "allow" else "Blocking"
            self.post_message(msg.Failed(f"{verb} {clean(host, 80)}", exc, dialog=False))
            return
        self.post_message(msg.SteerPlanned(directory, change))

    def on_steer_planned(self, message: msg.SteerPlanned) -> None:
        change, directory = message.change, message.directory
        if not change.changed:  # already in that state: say so, nothing to confirm
            self.notify(clean(f"{change.entry}: {change.describe()}", 300), markup=False)
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.apply_steer(directory, change)

        self.push_screen(confirm_steer(change, directory), answered)

    @work(exclusive=True, exit_on_error=False, group="steer")
    async def apply_steer(self, directory: Path, change: HostChange) -> None:
        try:
            result = await asyncio.to_thread(
                self.backend.steer, directory, [change.entry], change.action
            )
        except Exception as exc:
            verb = "Allowing" if change.action == "allow" else "Blocking"
            self.post_message(msg.Failed(f"{verb} {change.entry}", exc))
            return
        self.post_message(msg.Done("steer", "\n".join(result.lines())))
