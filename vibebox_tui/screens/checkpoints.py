"""The checkpoints of the attached session: pick one to restore or remove, or save a new one.

The dialog only chooses: it dismisses with a :class:`CheckpointChoice` (or None) and the app
asks for confirmation and does the work (``vibebox_tui/session_actions.py``). Checkpoint names
are read back from the disk file, so they are drawn escaped and never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from vibebox_tui.backend.base import CheckpointList
from vibebox_tui.safe import clean, guest_text


@dataclass(frozen=True)
class CheckpointChoice:
    """What the user picked: ``save`` a new checkpoint, ``restore`` or ``remove`` ``name``."""

    action: Literal["save", "restore", "remove"]
    name: str = ""


class CheckpointsScreen(ModalScreen[CheckpointChoice | None]):
    """The session's checkpoints, oldest first, each with its time and size.

    Keys: Enter or ``r`` restores the highlighted one (the app asks first), ``d``/Delete removes
    it (asks first), ``s`` saves a new one, Escape closes.
    """

    DEFAULT_CSS = """
    CheckpointsScreen {
        align: center middle;
        background: $background 60%;
    }
    CheckpointsScreen > #dialog {
        width: 76;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $surface;
        padding: 1 2;
    }
    CheckpointsScreen #title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    CheckpointsScreen OptionList {
        height: auto;
        max-height: 14;
        margin-bottom: 1;
    }
    CheckpointsScreen #note {
        color: $text-muted;
        width: 100%;
        margin-bottom: 1;
    }
    CheckpointsScreen #buttons {
        height: auto;
        width: 100%;
        align-horizontal: right;
    }
    CheckpointsScreen Button {
        margin-left: 2;
    }
    """

    BINDINGS = [
        Binding("r", "choose('restore')", "Restore"),
        Binding("d,delete", "choose('remove')", "Remove"),
        Binding("s", "save", "Save new"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, directory: Path, checkpoints: CheckpointList) -> None:
        super().__init__()
        self.directory = directory
        self.checkpoints = checkpoints

    def compose(self) -> ComposeResult:
        rows = self.checkpoints.rows
        with Vertical(id="dialog"):
            yield Label(
                f"Checkpoints of {clean(self.directory.name, 60)}", id="title", markup=False
            )
            if rows:
                width = max(len(clean(row.name, 40)) for row in rows)
                yield OptionList(
                    *(
                        Option(
                            guest_text(row.name, limit=40)
                            + Text(" " * (width - len(clean(row.name, 40))))
                            + Text(f"  {row.created:%Y-%m-%d %H:%M} UTC  {row.size:>9}"),
                            id=f"c{index}",
                        )
                        for index, row in enumerate(rows)
                    ),
                    id="list",
                )
            else:
                yield Static("No checkpoints yet: s saves one now.", id="empty", markup=False)
            yield Static(
                "Enter/r restore · d remove · s save a new one · Esc close\n"
                f"The disk file takes {self.checkpoints.disk_usage} on the host, checkpoints "
                "included; checkpoints share data, so their sizes do not add up. They hold the "
                "guest's disk only: project files live on the host.",
                id="note",
                markup=False,
            )
            with Horizontal(id="buttons"):
                yield Button("Close", id="close")
                yield Button("Save new (s)", id="save", variant="primary")

    def on_mount(self) -> None:
        if self.checkpoints.rows:
            self.query_one(OptionList).focus()
        else:
            self.query_one("#close", Button).focus()

    def _highlighted(self) -> str | None:
        if not self.checkpoints.rows:
            return None
        index = self.query_one(OptionList).highlighted
        return None if index is None else self.checkpoints.rows[index].name

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(CheckpointChoice("restore", self.checkpoints.rows[event.option_index].name))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(CheckpointChoice("save") if event.button.id == "save" else None)

    def action_choose(self, action: Literal["restore", "remove"]) -> None:
        name = self._highlighted()
        if name is not None:
            self.dismiss(CheckpointChoice(action, name))

    def action_save(self) -> None:
        self.dismiss(CheckpointChoice("save"))

    def action_close(self) -> None:
        self.dismiss(None)
