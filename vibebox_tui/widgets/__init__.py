"""The dashboard's regions: header, session browser, boot progress, terminal tabs, inspector."""

from vibebox_tui.widgets.browser import SessionBrowser
from vibebox_tui.widgets.header import SessionHeader
from vibebox_tui.widgets.inspector import Inspector
from vibebox_tui.widgets.progress import BootProgress
from vibebox_tui.widgets.tabs import TerminalTabs

__all__ = ["BootProgress", "Inspector", "SessionBrowser", "SessionHeader", "TerminalTabs"]
