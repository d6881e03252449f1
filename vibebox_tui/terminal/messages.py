"""Messages a :class:`~vibebox_tui.terminal.widget.TerminalView` posts.

They are reachable as ``TerminalView.TitleChanged`` etc. and handled as
``on_terminal_view_title_changed`` etc. (the ``terminal_view`` namespace), as if nested in the
widget; ``message.control`` is the terminal that posted them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from vibebox_tui.terminal.widget import TerminalView


class TerminalMessage(Message):
    """Base of the terminal's messages."""

    def __init__(self, terminal: TerminalView) -> None:
        super().__init__()
        self.terminal = terminal

    @property
    def control(self) -> TerminalView:
        return self.terminal


class TitleChanged(TerminalMessage, namespace="terminal_view"):
    """The program set the window title (OSC 0 or 2)."""

    def __init__(self, terminal: TerminalView, title: str) -> None:
        super().__init__(terminal)
        self.title = title


class VibeboxCommand(TerminalMessage, namespace="terminal_view"):
    """The guest shell ran a vibebox command (``:new``, ``:exit``, ...; OSC 7777)."""

    def __init__(self, terminal: TerminalView, name: str) -> None:
        super().__init__(terminal)
        self.name = name


class Disconnected(TerminalMessage, namespace="terminal_view"):
    """The stream ended: the guest program exited or the connection dropped."""

    def __init__(self, terminal: TerminalView, reason: str) -> None:
        super().__init__(terminal)
        self.reason = reason


class ReconnectRequested(TerminalMessage, namespace="terminal_view"):
    """The user pressed Enter on a disconnected terminal."""


class Bell(TerminalMessage, namespace="terminal_view"):
    """The program rang the bell."""
