"""The top line: project, session id and its state (no clock, so snapshots stay stable)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vibebox_tui.safe import clean
from vibebox_tui.widgets.states import state_style, state_symbol

#: Most characters of the guest-set window title shown.
TITLE_LIMIT = 200


class SessionHeader(Widget):
    """``vibebox │ project │ session 019bf290 │ ● running``.

    The project name and the title are guest-derived (the guest sets the title with OSC 0/2;
    the directory name comes from the project): both are drawn escaped, never as markup.
    """

    project: reactive[str] = reactive("")
    session_id: reactive[str] = reactive("")
    #: How the session list shows the id (a longer prefix when another id shares 8 digits).
    short_id: reactive[str] = reactive("")
    state: reactive[str] = reactive("")
    title: reactive[str] = reactive("")

    def render(self) -> Text:
        text = Text(" vibebox ", style="bold")
        sep = (" │ ", "dim")
        if self.project:
            text.append_text(Text.assemble(sep, ("project ", "dim"), (clean(self.project), "bold")))
        else:
            text.append_text(Text.assemble(sep, ("no project", "dim")))
        if self.session_id:
            short = self.short_id or self.session_id[:8]
            text.append_text(Text.assemble(sep, ("session ", "dim"), clean(short)))
        if self.state:
            text.append_text(
                Text.assemble(
                    sep,
                    (f"{state_symbol(self.state)} {clean(self.state)}", state_style(self.state)),
                )
            )
        if self.title:
            text.append_text(Text.assemble(sep, (clean(self.title, TITLE_LIMIT), "italic dim")))
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text
