"""What the terminal area shows while an image builds or a VM boots.

Each :class:`~vibebox_core.progress.ProgressEvent` becomes a line: done steps get a tick (a
cross when the step failed and the start went on), the current one an arrow, each with the
elapsed time core reported. A step's program output (provisioning) shows under it, its last
:data:`OUTPUT_LINES` lines, each escaped: the guest chose them. ``ctrl+o`` shows the tail of
the VM's serial console (the app fetches it), which is where a boot that hangs tells why.

Keys typed meanwhile are kept for the shell, as a terminal keeps what is typed ahead of the
prompt: printable keys and Enter collect here (Backspace takes the last one back) and the app
sends them once the shell is attached. So no typed letter can act as a dashboard key while a
session starts (``q`` in ``sqlite3`` must not quit vibebox).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from vibebox_core.progress import ProgressEvent
from vibebox_tui.safe import clean

#: Shows or hides the serial console's tail (not a letter: letters are typed ahead).
CONSOLE_KEY = "ctrl+o"


#: Output lines a step keeps on screen (provisioning); the whole output is in its log.
OUTPUT_LINES = 10
#: Characters of one output line shown.
OUTPUT_WIDTH = 200


@dataclass
class _Step:
    detail: str
    elapsed: float
    done: bool
    failed: bool = False
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))


class BootProgress(Vertical, can_focus=True):
    """Steps of a start-up, with elapsed time and an optional console tail."""

    BINDINGS = [
        Binding(CONSOLE_KEY, "toggle_console", "Console log", key_display="^o"),
        Binding("ctrl+q", "leave", "Exit", key_display="^q"),
    ]

    class ConsoleToggled(Message):
        """The console tail was shown (``shown``) or hidden."""

        def __init__(self, shown: bool) -> None:
            super().__init__()
            self.shown = shown

    def __init__(self, *, id: str | None = None, live_clock: bool = True) -> None:
        super().__init__(id=id)
        self.live_clock = live_clock
        self.heading = ""
        self.steps: dict[str, _Step] = {}
        self.console_shown = False
        self._started = time.monotonic()
        self.typed_ahead = ""
        """What was typed while the session started, for its shell (see the module doc)."""

    def compose(self) -> ComposeResult:
        yield Static(id="progress-steps")
        yield Static(id="progress-console")

    def on_mount(self) -> None:
        self.border_title = "Starting"
        self.query_one("#progress-console").display = False
        if self.live_clock:
            self.set_interval(1.0, self._redraw)

    def begin(self, heading: str) -> None:
        """Start a fresh list of steps under ``heading``."""
        self.heading = heading
        self.steps.clear()
        self._started = time.monotonic()
        self.typed_ahead = ""
        self._redraw()

    class LeaveRequested(Message):
        """``ctrl+q``: leave vibebox (``q`` is typed ahead here)."""

    def action_leave(self) -> None:
        self.post_message(self.LeaveRequested())

    def take_typed_ahead(self) -> bytes:
        """The keys typed ahead of the shell, as the shell should get them; clears them."""
        typed, self.typed_ahead = self.typed_ahead, ""
        self._redraw()
        return typed.encode()

    def on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            self.typed_ahead += "\r"
        elif event.key == "backspace":
            self.typed_ahead = self.typed_ahead[:-1]
        elif event.is_printable and event.character:
            self.typed_ahead += event.character
        else:
            return  # ctrl+o, ctrl+q, tab, F1...: the bindings' keys
        event.stop()
        event.prevent_default()
        self._redraw()

    def add_event(self, event: ProgressEvent) -> None:
        """Record one progress event and redraw."""
        step = self.steps.get(event.step)
        if step is None:
            for earlier in self.steps.values():
                earlier.done = True  # a new step means the earlier ones are over
            step = self.steps[event.step] = _Step(event.detail, event.elapsed, event.done)
        elif not event.output:  # an output event keeps the step's line as it is
            step.detail, step.elapsed, step.done = event.detail, event.elapsed, event.done
        step.failed = step.failed or event.failed
        step.output.extend(event.output)
        self._redraw()

    @property
    def elapsed(self) -> float:
        reported = max((s.elapsed for s in self.steps.values()), default=0.0)
        if not self.live_clock:
            return reported
        return max(reported, time.monotonic() - self._started)

    def render_steps(self) -> Text:
        text = Text(clean(self.heading), style="bold")
        text.append("\n")
        column = max((len(name) for name in self.steps), default=0)
        column = max(22, min(column, 32))  # the times line up under each other
        for raw_name, step in self.steps.items():
            name = clean(raw_name, 80)
            mark, style = ("✓", "green") if step.done else ("▸", "bold yellow")
            if step.failed:
                mark, style = "✗", "bold red"
            text.append(f"\n  {mark} ", style=style)
            text.append(f"{name:<{column}}", style="" if step.done else "bold")
            text.append(f"{step.elapsed:7.1f}s", style="dim")
            if step.detail:
                text.append(f"  {clean(step.detail)}", style="red" if step.failed else "dim")
            for line in step.output:
                text.append("\n      │ ", style="dim")
                text.append(clean(line, OUTPUT_WIDTH), style="dim")
        text.append(f"\n\n  elapsed {self.elapsed:.0f}s", style="dim")
        hint = "ctrl+o hides" if self.console_shown else "ctrl+o shows"
        text.append(f"  ·  {hint} the console log", style="dim italic")
        if self.typed_ahead:
            shown = clean(self.typed_ahead.replace("\r", "⏎")[-60:], None)
            text.append("\n  typed ahead, for the shell: ", style="dim")
            text.append(shown[-60:], style="bold")
        return text

    def _redraw(self) -> None:
        if self.is_mounted:
            self.query_one("#progress-steps", Static).update(self.render_steps())

    def show_console(self, lines: list[str]) -> None:
        """Replace the console tail with ``lines`` (the guest wrote them: each one escaped)."""
        body = Text("console log (tail)\n", style="bold")
        shown = "\n".join(clean(line) for line in lines)
        body.append(shown if lines else "(nothing logged yet)", style="dim")
        self.query_one("#progress-console", Static).update(body)

    def action_toggle_console(self) -> None:
        self.console_shown = not self.console_shown
        self.query_one("#progress-console").display = self.console_shown
        self._redraw()
        self.post_message(self.ConsoleToggled(self.console_shown))
