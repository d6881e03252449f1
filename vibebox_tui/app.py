"""The vibebox dashboard: session browser, terminal, inspector, wired to a backend.

The app only wires: widgets draw, the :class:`~vibebox_tui.backend.base.Backend` does the work in
workers (threads for blocking calls, an async worker for attaching), and results come back as
messages (:mod:`vibebox_tui.messages`). :meth:`VibeboxApp.on_failed` is the one place that
decides between an error dialog and a notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.driver import Driver
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

from vibebox_core.network.rules import PolicyNotApprovedError
from vibebox_core.progress import ProgressEvent
from vibebox_tui import layout
from vibebox_tui import messages as msg
from vibebox_tui.actions import PALETTE
from vibebox_tui.backend.base import Attachment, Backend, SessionStatus, with_short_ids
from vibebox_tui.polling import PollingApp
from vibebox_tui.safe import clean, guest_lines
from vibebox_tui.screens import ErrorScreen, HelpScreen
from vibebox_tui.screens.confirm import confirm_approval, confirm_delete, confirm_recreate
from vibebox_tui.screens.error import describe_error
from vibebox_tui.terminal import FOCUS_OUT_KEY, TerminalView
from vibebox_tui.terminal.input import dashboard_driver
from vibebox_tui.terminal.messages import Disconnected, TitleChanged, VibeboxCommand
from vibebox_tui.widgets import BootProgress, Inspector, SessionBrowser, SessionHeader

SESSION_POLL_SECONDS = 1.0
INSPECTOR_POLL_SECONDS = 0.5
CONSOLE_POLL_SECONDS = 1.0

# Actions bound to plain letters work only outside the terminal (the terminal takes every key
# but FOCUS_OUT_KEY), so the footer hides them while the terminal has the focus.
LETTER_ACTIONS = {"toggle_inspector", "new_session", "help", "quit_app", "focus_browser"}


class VibeboxApp(PollingApp, inherit_bindings=False):
    """The dashboard. ``run()`` returns the exit status (non-zero only for a fatal start-up)."""

    CSS_PATH = "app.tcss"
    TITLE = "vibebox"
    HORIZONTAL_BREAKPOINTS = sorted((least, name) for least, name, _ in layout.BREAKPOINTS)
    BINDINGS = [
        Binding(FOCUS_OUT_KEY, "leave_terminal", "Leave terminal", key_display="^\\"),
        Binding("i", "toggle_inspector", "Inspector"),
        Binding("n", "new_session", "New session"),
        Binding("t", "focus_terminal", "Terminal"),
        Binding("s", "focus_browser", "Sessions", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
        Binding("q", "quit_app", "Exit"),
        Binding("ctrl+q", "quit_app", "Exit", show=False),
    ]

    def __init__(self, backend: Backend, *, live_clock: bool = True) -> None:
        super().__init__()
        # The palette's key is a priority binding by default; make it an ordinary one so that
        # ctrl+p reaches the guest shell while the terminal has the focus.
        for key, bindings in self._bindings.key_to_bindings.items():
            if key == self.COMMAND_PALETTE_BINDING:
                bindings[:] = [replace(b, priority=False) for b in bindings]
        self.backend = backend
        self.live_clock = live_clock
        self.directory: Path | None = backend.project
        self.attachment: Attachment | None = None
        self.sessions: list[SessionStatus] = []
        self._inspector_fingerprint: Hashable = object()
        self._list_error = ""
        self.header = SessionHeader(id="header")
        self.browser = SessionBrowser(id="browser")
        self.centre = ContentSwitcher(id="centre", initial="idle")
        self.progress = BootProgress(id="progress", live_clock=live_clock)
        self.terminal = TerminalView(id="terminal")
        self.inspector = Inspector(id="inspector")
        self.main = Horizontal(id="main")

    def get_driver_class(self) -> type[Driver]:
        # The terminal's keys reach the guest as the host terminal typed them (terminal/input.py).
        return dashboard_driver(super().get_driver_class())

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Widgets are kept as attributes: a query would search a dialog on top instead.
        yield self.header
        with self.main:
            yield self.browser
            with self.centre:
                yield Static(
                    "No session attached.\n\nPick one in the session list and press Enter.",
                    id="idle",
                )
                yield self.progress
                yield self.terminal
            yield self.inspector
        yield Footer()

    def on_mount(self) -> None:
        self.inspector.display = False
        self._update_header()
        self.refresh_sessions()
        self.set_interval(SESSION_POLL_SECONDS, self._poll_sessions)
        self.set_interval(INSPECTOR_POLL_SECONDS, self._poll_inspector)
        self.set_interval(CONSOLE_POLL_SECONDS, self._poll_console)
        if self.directory is not None:
            self.attach_directory(self.directory, startup=True)
        else:
            self.browser.focus()

    @property
    def current_session(self) -> SessionStatus | None:
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

    # -- session list ----------------------------------------------------------------------

    def on_sessions_listed(self, message: msg.SessionsListed) -> None:
        self._list_error = ""
        self.sessions = with_short_ids(message.sessions)
        current = self.attachment.session.id if self.attachment else None
        self.browser.show_sessions(self.sessions, current)
        self._update_header()

    @on(SessionBrowser.AttachRequested)
    def _attach_requested(self, message: SessionBrowser.AttachRequested) -> None:
        session = message.session
        if self.attachment is not None and self.attachment.session.id == session.id:
            self.terminal.focus()
            return
        if session.state == "broken":
            self.push_screen(
                ErrorScreen(
                    f"Session {session.short_id} is broken",
                    session.reason or "The session cannot be started.",
                    f"Delete it (d, or `vibebox delete {session.short_id}`) and start again.",
                )
            )
            return
        self.attach_directory(session.directory, startup=False)

    @on(SessionBrowser.DeleteRequested)
    def _delete_requested(self, message: SessionBrowser.DeleteRequested) -> None:
        session = message.session

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.delete_session(session)

        self.push_screen(confirm_delete(session), answered)

    @work(exclusive=True, exit_on_error=False, group="delete")
    async def delete_session(self, session: SessionStatus) -> None:
        if self.attachment is not None and self.attachment.session.id == session.id:
            await self._release()
            self._show("idle")
        try:
            await asyncio.to_thread(self.backend.delete, session.id)
        except Exception as exc:
            self.post_message(msg.Failed(f"Deleting session {session.short_id}", exc))
            return
        self.post_message(msg.Done("delete", f"Deleted session {session.short_id}."))

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

    async def _release(self) -> None:
        attachment, self.attachment = self.attachment, None
        if attachment is None:
            return
        self.terminal.detach()
        self.header.title = ""  # the guest's window title belonged to that shell
        try:
            await attachment.close()
        except Exception as exc:
            self.post_message(msg.Failed("Detaching", exc, dialog=False))

    @on(TerminalView.ReconnectRequested)
    def _reconnect(self) -> None:
        if self.directory is not None:
            self.attach_directory(self.directory, startup=False)

    @on(TerminalView.Disconnected)
    def _disconnected(self, message: Disconnected) -> None:
        self.notify(
            f"{guest_lines(message.reason)}. Press Enter in the terminal to reconnect.",
            timeout=6,
            markup=False,
        )

    @on(TerminalView.TitleChanged)
    def _title_changed(self, message: TitleChanged) -> None:
        self.header.title = message.title

    # -- vibebox commands (typed at the guest prompt) --------------------------------------

    @on(TerminalView.VibeboxCommand)
    def _vibebox_command(self, message: VibeboxCommand) -> None:
        name = message.name
        if name == "new":
            self.action_new_session()
        elif name == "exit":
            self.run_worker(self.action_quit_app(), group="exit")
        elif name == "explain":
            self.action_explain()
        elif name == "help":
            self.action_help()
        else:
            self.notify(
                f"Unknown vibebox command :{clean(name, 40)}", severity="warning", markup=False
            )

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
    async def recreate_session(self, session: SessionStatus, directory: Path) -> None:
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

    def action_explain(self) -> None:
        # Shown, not focused: keys typed after :explain (e.g. :exit) stay the terminal's.
        self._set_inspector(True)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- inspector -------------------------------------------------------------------------

    def _set_inspector(self, shown: bool) -> None:
        inspector = self.inspector
        if inspector.display == shown:
            return
        inspector.display = shown
        self.main.set_class(shown, "-inspector")
        if shown:
            self._inspector_fingerprint = object()
            self._poll_inspector()
        elif inspector.has_focus:
            self.action_focus_terminal()

    def action_toggle_inspector(self) -> None:
        self._set_inspector(not self.inspector.display)

    def on_inspector_updated(self, message: msg.InspectorUpdated) -> None:
        if self.directory == message.data.project:
            self.inspector.show_data(message.data)

    # -- console tail while booting --------------------------------------------------------

    @on(BootProgress.LeaveRequested)
    async def _leave_while_booting(self) -> None:
        await self.action_quit_app()

    @on(BootProgress.ConsoleToggled)
    def _console_toggled(self, message: BootProgress.ConsoleToggled) -> None:
        if message.shown:
            self._poll_console()

    def on_console_tail(self, message: msg.ConsoleTail) -> None:
        self.progress.show_console(message.lines)

    # -- outcomes --------------------------------------------------------------------------

    def on_done(self, message: msg.Done) -> None:
        self.notify(guest_lines(message.text), markup=False)
        self.refresh_sessions()

    def on_failed(self, message: msg.Failed) -> None:
        """The one place that decides how a failure is shown."""
        text, hint = describe_error(message.error)
        if message.fatal:

            def leave(_: None) -> None:
                self.exit(1, return_code=1)

            self.push_screen(ErrorScreen.for_error(message.action, message.error), leave)
        elif message.dialog:
            self.push_screen(ErrorScreen.for_error(message.action, message.error))
        else:
            line = f"{message.action}: {text}"
            if line == self._list_error:
                return  # a poll that keeps failing says so once
            self._list_error = line
            shown = guest_lines(f"{line}\n{hint}" if hint else line)
            self.notify(shown, severity="error", timeout=8, markup=False)

    # -- focus and bindings ----------------------------------------------------------------

    def action_focus_terminal(self) -> None:
        if self.centre.current == "terminal":
            self.terminal.focus()
        else:
            self.browser.focus()

    def action_focus_browser(self) -> None:
        self.browser.focus()

    def action_leave_terminal(self) -> None:
        self.screen.focus_next()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        terminal_focused = isinstance(self.focused, TerminalView)
        # The progress view keeps typed letters for the shell, as the terminal takes them;
        # its own bindings (console log, ctrl+q) and ctrl+\ stay.
        booting = isinstance(self.focused, BootProgress)
        if action == "leave_terminal":
            return terminal_focused or booting
        if booting and action in (*LETTER_ACTIONS, "focus_terminal"):
            return False
        if action == "new_session" and self.centre.current == "progress":
            return False  # nothing to recreate while it starts (see action_new_session)
        return not (action in LETTER_ACTIONS and terminal_focused)

    def on_descendant_focus(self) -> None:
        if self.screen_stack:  # focus can still move while the app is shutting down
            self.refresh_bindings()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, partial(self.run_action, action))
        yield from super().get_system_commands(screen)

    def action_attach_selected(self) -> None:
        session = self.browser.selected_session
        if session is not None:
            self.browser.post_message(SessionBrowser.AttachRequested(session))

    def action_delete_selected(self) -> None:
        self.browser.action_delete_session()

    def action_toggle_console(self) -> None:
        self.progress.action_toggle_console()
