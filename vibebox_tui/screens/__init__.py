"""Modal screens of the dashboard: confirm, error, help, checkpoints."""

from vibebox_tui.screens.checkpoints import CheckpointChoice, CheckpointsScreen
from vibebox_tui.screens.confirm import ConfirmScreen
from vibebox_tui.screens.error import ErrorScreen
from vibebox_tui.screens.help import VIBEBOX_COMMANDS, HelpScreen

__all__ = [
    "VIBEBOX_COMMANDS",
    "CheckpointChoice",
    "CheckpointsScreen",
    "ConfirmScreen",
    "ErrorScreen",
    "HelpScreen",
]
