"""``TerminalCanvas``: an emulator's screen drawn as a widget, the base of ``TerminalView``.

It repaints only the rows that changed, from strips cached per line
(:mod:`vibebox_tui.terminal.render`), at most one frame per
:class:`~vibebox_tui.terminal.frames.FramePacer` tick during a flood, and holds a synchronized
update (mode 2026) until its frame is complete. It shows the scrollback when the view is
scrolled back and the disconnect line when the stream has ended, and follows the widget's size:
a resize resizes the emulator, and :meth:`TerminalCanvas._size_changed` lets
:class:`~vibebox_tui.terminal.widget.TerminalView` resize the PTY with it.
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Self

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from vibebox_core.sanitize import clean
from vibebox_tui.terminal.frames import FramePacer
from vibebox_tui.terminal.keys import SCROLLBACK_DOWN_KEY
from vibebox_tui.terminal.render import Renderer
from vibebox_tui.terminal.vt.emulator import Emulator
from vibebox_tui.terminal.vt.screen import AnyLine

SYNC_TIMEOUT = 0.2
"""Longest a synchronized update (mode 2026) may hold the repaint, as in other terminals."""
RECONNECT_HINT = "press Enter to reconnect"
_REVERSE = Style(reverse=True)


class TerminalCanvas(Widget):
    """The emulator's screen, painted; the scrollback view; the widget's size followed."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.emulator = Emulator(80, 24)
        self._renderer = Renderer(self.emulator.screen.table)
        self.history_offset = 0
        """Lines scrolled back from the live screen (0 = live)."""
        self.disconnect_reason: str | None = None
        """Why the stream ended, while the terminal is disconnected; else None."""
        self._cursor = (0, 0, True)  # (x, y, visible) as last painted
        self._sync_since: float | None = None
        self._size_check_pending = False
        self._pacer = FramePacer()
        self._frame_timer: Timer | None = None
        self._deferred = False
        """Output waits to be parsed until the frame is due (:class:`TerminalView` sets it)."""
        self._shown: dict[int, Strip] = {}  # the strip each row was last rendered as
        self._rows_held: set[int] = set()
        """Rows whose changes wait for a flood's frame while an echo beside it is painted
        alone: rendered as they were (Textual asks a widget for all its rows on any paint)."""

    # -- painting ------------------------------------------------------------------------

    def _output_changed(self) -> None:
        screen = self.emulator.screen
        if screen.scrolled:
            self._pacer.scrolled(screen.scrolled, screen.lines)
            if self.history_offset:
                self.history_offset = min(
                    self.history_offset + screen.scrolled, len(screen.scrollback)
                )
            # Lines that left the screen keep no strip (a few KB each, thousands after a
            # flood); one is built again if the view is scrolled back to it.
            for line in islice(reversed(screen.scrollback), screen.scrolled):
                line.cache = None
            screen.scrolled = 0
        self.history_offset = min(self.history_offset, len(screen.scrollback))
        if self.emulator.synchronized:  # mode 2026: paint the frame once it is complete
            now = time.monotonic()
            if self._sync_since is None:
                self._sync_since = now
                self.set_timer(SYNC_TIMEOUT, self._output_changed)
            if now - self._sync_since < SYNC_TIMEOUT:
                return
        self._sync_since = None
        in_place = screen.changed_in_place()
        wait = self._pacer.wait(in_place)
        if wait > 0:  # output keeps coming: it shows in the next frame (see frames.py)
            if self._frame_timer is None:
                self._frame_timer = self.set_timer(
                    self._pacer.look_again(in_place), self._frame_due
                )
            return
        if self._frame_timer is not None:
            self._frame_timer.stop()
            self._frame_timer = None
        dirty = screen.dirty
        cursor = (screen.cursor.x, screen.cursor.y, self.emulator.cursor_visible)
        if cursor != self._cursor:  # the cursor is painted by render_line: repaint both rows
            dirty.add(self._cursor[1])
            dirty.add(cursor[1])
            self._cursor = cursor
        if not dirty:
            return
        region = screen.streamed_region() if in_place else None
        if region is not None and not self.history_offset and self._pacer.wait(False) > 0:
            # An echo (a status line) outside the region a flood streams through: painted now
            # on its own -- a row or two, not the whole screen -- and the flood's rows at
            # their frame.
            top, bottom = region
            rows = {y for y in dirty if y < top or y > bottom}
            self._pacer.echoed()
            screen.seen(rows)
            self._rows_held = set(screen.dirty)
            for row in rows:
                self._refresh_row(row)
            self._frame_timer = self.set_timer(self._pacer.look_again(False), self._frame_due)
            return
        self._pacer.painted()
        self._rows_held.clear()
        if self.history_offset or len(dirty) > screen.lines // 2:
            self.refresh()
        else:
            for row in dirty:
                self._refresh_row(row)
        screen.clean()

    def _frame_due(self) -> None:
        self._frame_timer = None
        if not self._deferred:  # else the output for this frame is parsed first, then painted
            self._output_changed()

    def _refresh_row(self, row: int) -> None:
        self.refresh(Region(0, row, self.size.width, 1))

    def _visible_line(self, y: int) -> AnyLine | None:
        screen = self.emulator.screen
        if self.history_offset and not screen.in_alt:
            history = screen.scrollback
            index = len(history) - self.history_offset + y
            if index < len(history):
                return history[index] if index >= 0 else None
            y = index - len(history)
        return screen.buffer[y] if 0 <= y < len(screen.buffer) else None

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's colours, once per paint rather than once per line.
        self._renderer.set_base(self.rich_style)
        screen = self.emulator.screen
        if (self.size.width, self.size.height) != (screen.columns, screen.lines):
            self._check_size_soon()
        background = self.background_colors[1]
        if not self._plain_box():
            self._renderer.set_filters((), background)  # Textual's styling pass applies them
            return super().render_lines(crop)
        # No border, padding, tint or opacity: Textual's styling pass would copy every strip
        # into a new one each frame. Handing over the renderer's cached strips (the app's line
        # filters already applied to their styles) lets the caches Textual keeps on a strip
        # (divided pieces, ANSI text) live as long as the line does: a frame costs about the
        # lines that changed.
        self._renderer.set_filters(self.get_line_filters(), background)
        render_line = self.render_line
        start = time.perf_counter()
        strips = [render_line(y) for y in crop.line_range]
        if crop.height:  # scaled to a full frame: a one-row refresh is no measure
            elapsed = time.perf_counter() - start
            self._pacer.rendered(elapsed * self.size.height / crop.height)
        if crop.column_span != (0, self.size.width):
            x1, x2 = crop.column_span
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips

    def _plain_box(self) -> bool:
        """Nothing around or over the cells that Textual's styling pass would have to draw."""
        styles = self.styles
        return (
            not any(styles.gutter)
            and not any(edge for edge, _ in styles.outline)
            and styles.tint.a == 0
            and styles.text_opacity == 1
            and self.opacity == 1
            and not (styles.has_rule("hatch") and styles.hatch != "none")
        )

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        if not regions:
            self._rows_held.clear()  # everything is painted as it is now
        else:
            for region in regions:
                self._rows_held.difference_update(region.line_range)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int) -> Strip:
        if y in self._rows_held:
            shown = self._shown.get(y)
            if shown is not None and shown.cell_length == self.size.width:
                return shown
        strip = self._render_row(y)
        self._shown[y] = strip
        return strip

    def _render_row(self, y: int) -> Strip:
        width = self.size.width
        renderer = self._renderer
        screen = self.emulator.screen
        renderer.set_table(screen.table)  # a reset (RIS) brings a new attribute table
        if self.disconnect_reason is not None and y == self.size.height - 1:
            # The reason can carry guest text (the exit signal's name comes from the guest's
            # sshd): escaped, so a control character never reaches the host terminal.
            text = f" {clean(self.disconnect_reason)} — {RECONNECT_HINT} "[:width]
            return Strip([Segment(text.ljust(width), renderer.styled(_REVERSE))], width)
        line = self._visible_line(y)
        if line is None:
            return Strip.blank(width, renderer.styled())
        strip = renderer.line(line, width)
        if self.history_offset and y == 0:
            label = f" ↑ {self.history_offset} lines back · {SCROLLBACK_DOWN_KEY} returns "
            tag = Strip([Segment(label[-width:], renderer.styled(_REVERSE))])
            return Strip.join([strip.crop(0, width - tag.cell_length), tag])
        if (
            y == screen.cursor.y
            and not self.history_offset
            and self.emulator.cursor_visible
            and self.has_focus
            and self.disconnect_reason is None
        ):
            strip = renderer.cursor_strip(strip, line, min(screen.cursor.x, screen.columns - 1))
        return strip

    # -- size ----------------------------------------------------------------------------

    def _apply_size(self) -> bool:
        columns, lines = max(1, self.size.width), max(1, self.size.height)
        screen = self.emulator.screen
        if (columns, lines) == (screen.columns, screen.lines) or not self.size.area:
            return False
        self.emulator.resize(columns, lines)
        self.history_offset = min(self.history_offset, len(self.emulator.screen.scrollback))
        self.refresh()
        return True

    async def on_resize(self, event: events.Resize) -> None:
        await self._check_size()

    def _check_size_soon(self) -> None:
        """Follow the size at the next chance: Textual may change a widget's size without a
        Resize event (a layout change and a focus change in one frame, e.g. hiding the focused
        inspector), which would leave the guest's PTY at the old size."""
        if not self._size_check_pending:
            self._size_check_pending = True
            self.call_later(self._check_size)

    async def _check_size(self) -> None:
        self._size_check_pending = False
        if self._apply_size():
            await self._size_changed()

    async def _size_changed(self) -> None:
        """The emulator took the widget's new size (:class:`TerminalView` tells the PTY)."""

    # -- scrollback view -----------------------------------------------------------------

    def scroll_lines(self, count: int) -> None:
        """Move the view ``count`` lines back into the scrollback (negative: forward)."""
        limit = len(self.emulator.screen.scrollback)
        offset = max(0, min(limit, self.history_offset + count))
        if offset != self.history_offset:
            self.history_offset = offset
            self.refresh()
