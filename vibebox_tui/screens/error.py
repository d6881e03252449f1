"""A failure, told as a message and the next step to take (never a traceback)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from vibebox_core.errors import VibeboxError
from vibebox_tui.safe import clean, guest_lines
from vibebox_tui.screens.closable import InfoDialog

BUG_HINT = (
    "This is a bug in vibebox. Please report it with the message above and the logs in "
    ".vibebox/ (supervisor.log, console.log)."
)


def describe_error(error: BaseException) -> tuple[str, str]:
    """The message and the hint to show for ``error``."""
    if isinstance(error, VibeboxError):
        return error.message, error.hint
    text = str(error) or type(error).__name__
    return f"Unexpected error ({type(error).__name__}): {text}", BUG_HINT


class ErrorScreen(InfoDialog):
    """Shows what went wrong and what to do next; Enter or Escape closes it."""

    DEFAULT_CSS = """
    ErrorScreen {
        align: center middle;
        background: $background 60%;
    }
    ErrorScreen > #dialog {
        width: 72;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $error;
        background: $surface;
        padding: 1 2;
    }
    ErrorScreen #title {
        color: $text-error;
        text-style: bold;
        margin-bottom: 1;
    }
    ErrorScreen #message {
        margin-bottom: 1;
    }
    ErrorScreen #hint {
        color: $text-muted;
        margin-bottom: 1;
    }
    ErrorScreen #buttons {
        height: auto;
        align-horizontal: right;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.hint = hint

    @classmethod
    def for_error(cls, title: str, error: BaseException) -> ErrorScreen:
        message, hint = describe_error(error)
        return cls(title, message, hint)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Messages embed paths, names and guest output: escaped, and never markup.
            yield Label(clean(self.title_text), id="title", markup=False)
            yield Static(guest_lines(self.message), id="message", markup=False)
            if self.hint:
                yield Static(f"Next step: {guest_lines(self.hint)}", id="hint", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Close", variant="primary", id="close")
