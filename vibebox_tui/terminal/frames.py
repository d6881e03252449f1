"""When the terminal repaints (and parses what a flood sent for the frame): frames are paced.

A flood (``cat`` of a big log) arrives as hundreds of reads a second. Repainting after each
one costs a full Textual frame (every line restyled, composed and written to the host
terminal) for pictures nobody can see, and that painting competes for the CPU with the parser
and the guest, so the flood takes longer and the keys typed meanwhile wait behind it. The
widget asks a :class:`FramePacer` instead:

* output after a quiet spell is painted at once (a prompt, an echo, a status line);
* while output keeps coming, at most one frame per :data:`FRAME_INTERVAL`, and once a flood
  has gone on for :data:`LONG_FLOOD`, one per :data:`LONG_FLOOD_INTERVAL` (a picture of
  text scrolling by too fast to read is all the eye gets either way); the widget sets a
  timer for the rest, so the last state is always painted; meanwhile the widget collects the
  output and parses it when the frame is due or a key is sent (nothing is dropped: every byte
  is parsed, the pacer only decides when, and how often the screen is looked at);
* output that stops for :data:`IDLE_GAP` is painted without waiting for the frame (the
  widget tells the pacer when output comes, :meth:`FramePacer.arrived`, and looks again that
  soon): the end of a flood, the prompt after a ``cat``, shows at once rather than up to a
  frame later;
* for :data:`ECHO_WINDOW` after a key was sent, output is parsed at once (but for plain
  output once a flood streams by, up to ``widget.ECHO_HOLD`` bytes: it cannot be an echo
  drawn in place, see ``TerminalView._streams_by``), and what changed the
  screen in place (an echo at the cursor, a status line, a redraw, a scroll by less than a
  screenful: anything but a flood streaming through the scroll region,
  :meth:`~vibebox_tui.terminal.vt.grid.Grid.changed_in_place`) is painted at once, at most
  one frame per :data:`ECHO_INTERVAL`, so what the guest echoes shows without waiting for the
  next frame of a flood. The flood itself keeps its pace: painted at every read for the whole
  window, its frames took the CPU the guest and the echo needed (``tests/bench/bench_flood.py``).
  A key typed while nothing scrolled (a command entered at a quiet prompt) has its window end
  once a frame has shown a screenful scrolled by since the key: the echo was in that frame,
  what follows is the flood the command started (``cat`` of a big file). A key typed while
  output scrolls keeps its whole window, since its echo may come after much output that was
  already on its way;
* on a machine too busy to render a frame quickly (the widget reports how long its lines
  took, :meth:`FramePacer.rendered`), frames are spaced further apart so rendering stays
  under :data:`RENDER_SHARE` of the time and the parser keeps up with the guest.

This module imports nothing from Textual: the pacer only does the arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FRAME_INTERVAL = 1 / 20
"""Shortest time between two repaints while output keeps coming (seconds)."""
LONG_FLOOD = 0.5
"""After this long of output without a pause (seconds), frames come further apart..."""
LONG_FLOOD_INTERVAL = 1 / 10
"""...this far apart (seconds). Every row of a flood's frame is new, so each frame is a full
render (py-spy on ``tests/bench/bench_flood.py``: the frames took about as much of the
dashboard's CPU as the parsing at 30 and 15 a second); ten a second still shows text
scrolling by, which is all the eye gets of a flood."""
ECHO_WINDOW = 0.25
"""After a key is sent, output that changes the screen in place is painted at once for this
long (seconds)."""
ECHO_INTERVAL = 1 / 120
"""Shortest time between two frames painted at once in an echo window (seconds): a program
redrawing in place without pause (a progress bar, a clock) is not painted at every read."""
IDLE_GAP = 0.015
"""No output for this long (seconds) while a frame is held back: the output paused, and what
came is painted now. A flood's reads come a millisecond or two apart; a frame held for a tenth
of a second kept the prompt after a ``cat`` waiting for up to that long."""
QUIET = 2 * LONG_FLOOD_INTERVAL
"""No rows scrolled for this long before a key (seconds): it was typed at a quiet prompt."""
RENDER_SHARE = 0.1
"""Most of a flood's time the terminal's own line rendering may take (Textual's composing
and writing of the frame come on top, about as much again)."""


class FramePacer:
    """Decides whether output that just arrived is painted now or at the next frame.

    Args:
        interval: the shortest time between two frames during a flood.
        echo_window: how long after :meth:`typed` output is painted at once.
        clock: a monotonic clock in seconds (tests pass a fake one).
        render_share: the most of the time line rendering may take during a flood.
    """

    def __init__(
        self,
        interval: float = FRAME_INTERVAL,
        echo_window: float = ECHO_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        render_share: float = RENDER_SHARE,
    ) -> None:
        self.interval = interval
        self.echo_window = echo_window
        self.clock = clock
        self.render_share = render_share
        self._painted_at = float("-inf")
        self._typed_at = float("-inf")
        self._flood_since = float("inf")  # when the current run of paced frames began
        self._render_cost = 0.0  # seconds a full frame's lines take, smoothed
        self._scrolled_at = float("-inf")  # when output last scrolled rows off the screen
        self._key_in_flood = True  # the last key came while output scrolled
        self._scrolled_since_key = 0
        self._lines = 0  # the screen's height, as last reported
        self._arrived_at = float("-inf")  # when output last came
        self._echoed_at = float("-inf")  # when rows drawn in place were last painted alone

    def typed(self) -> None:
        """A key (or paste) was just sent to the guest: its echo should show at once."""
        now = self.clock()
        self._typed_at = now
        self._key_in_flood = now - self._scrolled_at < QUIET
        self._scrolled_since_key = 0

    def scrolled(self, rows: int, lines: int) -> None:
        """Output just scrolled ``rows`` rows off a screen of ``lines`` rows."""
        if rows > 0:
            self._scrolled_at = self.clock()
            self._scrolled_since_key += rows
            self._lines = lines

    def arrived(self) -> None:
        """Output just came (painted at the next frame, or once no more comes for
        :data:`IDLE_GAP`)."""
        self._arrived_at = self.clock()

    def wait(self, in_place: bool = True) -> float:
        """Seconds until the next frame may be painted; 0 means paint now.

        Args:
            in_place: the output changed the screen in place, not only streamed through the
                scroll region (see the module's docstring); the output not yet parsed may.
        """
        now = self.clock()
        if now - self._arrived_at >= IDLE_GAP:
            return 0.0
        if in_place and self.in_echo_window():
            return max(0.0, max(self._painted_at, self._echoed_at) + ECHO_INTERVAL - now)
        interval = self.interval
        if now - self._flood_since >= LONG_FLOOD:
            interval = max(interval, LONG_FLOOD_INTERVAL)
        interval = max(interval, self._render_cost / self.render_share)
        return max(0.0, self._painted_at + interval - now)

    def in_echo_window(self) -> bool:
        """A key was sent less than :data:`ECHO_WINDOW` ago: output is parsed as it comes
        (its echo may be in it), whenever its frame is painted."""
        return self.clock() - self._typed_at < self.echo_window

    def look_again(self, in_place: bool = True) -> float:
        """Seconds until output held back for a frame is looked at again: when the frame is
        due, or once :data:`IDLE_GAP` is over (if no more output came by then, it paused)."""
        return min(self.wait(in_place), IDLE_GAP)

    def rendered(self, seconds: float) -> None:
        """Rendering a full frame's lines just took ``seconds``."""
        self._render_cost = 0.7 * self._render_cost + 0.3 * seconds

    def echoed(self) -> None:
        """Only the rows drawn in place were just painted, ahead of a flood's frame (which
        keeps its time): the next such paint waits :data:`ECHO_INTERVAL`."""
        self._echoed_at = self.clock()

    def painted(self) -> None:
        """A frame was just requested."""
        now = self.clock()
        if now - self._painted_at > 2 * max(self.interval, LONG_FLOOD_INTERVAL):
            self._flood_since = now  # after a pause: a new run of output begins
        self._painted_at = now
        if not self._key_in_flood and self._scrolled_since_key >= self._lines > 0:
            self._typed_at = float("-inf")  # this frame showed the echo; a flood follows
