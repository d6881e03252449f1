"""The vibebox dashboard: session browser, terminal, inspector, wired to a backend.

The app only wires: widgets draw, the :class:`~vibebox_tui.backend.base.Backend` does the work in
workers (threads for blocking calls, an async worker for attaching), and results come back as
messages (:mod:`vibebox_tui.messages`). :meth:`VibeboxApp.on_failed` is the one place that
decides between an error dialog and a notification. The background polls live in
:mod:`vibebox_tui.polling`, what the dashboard does to sessions (attach, approve, recreate,
delete, leave) in :mod:`vibebox_tui.session_actions`, the terminal's tabs in
:mod:`vibebox_tui.tab_actions`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.driver import Driver
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

from vibebox_tui import layout
from vibebox_tui import messages as msg
from vibebox_tui.actions import PALETTE
from vibebox_tui.backend.base import Attachment, Backend, SessionRow, with_short_ids
from vibebox_tui.safe import clean, guest_lines
from vibebox_tui.screens import ErrorScreen, HelpScreen
from vibebox_tui.screens.confirm import confirm_delete
from vibebox_tui.screens.error import describe_error
from vibebox_tui.tab_actions import TAB_ACTIONS, TabActionsApp
from vibebox_tui.terminal import FOCUS_OUT_KEY, TerminalView
from vibebox_tui.terminal.input import dashboard_driver
from vibebox_tui.widgets import BootProgress, Inspector, SessionBrowser, SessionHeader, TerminalTabs
from vibebox_tui.widgets.tabs import MAX_TABS

SESSION_POLL_SECONDS = 1.0
INSPECTOR_POLL_SECONDS = 0.5
CONSOLE_POLL_SECONDS = 1.0

# Actions bound to plain letters work only outside the terminal (the terminal takes every key
# but FOCUS_OUT_KEY), so the footer hides them while the terminal has the focus.
LETTER_ACTIONS = {
    "toggle_inspector",
    "new_session",
    "help",
    "quit_app",
    "focus_browser",
    *TAB_ACTIONS,
}


class VibeboxApp(TabActionsApp, inherit_bindings=False):
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
        # Tabs (outside the terminal, like the letters above): new, close, next, previous, N.
        Binding("o", "new_tab", "New tab", show=False),
        Binding("w", "close_tab", "Close tab", show=False),
        Binding("right_square_bracket", "next_tab", "Next tab", show=False),
        Binding("left_square_bracket", "previous_tab", "Previous tab", show=False),
        *(
            Binding(str(n), f"select_tab({n})", f"Tab {n}", show=False)
            for n in range(1, MAX_TABS + 1)
        ),
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
        self.sessions: list[SessionRow] = []
        self._inspector_fingerprint: Hashable = object()
        self._list_error = ""
        self.header = SessionHeader(id="header")
        self.browser = SessionBrowser(id="browser")
        self.centre = ContentSwitcher(id="centre", initial="idle")
        self.progress = BootProgress(id="progress", live_clock=live_clock)
        self.tabs = TerminalTabs(id="terminal")
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
                yield self.tabs
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

    # -- vibebox commands (typed at the guest prompt) --------------------------------------

    @on(TerminalView.VibeboxCommand)
    def _vibebox_command(self, message: TerminalView.VibeboxCommand) -> None:
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
