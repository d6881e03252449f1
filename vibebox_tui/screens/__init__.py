"""Modal screens of the dashboard: confirm, error, help."""

from vibebox_tui.screens.confirm import ConfirmScreen
from vibebox_tui.screens.error import ErrorScreen
from vibebox_tui.screens.help import VIBEBOX_COMMANDS, HelpScreen

__all__ = ["VIBEBOX_COMMANDS", "ConfirmScreen", "ErrorScreen", "HelpScreen"]
