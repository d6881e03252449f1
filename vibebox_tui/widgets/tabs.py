"""The terminal region: several terminals into the attached session, one per tab.

Each tab is a :class:`~vibebox_tui.terminal.TerminalView` of its own: its own PTY (opened by the
app through :meth:`~vibebox_tui.backend.base.Attachment.open_terminal`), its own emulator, so
its own scrollback and modes. One is shown at a time; the others keep reading their streams in
the background. A tab that is not shown has no size of its own (Textual lays out only what is
displayed), so :class:`TerminalTabs` gives it the shown one's size whenever that changes: every
PTY follows the window.

The tab bar is a line above the terminals, shown from the second tab on (with one tab the
dashboard looks as it always did). Its labels are the guest's window titles, escaped
(:mod:`vibebox_tui.safe`): the guest chooses them.

What a tab does (open, close, switch) is decided by the app; this widget only holds and shows
them, and says which one is on screen (:class:`TerminalTabs.Switched`).
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget

from vibebox_tui.safe import clean
from vibebox_tui.terminal import TerminalView

#: Most tabs in one session (``1`` .. ``9`` pick them).
MAX_TABS = 9
#: Most characters of a guest title in a tab's label.
LABEL_LIMIT = 24
#: A tab's label before its program set a title.
UNTITLED = "shell"


class TabBar(Widget):
    """`` 1 vim  2 bash `` -- the tabs' numbers and titles, the shown one highlighted."""

    DEFAULT_CSS = """
    TabBar {
        height: 1;
        width: 100%;
        background: $panel;
        color: $text-muted;
    }
    """

    class Selected(Message):
        """A tab's label was clicked."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.labels: list[str] = []
        self.active = 0
        self._spans: list[tuple[int, int]] = []

    def show_tabs(self, labels: list[str], active: int) -> None:
        self.labels, self.active = labels, active
        self.refresh()

    def render(self) -> Text:
        text = Text()
        spans: list[tuple[int, int]] = []
        for index, label in enumerate(self.labels):
            start = text.cell_len
            shown = index == self.active
            # The title is the guest's: escaped, never markup.
            text.append(f" {index + 1} ", style="bold reverse" if shown else "bold")
            text.append(
                f" {clean(label or UNTITLED, LABEL_LIMIT)} ", style="reverse" if shown else ""
            )
            spans.append((start, text.cell_len))
            text.append(" ")
        self._spans = spans
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text

    def on_click(self, event: events.Click) -> None:
        for index, (start, end) in enumerate(self._spans):
            if start <= event.x < end:
                self.post_message(self.Selected(index))
                return


class TerminalTabs(Vertical):
    """The terminals of the attached session, one shown; always at least one (the first)."""

    DEFAULT_CSS = """
    TerminalTabs {
        width: 100%;
        height: 100%;
    }
    """

    class Switched(Message):
        """Another tab is on screen (opened, picked, or the shown one closed)."""

        def __init__(self, terminal: TerminalView) -> None:
            super().__init__()
            self.terminal = terminal

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bar = TabBar(id="tab-bar")
        self.views: list[TerminalView] = [TerminalView(id="tab-1")]
        self._active = 0
        self._next = 2

    def compose(self) -> ComposeResult:
        yield self.bar
        yield self.views[0]

    def on_mount(self) -> None:
        self.bar.display = False

    # -- what is there -------------------------------------------------------------------

    @property
    def active(self) -> TerminalView:
        """The terminal on screen."""
        return self.views[self._active]

    @property
    def active_index(self) -> int:
        return self._active

    @property
    def count(self) -> int:
        return len(self.views)

    def index_of(self, view: TerminalView) -> int | None:
        return self.views.index(view) if view in self.views else None

    def new_tab_size(self) -> tuple[int, int]:
        """The size a new tab will have: the shown one's, less the bar when it appears."""
        screen = self.active.emulator.screen
        lines = screen.lines - 1 if self.count == 1 else screen.lines
        return screen.columns, max(1, lines)

    # -- changing them -------------------------------------------------------------------

    async def add(self, view: TerminalView) -> None:
        """Add ``view`` (its stream attached, not mounted yet) as the last tab and show it."""
        columns, lines = self.new_tab_size()
        view.emulator.resize(columns, lines)  # its first frame has the right size already
        for other in self.views:  # the bar may have just taken a row from all of them
            await other.resize_to(columns, lines)
        self.views.append(view)
        await self.mount(view)
        self.select(len(self.views) - 1)

    def new_view(self) -> TerminalView:
        """A terminal for the next tab (give it to :meth:`add`)."""
        view = TerminalView(id=f"tab-{self._next}")
        self._next += 1
        return view

    def select(self, index: int) -> None:
        """Show tab ``index`` (0-based); posts :class:`Switched`."""
        index = max(0, min(index, len(self.views) - 1))
        self._active = index
        for position, view in enumerate(self.views):
            view.display = position == index
        self.refresh_bar()
        self.post_message(self.Switched(self.active))
        # Once the layout has settled: a tab hidden now may have taken a size meanwhile (a
        # resize it handled while ``add`` waited) that the shown one never reports again.
        self.call_after_refresh(self._follow_shown)

    async def remove_tab(self, view: TerminalView) -> None:
        """Take ``view`` out (its stream detached, not closed: the caller closes it). The last
        tab stays: there is always one terminal to show."""
        index = self.index_of(view)
        if index is None or len(self.views) == 1:
            return
        view.detach()
        del self.views[index]
        await view.remove()
        if index < self._active or self._active >= len(self.views):
            self._active = max(0, self._active - 1)
        self.select(self._active)

    async def reset(self) -> None:
        """Back to one tab with nothing attached (every stream detached, none closed)."""
        for view in self.views[1:]:
            view.detach()
            await view.remove()
        del self.views[1:]
        self.views[0].detach()
        self.select(0)

    def refresh_bar(self) -> None:
        self.bar.display = len(self.views) > 1
        self.bar.show_tabs([view.title for view in self.views], self._active)

    # -- following the tabs --------------------------------------------------------------

    def on_terminal_view_title_changed(self, message: TerminalView.TitleChanged) -> None:
        self.refresh_bar()  # the app shows the shown tab's title in the header too

    async def on_terminal_view_resized(self, message: TerminalView.Resized) -> None:
        message.stop()
        if message.terminal is self.active:
            await self._follow_shown()

    async def _follow_shown(self) -> None:
        """Give every tab in the background the shown one's size (and tell their PTYs)."""
        screen = self.active.emulator.screen
        for view in self.views:
            if view is not self.active:
                await view.resize_to(screen.columns, screen.lines)

    def on_tab_bar_selected(self, message: TabBar.Selected) -> None:
        message.stop()
        self.select(message.index)
