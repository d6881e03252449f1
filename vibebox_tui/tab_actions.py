"""The dashboard's tabs: more terminals into the attached session, opened, picked and closed.

Every tab is a login shell in a PTY of its own, from the session's supervisor (over its one SSH
connection, :meth:`vibebox_tui.backend.base.Attachment.open_terminal`); the dashboard stays
attached once, however many tabs it holds (the supervisor counts attachments, not terminals).
The widgets are :mod:`vibebox_tui.widgets.tabs`; this module decides what happens:

* a new tab opens next to the others and takes the keyboard;
* closing a tab ends its shell; a tab whose shell ends by itself (``exit``, a dropped
  connection) closes too, with a notification -- except the last one, which stays and shows
  why, and Enter reconnects, as the single terminal always did;
* the shown tab's window title is the header's.

The keys are the dashboard's, so they work outside the terminal (``ctrl+\\`` first): the
terminal passes every key to the guest. There is no ``:tab`` command at the guest prompt: the
vibebox commands are defined by the guest image, and a new one would make every image outdated.
"""

from __future__ import annotations

from textual import on, work

from vibebox_tui import messages as msg
from vibebox_tui.backend.base import Attachment
from vibebox_tui.safe import guest_lines
from vibebox_tui.session_actions import SessionActionsApp
from vibebox_tui.terminal import TerminalView
from vibebox_tui.widgets.tabs import MAX_TABS, TerminalTabs

#: The tab actions (keys outside the terminal; the palette lists them too).
TAB_ACTIONS = {"new_tab", "close_tab", "next_tab", "previous_tab", "select_tab"}


class TabActionsApp(SessionActionsApp):
    """Base of :class:`~vibebox_tui.app.VibeboxApp`: the terminal's tabs."""

    def _tabs_ready(self) -> Attachment | None:
        """The attachment when its terminal is on screen; else says why not and None."""
        if self.attachment is None or self.centre.current != "terminal":
            self.notify("No session attached: tabs open once its terminal is up.", markup=False)
            return None
        return self.attachment

    def _others_live(self, view: TerminalView) -> bool:
        """Another tab's shell still runs."""
        return any(v is not view and v.disconnect_reason is None for v in self.tabs.views)

    def _show_tab(self, index: int) -> None:
        self.tabs.select(index)
        if self.screen is self.screen_stack[0]:
            self.tabs.active.focus()

    # -- actions ---------------------------------------------------------------------------

    def action_new_tab(self) -> None:
        attachment = self._tabs_ready()
        if attachment is None:
            return
        if self.tabs.count >= MAX_TABS:
            self.notify(f"At most {MAX_TABS} tabs; close one first (w).", severity="warning")
            return
        self._open_tab(attachment)

    @work(exit_on_error=False, group="tab-open")
    async def _open_tab(self, attachment: Attachment) -> None:
        columns, lines = self.tabs.new_tab_size()
        try:
            stream = await attachment.open_terminal(columns, lines)
        except Exception as exc:
            self.post_message(msg.Failed("Opening a tab", exc, dialog=False))
            return
        if attachment is not self.attachment or self.tabs.count >= MAX_TABS:
            await attachment.close_terminal(stream)  # detached meanwhile, or tabs are full
            return
        view = self.tabs.new_view()
        view.attach(stream)
        await self.tabs.add(view)
        if self.screen is self.screen_stack[0]:
            view.focus()

    def action_close_tab(self) -> None:
        if self._tabs_ready() is not None:
            self.run_worker(self._close_tab(self.tabs.active, focus=True), group="tab-close")

    async def _close_tab(self, view: TerminalView, *, focus: bool) -> None:
        attachment = self.attachment
        stream = view.stream
        if self.tabs.index_of(view) is None:
            return  # closed already
        if self.tabs.count == 1:
            # The last tab: its shell ends, the terminal says so and Enter reconnects, as when
            # the shell exits by itself.
            if stream is not None and attachment is not None and view.disconnect_reason is None:
                await attachment.close_terminal(stream)
            return
        await self.tabs.remove_tab(view)
        if focus and self.screen is self.screen_stack[0]:
            self.tabs.active.focus()
        if stream is not None and attachment is not None:
            try:
                await attachment.close_terminal(stream)
            except Exception as exc:
                self.post_message(msg.Failed("Closing a tab", exc, dialog=False))

    def action_next_tab(self) -> None:
        if self._tabs_ready() is not None:
            self._show_tab((self.tabs.active_index + 1) % self.tabs.count)

    def action_previous_tab(self) -> None:
        if self._tabs_ready() is not None:
            self._show_tab((self.tabs.active_index - 1) % self.tabs.count)

    def action_select_tab(self, number: int) -> None:
        """Show tab ``number`` (1-based, as the tab bar and the keys count)."""
        if self._tabs_ready() is None:
            return
        if not 1 <= number <= self.tabs.count:
            self.notify(f"There is no tab {number}.", severity="warning")
            return
        self._show_tab(number - 1)

    # -- what the tabs say -----------------------------------------------------------------

    @on(TerminalTabs.Switched)
    def _tab_switched(self, message: TerminalTabs.Switched) -> None:
        view = message.terminal
        # The guest's window title belongs to the shell on screen (none once detached).
        self.header.title = view.title if view.stream is not None else ""

    @on(TerminalView.TitleChanged)
    def _title_changed(self, message: TerminalView.TitleChanged) -> None:
        if message.terminal is self.tabs.active:
            self.header.title = message.title

    @on(TerminalView.Disconnected)
    def _disconnected(self, message: TerminalView.Disconnected) -> None:
        view = message.terminal
        index = self.tabs.index_of(view)
        if index is None:
            return
        if self._others_live(view):
            self.notify(
                f"Tab {index + 1} closed: {guest_lines(message.reason)}.", timeout=6, markup=False
            )
            self.run_worker(self._close_tab(view, focus=view.has_focus), group="tab-close")
            return
        self.notify(
            f"{guest_lines(message.reason)}. Press Enter in the terminal to reconnect.",
            timeout=6,
            markup=False,
        )

    @on(TerminalView.ReconnectRequested)
    def _reconnect(self, message: TerminalView.ReconnectRequested) -> None:
        if self._others_live(message.terminal):
            return  # an ended tab that is closing; the others still run
        if self.directory is not None:
            self.attach_directory(self.directory, startup=False)
