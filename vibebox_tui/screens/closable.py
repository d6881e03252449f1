"""A modal dialog that only informs: a Close button (focused) and the ``close`` action."""

from __future__ import annotations

from textual.screen import ModalScreen
from textual.widgets import Button


class InfoDialog(ModalScreen[None]):
    """Base for dialogs with a single ``#close`` button; subclasses compose the content."""

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
