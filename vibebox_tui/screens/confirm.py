"""A yes/no question that blocks everything else until answered."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask one question; dismisses with True (confirmed) or False.

    The safe answer has the focus, so Enter alone never destroys anything; ``y`` and ``n``
    answer directly, Escape cancels.
    """

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > #dialog {
        width: 64;
        max-width: 90%;
        height: auto;
        border: round $error;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen #title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    ConfirmScreen #body {
        width: 100%;
        margin-bottom: 1;
    }
    ConfirmScreen #buttons {
        height: auto;
        width: 100%;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, body: str, *, confirm_label: str = "Delete") -> None:
        super().__init__()
        self.title_text = title
        self.body_text = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            yield Static(self.body_text, id="body")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(f"{self.confirm_label} (y)", variant="error", id="confirm")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
