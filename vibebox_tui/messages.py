"""Messages that carry worker results back to the app's event loop.

Workers never touch widgets: they post one of these, and the app's handlers update the screen.
Every failure arrives as :class:`Failed`, and exactly one handler decides whether it deserves
an error dialog or a notification. Each is a dataclass (Textual's ``Message.__post_init__``
sets a message up); ``eq=False`` keeps messages compared by identity, as Textual's own are.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from textual.message import Message

from vibebox_core.config.grants import PolicyNotApprovedError
from vibebox_core.progress import ProgressEvent
from vibebox_core.session.steer import HostChange
from vibebox_tui.backend.base import Attachment, CheckpointList, InspectorData, SessionRow


@dataclass(eq=False)
class SessionsListed(Message):
    sessions: list[SessionRow]


@dataclass(eq=False)
class Progress(Message):
    event: ProgressEvent


@dataclass(eq=False)
class Attached(Message):
    attachment: Attachment


@dataclass(eq=False)
class InspectorUpdated(Message):
    data: InspectorData


@dataclass(eq=False)
class ConsoleTail(Message):
    lines: list[str]


@dataclass(eq=False)
class ApprovalNeeded(Message):
    """A start was refused: ``vibebox.toml`` changed mounts or network since approved."""

    directory: Path
    error: PolicyNotApprovedError
    startup: bool


@dataclass(eq=False)
class CheckpointsListed(Message):
    """The checkpoints of the session of ``directory``, to choose from (``running``: its VM
    ran when they were listed)."""

    directory: Path
    checkpoints: CheckpointList
    running: bool


@dataclass(eq=False)
class SteerPlanned(Message):
    """What allowing or blocking a host of the inspector would change, to confirm first."""

    directory: Path
    change: HostChange


@dataclass(eq=False)
class Done(Message):
    """A background action finished; ``text`` is worth a notification."""

    action: str
    text: str


@dataclass(eq=False)
class Failed(Message):
    """A background action failed.

    Attributes:
        action: what was being done, in words (``"Starting webshop"``).
        error: the exception (a VibeboxError unless vibebox has a bug).
        dialog: show an error dialog (else a notification).
        fatal: the app cannot go on; it exits non-zero after the dialog.
    """

    action: str
    error: BaseException
    _: KW_ONLY
    dialog: bool = True
    fatal: bool = False
