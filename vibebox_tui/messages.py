"""Messages that carry worker results back to the app's event loop.

Workers never touch widgets: they post one of these, and the app's handlers update the screen.
Every failure arrives as :class:`Failed`, and exactly one handler decides whether it deserves
an error dialog or a notification.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from vibebox_core.config.grants import PolicyNotApprovedError
from vibebox_core.progress import ProgressEvent
from vibebox_tui.backend.base import Attachment, InspectorData, SessionRow


class SessionsListed(Message):
    def __init__(self, sessions: list[SessionRow]) -> None:
        super().__init__()
        self.sessions = sessions


class Progress(Message):
    def __init__(self, event: ProgressEvent) -> None:
        super().__init__()
        self.event = event


class Attached(Message):
    def __init__(self, attachment: Attachment) -> None:
        super().__init__()
        self.attachment = attachment


class InspectorUpdated(Message):
    def __init__(self, data: InspectorData) -> None:
        super().__init__()
        self.data = data


class ConsoleTail(Message):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines


class ApprovalNeeded(Message):
    """A start was refused: ``vibebox.toml`` changed mounts or network since approved."""

    def __init__(self, directory: Path, error: PolicyNotApprovedError, startup: bool) -> None:
        super().__init__()
        self.directory = directory
        self.error = error
        self.startup = startup


class Done(Message):
    """A background action finished; ``text`` is worth a notification."""

    def __init__(self, action: str, text: str) -> None:
        super().__init__()
        self.action = action
        self.text = text


class Failed(Message):
    """A background action failed.

    Attributes:
        action: what was being done, in words (``"Starting webshop"``).
        error: the exception (a VibeboxError unless vibebox has a bug).
        dialog: show an error dialog (else a notification).
        fatal: the app cannot go on; it exits non-zero after the dialog.
    """

    def __init__(
        self, action: str, error: BaseException, *, dialog: bool = True, fatal: bool = False
    ) -> None:
        super().__init__()
        self.action = action
        self.error = error
        self.dialog = dialog
        self.fatal = fatal
