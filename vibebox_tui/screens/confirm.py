"""A yes/no question that blocks everything else until answered."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from vibebox_tui.backend import SessionStatus


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


def confirm_delete(session: SessionStatus) -> ConfirmScreen:
    """Ask before deleting ``session`` (browser ``d``)."""
    return ConfirmScreen(
        "Delete this session?",
        f"Session {session.short_id} of {session.directory}\n\n"
        "The VM is stopped and removed together with its disk (.vibebox/). "
        "The project files and vibebox.toml stay.",
    )


def confirm_recreate(session: SessionStatus, directory: Path) -> ConfirmScreen:
    """Ask before ``:new`` replaces ``session`` with a fresh one."""
    return ConfirmScreen(
        "Start a fresh session?",
        f"Session {session.short_id} of {directory}\n\n"
        "Its VM and disk are deleted and a fresh session starts in the same directory. "
        "Project files and vibebox.toml stay.",
        confirm_label="Recreate",
    )


def confirm_approval(directory: Path, diff: Sequence[str]) -> ConfirmScreen:
    """Ask before starting with mounts or network that changed since the last approval."""
    lines = "\n".join(f"  {line}" for line in diff)
    return ConfirmScreen(
        "Approve the changed settings?",
        f"vibebox.toml in {directory} changed the session's mounts or network since you "
        "last approved them. The project folder is writable from inside the VM, so a "
        f"program there may have made this change:\n\n{lines}\n\n"
        "Start the session with these settings?",
        confirm_label="Approve",
    )
