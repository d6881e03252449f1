"""A yes/no question that blocks everything else until answered.

A destructive answer never comes from keys typed before the question was on screen: the
confirm button (and ``y``) only work once the dialog has been shown for :attr:`ConfirmScreen.
ARM_SECONDS`; until then the button is disabled and ``y`` is ignored. A guest can make the
dashboard ask (its shell runs ``:new``), and a user typing fast, or a paste such as
``:new⏎y``, must not answer a question they have not seen. The safe answer (Cancel, ``n``,
Escape) works at once and has the focus, so Enter alone never destroys anything.

Everything in the question that the project chose (its directory, the diff of
``vibebox.toml``) is escaped with :func:`~vibebox_core.sanitize.clean` and drawn without markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from vibebox_core.session.steer import HostChange
from vibebox_tui.backend.base import SessionRow
from vibebox_tui.safe import clean


class ConfirmScreen(ModalScreen[bool]):
    """Ask one question; dismisses with True (confirmed) or False.

    The safe answer has the focus, so Enter alone never destroys anything; ``n`` and Escape
    cancel at once; ``y`` and the confirm button work only after :attr:`ARM_SECONDS` (see the
    module docstring). ``title`` and ``body`` are shown as plain text, never as markup.
    """

    #: Seconds the dialog must have been on screen before the destructive answer counts.
    ARM_SECONDS = 0.6

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
        self.armed = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title", markup=False)
            yield Static(self.body_text, id="body", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, variant="error", id="confirm", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        if self.ARM_SECONDS > 0:
            self.set_timer(self.ARM_SECONDS, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        self.armed = True
        button = self.query_one("#confirm", Button)
        button.disabled = False
        button.label = f"{self.confirm_label} (y)"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        confirmed = event.button.id == "confirm"
        if confirmed and not self.armed:
            return
        self.dismiss(confirmed)

    def action_answer(self, answer: bool) -> None:
        if answer and not self.armed:
            return  # typed before the question could be read: ignored
        self.dismiss(answer)


def confirm_delete(session: SessionRow) -> ConfirmScreen:
    """Ask before deleting ``session`` (browser ``d``)."""
    return ConfirmScreen(
        "Delete this session?",
        f"Session {clean(session.short_id, 40)} of {clean(session.directory)}\n\n"
        "The VM is stopped and removed together with its disk (.vibebox/). "
        "The project files and vibebox.toml stay.",
    )


def confirm_recreate(session: SessionRow, directory: Path) -> ConfirmScreen:
    """Ask before ``:new`` replaces ``session`` with a fresh one."""
    return ConfirmScreen(
        "Start a fresh session?",
        f"Session {clean(session.short_id, 40)} of {clean(directory)}\n\n"
        "Its VM and disk are deleted and a fresh session starts in the same directory. "
        "Project files and vibebox.toml stay.",
        confirm_label="Recreate",
    )


def confirm_restore(name: str, directory: Path, *, running: bool) -> ConfirmScreen:
    """Ask before the guest's disk goes back to checkpoint ``name``."""
    vm = (
        "The VM is shut down, restored and started again; this terminal reconnects.\n\n"
        if running
        else "The VM is off; it starts from the checkpoint next time.\n\n"
    )
    return ConfirmScreen(
        "Restore this checkpoint?",
        f"Checkpoint {clean(name, 40)} of {clean(directory)}\n\n"
        "The guest's disk goes back to it: what the guest wrote to its disk since then is "
        f"lost. {vm}Project files on the host are not touched (they are not on the guest's "
        "disk).",
        confirm_label="Restore",
    )


def confirm_remove_checkpoint(name: str, directory: Path) -> ConfirmScreen:
    """Ask before removing checkpoint ``name``."""
    return ConfirmScreen(
        "Remove this checkpoint?",
        f"Checkpoint {clean(name, 40)} of {clean(directory)}\n\n"
        "It can no longer be restored. The guest's current disk and the project files stay.",
        confirm_label="Remove",
    )


def confirm_approval(directory: Path, diff: Sequence[str], *, first: bool = False) -> ConfirmScreen:
    """Ask before starting with settings that changed since the last approval, or (``first``)
    with a never approved file that asks for more than the defaults.

    Each diff line is escaped on its own, so a line cannot hide itself or another one
    (``\\r``, ``ESC [2K``, bidi overrides and markup all show as written).
    """
    lines = "\n".join(f"  {clean(line)}" for line in diff)
    if first:
        what = (
            f"vibebox.toml in {clean(directory)} asks for more than the defaults and was never "
            "approved for this project. It may come from a cloned repository, or a program in "
            f"the VM may have written it:\n\n{lines}\n\n"
        )
    else:
        what = (
            f"vibebox.toml in {clean(directory)} changed the session's mounts, network or "
            "resources since you last approved them. The project folder is writable from "
            f"inside the VM, so a program there may have made this change:\n\n{lines}\n\n"
        )
    return ConfirmScreen(
        "Approve the changed settings?",
        what + "Start the session with these settings?",
        confirm_label="Approve",
    )


def confirm_steer(change: HostChange, directory: Path) -> ConfirmScreen:
    """Ask before allowing or blocking a host from the inspector (``a``/``b`` on an entry).

    The question is one line (``Allow api.example.com? removes blocklist entry example.com
    (unblocks example.com and all its subdomains)``); the answer is the approval.
    """
    verb = "Allow" if change.action == "allow" else "Block"
    return ConfirmScreen(
        f"{verb} this host?",
        f"{clean(change.proposal(), 400)}\n\n"
        f"Your answer is the approval for {clean(directory)}: vibebox.toml (comments kept) and "
        "the approved settings both change, and a running session applies it at once.\n"
        "[y] yes  [n] no",
        confirm_label=verb,
    )
