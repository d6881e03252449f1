"""The top line: project, session id and its state (no clock, so snapshots stay stable)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vibebox_tui.widgets.states import state_style, state_symbol


class SessionHeader(Widget):
    """``vibebox │ project │ session 019bf290 │ ● running``."""

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
            text.append_text(Text.assemble(sep, ("project ", "dim"), (self.project, "bold")))
        else:
            text.append_text(Text.assemble(sep, ("no project", "dim")))
        if self.session_id:
            short = self.short_id or self.session_id[:8]
            text.append_text(Text.assemble(sep, ("session ", "dim"), short))
        if self.state:
            text.append_text(
                Text.assemble(
                    sep, (f"{state_symbol(self.state)} {self.state}", state_style(self.state))
                )
            )
        if self.title:
            text.append_text(Text.assemble(sep, (self.title, "italic dim")))
        text.truncate(max(1, self.size.width), overflow="ellipsis")
        return text
