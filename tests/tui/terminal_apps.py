"""Minimal apps around a :class:`TerminalView` for Pilot tests, and what the terminal shows."""

from __future__ import annotations

import contextlib
from typing import Any

from data.keytable import GROUPS, KeyCase
from textual.app import App, ComposeResult
from textual.widgets import Button

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import TerminalView
from vibebox_tui.terminal.input import Chunk, HostInput


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


# -- the key table (tests/data/keytable.py) ----------------------------------------------------


async def in_key_group(pilot: Any, stream: MemoryStream, term: TerminalView, group: str) -> None:
    """The guest puts the terminal in ``group``'s modes; back once it shows its prompt."""
    stream.feed(b"".join(b"%d\r\n" % i for i in range(40)) + GROUPS[group].encode() + b"$ ")
    while not screen_text(term).rstrip().endswith("$"):
        await pilot.pause()


async def written_after(stream: MemoryStream, before: int, expected: bytes) -> bytes:
    """What the terminal wrote after the first ``before`` bytes, once as long as ``expected``
    (or after 2 s)."""
    with contextlib.suppress(TimeoutError):  # fewer bytes came: the comparison says so
        await stream.wait_for(lambda: len(stream.written) - before >= len(expected), timeout=2)
    return bytes(stream.written[before:])


def raw_chunks(case: KeyCase) -> list[Chunk]:
    """The chunks the dashboard's driver gives the terminal for ``case``'s host bytes."""
    host = HostInput()
    return [c for c in host.feed(case.host_bytes, True) + host.flush() if c[0] != "app"]


class KeyApp(TermApp, inherit_bindings=False):
    """No app bindings (ctrl+q, ctrl+c, ctrl+p): every key is the terminal's to encode."""

    ENABLE_COMMAND_PALETTE = False
