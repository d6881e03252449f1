"""The list of vibebox commands (typed at the guest prompt) and the dashboard's keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from vibebox_tui.screens.closable import InfoDialog

#: Every vibebox command with what it does; the guest's shell integration defines the same names.
VIBEBOX_COMMANDS: tuple[tuple[str, str], ...] = (
    (":new", "Delete this session and start a fresh one (asks first; the project stays)."),
    (":exit", "Leave vibebox. The VM stays up for the grace period, then shuts down."),
    (":explain", "Show the inspector: mounts, network policy, secrets, storage, VM state."),
    (":help", "Show this list."),
)

#: Dashboard keys shown under the commands (the terminal itself gets every other key).
DASHBOARD_KEYS: tuple[tuple[str, str], ...] = (
    ("ctrl+\\", "Leave the terminal; the letter keys below then work (t goes back)"),
    ("ctrl+p", "Command palette: every dashboard action"),
    ("tab / shift+tab", "Move focus between sessions, terminal and inspector"),
    ("enter", "In the session list: attach the terminal to the session (starts it)"),
    ("d / delete", "In the session list: delete the session (asks first)"),
    ("i", "Show or hide the inspector"),
    ("up / down, j / k", "In the inspector (tab to it): select a recent network entry"),
    (
        "a / b",
        "In the inspector: allow / block the selected entry's host (asks first; your answer is "
        "the approval, written to vibebox.toml and applied to the running session at once)",
    ),
    ("n", "Recreate this session, like :new (asks first)"),
    ("s / t", "Go to the session list / the terminal"),
    ("o", "New tab: another shell into this session, in a PTY of its own (up to 9)"),
    ("w", "Close the shown tab (its shell ends; the last one disconnects, Enter reconnects)"),
    ("1-9 / [ / ]", "Go to tab N / the previous / the next tab (the keyboard goes with it)"),
    (
        "ctrl+o",
        "While a VM boots: show or hide the console log (what you type is kept for the shell)",
    ),
    ("? / f1", "This help"),
    ("q / ctrl+q", "Leave vibebox; the VM stays up for the grace period"),
)


class HelpScreen(InfoDialog):
    """Lists the vibebox commands, each with a description."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > #dialog {
        width: 84;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 2;
    }
    HelpScreen .heading {
        text-style: bold;
        color: $text-primary;
        margin-top: 1;
    }
    HelpScreen .row {
        height: auto;
    }
    HelpScreen .name {
        width: 11;
        text-style: bold;
    }
    HelpScreen .key .name {
        width: 17;
    }
    HelpScreen .text {
        width: 1fr;
    }
    HelpScreen #close {
        margin-top: 1;
        margin-bottom: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            with VerticalScroll():
                yield Label("vibebox commands (type them at the guest prompt)", classes="heading")
                for name, text in VIBEBOX_COMMANDS:
                    with Horizontal(classes="row"):
                        yield Static(name, classes="name command", markup=False)
                        yield Static(text, classes="text", markup=False)
                yield Label("Dashboard keys", classes="heading")
                for key, text in DASHBOARD_KEYS:
                    # Two columns, so a long description wraps under itself, not under the key.
                    with Horizontal(classes="row key"):
                        yield Static(key, classes="name", markup=False)
                        yield Static(text, classes="text", markup=False)
            yield Button("Close", variant="primary", id="close")
