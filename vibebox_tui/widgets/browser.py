"""The session browser: every session in the index with its live state.

Entries are rebuilt only when the list really changed, and the highlighted session is kept
across rebuilds, so the 1 s poll never moves the cursor under the user's fingers. A broken
session is an ordinary entry with its reason, never an exception.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from vibebox_tui.backend.base import SessionRow
from vibebox_tui.safe import clean
from vibebox_tui.widgets.states import state_style, state_symbol

EMPTY_ID = "-empty-"


def format_last_active(when: datetime | None) -> str:
    """Local time, minute precision (no 'x minutes ago': that needs a clock)."""
    if when is None:
        return "never"
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def short_directory(directory: Path) -> str:
    """The directory with the home directory written as ``~``."""
    try:
        return "~/" + str(directory.relative_to(Path.home()))
    except ValueError:
        return str(directory)


def clip(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` cells (the end of a path matters most)."""
    if len(text) <= width or width < 4:
        return text
    return "…" + text[-(width - 1) :]


def session_prompt(session: SessionRow, *, current: bool, width: int = 30) -> Text:
    """The lines of one entry (name, directory and reason escaped: the project chose them)."""
    marker = "▶ " if current else "  "
    text = Text.assemble(
        (marker, "bold"),
        (state_symbol(session.state) + " ", state_style(session.state)),
        (clean(session.name, 120), "bold"),
    )
    text.append(f"\n  {clip(clean(short_directory(session.directory)), width - 2)}", style="dim")
    text.append("\n  ")
    text.append(clean(session.short_id, 40), style="cyan")
    text.append("  ")
    text.append(clean(session.state, 40), style=state_style(session.state))
    if session.state == "running" or session.attached:
        attached = "?" if session.attached is None else str(session.attached)
        text.append(f" · {attached} att." if width >= 28 else f" ·{attached}", style="dim")
    text.append(f"\n  {format_last_active(session.last_active)}", style="dim")
    if session.reason:
        text.append(f"\n  {clean(session.reason)}", style="red")
    return text


class SessionBrowser(OptionList):
    """Keyboard list of sessions; Enter attaches, ``d``/Delete asks to delete."""

    BINDINGS = [
        Binding("enter", "select", "Attach"),
        Binding("d", "delete_session", "Delete"),
        Binding("delete", "delete_session", "Delete", show=False),
    ]

    class AttachRequested(Message):
        """The user picked a session to attach the terminal to."""

        def __init__(self, session: SessionRow) -> None:
            super().__init__()
            self.session = session

    class DeleteRequested(Message):
        """The user asked to delete a session (not yet confirmed)."""

        def __init__(self, session: SessionRow) -> None:
            super().__init__()
            self.session = session

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sessions: list[SessionRow] = []
        self.current_id: str | None = None
        self._shown: tuple[tuple[SessionRow, ...], str | None] | None = None

    def on_mount(self) -> None:
        self.border_title = "Sessions"
        self.show_sessions([])

    def on_resize(self) -> None:
        # Paths are clipped to the width: redraw them for the new one.
        self._shown = None
        self.show_sessions(self.sessions, self.current_id)

    def show_sessions(self, sessions: list[SessionRow], current_id: str | None = None) -> None:
        """Redraw with ``sessions``; ``current_id`` is the one the terminal shows."""
        key = (tuple(sessions), current_id)
        if key == self._shown:
            return
        self._shown = key
        highlighted = self.selected_session
        keep = highlighted.id if highlighted else current_id
        self.sessions = list(sessions)
        self.current_id = current_id
        self.clear_options()
        if not sessions:
            self.add_option(
                Option(
                    Text(
                        "No sessions yet.\nRun `vibebox` in a project directory to make one.",
                        style="dim italic",
                    ),
                    id=EMPTY_ID,
                    disabled=True,
                )
            )
            self.border_subtitle = "0"
            return
        width = self.scrollable_content_region.width or 30
        options: list[Option | None] = []
        for session in sessions:
            options.append(
                Option(
                    session_prompt(session, current=session.id == current_id, width=width),
                    id=session.id,
                )
            )
        self.add_options(options)
        self.border_subtitle = str(len(sessions))
        index = next((i for i, s in enumerate(sessions) if s.id == keep), 0)
        self.highlighted = index

    @property
    def selected_session(self) -> SessionRow | None:
        """The highlighted session, if any."""
        if self.highlighted is None or not self.sessions:
            return None
        option = self.get_option_at_index(self.highlighted)
        return next((s for s in self.sessions if s.id == option.id), None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        session = next((s for s in self.sessions if s.id == event.option.id), None)
        if session is not None:
            self.post_message(self.AttachRequested(session))

    def action_delete_session(self) -> None:
        session = self.selected_session
        if session is not None:
            self.post_message(self.DeleteRequested(session))
