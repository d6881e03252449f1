"""The embedded terminal: an xterm-compatible emulator and the Textual widget showing it.

Public API (for the dashboard): :class:`TerminalView` and its messages
(``TitleChanged``, ``VibeboxCommand``, ``Disconnected``, ``ReconnectRequested``, ``Bell``,
``Resized``), and the key constants :data:`FOCUS_OUT_KEY`, :data:`SCROLLBACK_UP_KEY`,
:data:`SCROLLBACK_DOWN_KEY`.
"""

from vibebox_tui.terminal.keys import FOCUS_OUT_KEY, SCROLLBACK_DOWN_KEY, SCROLLBACK_UP_KEY
from vibebox_tui.terminal.widget import TerminalView

__all__ = ["FOCUS_OUT_KEY", "SCROLLBACK_DOWN_KEY", "SCROLLBACK_UP_KEY", "TerminalView"]
