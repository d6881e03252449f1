"""Minimal apps around a :class:`TerminalView` for Pilot tests, and what the terminal shows."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Button

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import TerminalView


class TermApp(App[None]):
    """A terminal on ``stream``, focused, beside a button; it records the terminal's messages."""

    def __init__(self, stream: MemoryStream) -> None:
        super().__init__()
        self.stream = stream
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        yield TerminalView(self.stream, id="term")
        yield Button("other", id="other")

    def on_mount(self) -> None:
        self.query_one(TerminalView).focus()

    def on_terminal_view_title_changed(self, message: TerminalView.TitleChanged) -> None:
        self.messages.append(("title", message.title))

    def on_terminal_view_vibebox_command(self, message: TerminalView.VibeboxCommand) -> None:
        self.messages.append(("command", message.name))

    def on_terminal_view_disconnected(self, message: TerminalView.Disconnected) -> None:
        self.messages.append(("disconnected", message.reason))

    def on_terminal_view_reconnect_requested(
        self, message: TerminalView.ReconnectRequested
    ) -> None:
        self.messages.append(("reconnect",))


def screen_text(term: TerminalView) -> str:
    return "\n".join(term.emulator.screen.display)


def rendered_row(term: TerminalView, y: int) -> str:
    return term.render_line(y).text


class KeyApp(TermApp, inherit_bindings=False):
    """No app bindings (ctrl+q, ctrl+c, ctrl+p): every key is the terminal's to encode."""

    ENABLE_COMMAND_PALETTE = False
