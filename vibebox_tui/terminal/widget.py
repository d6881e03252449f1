"""``TerminalView``: the embedded terminal widget.

It reads a :class:`~vibebox_core.pty.ByteStream` in a worker, feeds the emulator in slices
(yielding to the event loop between them so keys stay responsive during a flood), and repaints
only the rows that changed, from strips cached per line. Keys, pastes and focus changes go back
to the stream, encoded as xterm does. The widget's size is the terminal's size: a resize
resizes the emulator and the PTY together.

Two keys are the widget's own rather than the guest's:

* :data:`FOCUS_OUT_KEY` (``ctrl+backslash``) moves focus out: the event bubbles so an app
  binding for it can choose the target; without one, focus moves to the next widget.
* :data:`SCROLLBACK_UP_KEY` / :data:`SCROLLBACK_DOWN_KEY` (``shift+pageup`` /
  ``shift+pagedown``) page through the scrollback, as in xterm -- but only on the main screen;
  in a full-screen program (alternate screen, which has no scrollback) they reach the guest.
  Any key sent to the guest returns the view to the bottom.

With the dashboard's own driver (:class:`~vibebox_tui.terminal.input.VibeboxDriver`) the keys
typed while the terminal has the focus come as the host terminal's bytes (:class:`RawInput`),
not as Textual key events: see :mod:`vibebox_tui.terminal.input` for what is forwarded and
what the dashboard keeps. Key events (headless, Pilot, keys parsed before the terminal took
the focus) are encoded by :func:`~vibebox_tui.terminal.keys.encode_key`.
"""

from __future__ import annotations

import asyncio
import time
from itertools import islice

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import Worker

from vibebox_core import commandtoken
from vibebox_core.pty import ByteStream, command_token, end_reason
from vibebox_core.sanitize import clean
from vibebox_tui.terminal.emulator import BellEvent, CommandEvent, Emulator, TitleEvent
from vibebox_tui.terminal.frames import FramePacer
from vibebox_tui.terminal.input import RawInput, VibeboxDriver
from vibebox_tui.terminal.keys import encode_key, encode_paste
from vibebox_tui.terminal.messages import (
    Bell,
    Disconnected,
    ReconnectRequested,
    TitleChanged,
    VibeboxCommand,
)
from vibebox_tui.terminal.mouse import MouseKind, MouseState
from vibebox_tui.terminal.render import Renderer
from vibebox_tui.terminal.screen import AnyLine

FOCUS_OUT_KEY = "ctrl+backslash"
"""The one key that never reaches the guest: it moves focus out of the terminal."""
SCROLLBACK_UP_KEY = "shift+pageup"
SCROLLBACK_DOWN_KEY = "shift+pagedown"
# The same keys as the host terminal's bytes (xterm's shift+PgUp / shift+PgDn).
_SCROLLBACK_BYTES = {b"\x1b[5;2~": 1, b"\x1b[6;2~": -1}
FEED_SLICE = 8 * 1024
"""Bytes parsed before yielding to the event loop (keeps key latency low under floods)."""
WHEEL_LINES = 3
SYNC_TIMEOUT = 0.2
"""Longest a synchronized update (mode 2026) may hold the repaint, as in other terminals."""
RECONNECT_HINT = "press Enter to reconnect"
_REVERSE = Style(reverse=True)


class TerminalView(Widget, can_focus=True):
    """A terminal attached to a :class:`ByteStream` (or to nothing yet).

    Args:
        stream: the stream to attach at once; see :meth:`attach`.
    """

    DEFAULT_CSS = """
    TerminalView {
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $foreground;
    }
    """

    # Messages (handlers: on_terminal_view_title_changed, ...); defined in messages.py.
    TitleChanged = TitleChanged
    VibeboxCommand = VibeboxCommand
    Disconnected = Disconnected
    ReconnectRequested = ReconnectRequested
    Bell = Bell

    def __init__(
        self,
        stream: ByteStream | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.emulator = Emulator(80, 24)
        self._renderer = Renderer(self.emulator.screen.table)
        self._stream: ByteStream | None = None
        self._worker: Worker[None] | None = None
        self._pending_stream = stream
        self.history_offset = 0
        """Lines scrolled back from the live screen (0 = live)."""
        self.disconnect_reason: str | None = None
        """Why the stream ended, while the terminal is disconnected; else None."""
        self._cursor = (0, 0, True)  # (x, y, visible) as last painted
        self._mouse_state = MouseState()
        self._sync_since: float | None = None
        self._size_check_pending = False
        self._pacer = FramePacer()
        self._frame_timer: Timer | None = None

    # -- public API ----------------------------------------------------------------------

    @property
    def stream(self) -> ByteStream | None:
        return self._stream

    @property
    def title(self) -> str:
        return self.emulator.title

    def attach(self, stream: ByteStream, *, reset: bool = True) -> None:
        """Show ``stream`` in this terminal (replacing any attached one, which is not closed).

        Args:
            stream: the byte stream to read from and write keys to.
            reset: start from a blank screen (default); False keeps the old contents.
        """
        self.detach()
        if reset:
            columns, lines = self.emulator.screen.columns, self.emulator.screen.lines
            self.emulator = Emulator(columns, lines)
            self._renderer.set_table(self.emulator.screen.table)
        self._stream = stream
        self.disconnect_reason = None
        self.history_offset = 0
        self._sync_since = None
        if self.is_mounted:
            self._start(stream)
        else:
            self._pending_stream = stream
        self._sync_input()
        self.refresh()

    def detach(self) -> ByteStream | None:
        """Stop reading the attached stream and return it (still open) to the caller."""
        stream, self._stream = self._stream, None
        self._pending_stream = None
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._sync_input()
        return stream

    async def send(self, data: bytes) -> None:
        """Write bytes to the guest (as if typed); ignored while disconnected."""
        if self._stream is not None and self.disconnect_reason is None and data:
            self._pacer.typed()  # what the guest echoes paints at once, even in a flood
            try:
                await self._stream.write(data)
            except Exception as exc:  # a dropped connection: show it, never a traceback
                self._disconnected(str(exc) or type(exc).__name__)

    # -- lifecycle -----------------------------------------------------------------------

    def on_mount(self) -> None:
        self._apply_size()
        driver = self._raw_driver()
        if driver is not None:
            driver.raw_target = self
            # A dialog on top takes the keyboard without a Blur: follow the screen changes.
            self.app.screen_change_signal.subscribe(self, lambda _: self._sync_input())
        if self._pending_stream is not None:
            stream, self._pending_stream = self._pending_stream, None
            self._stream = stream
            self._start(stream)

    def on_unmount(self) -> None:
        self.detach()
        driver = self._raw_driver()
        if driver is not None and driver.raw_target is self:
            driver.raw_target = None
            driver.mirror_modes(False, False)

    def _start(self, stream: ByteStream) -> None:
        self._worker = self.run_worker(
            self._pump(stream), group="terminal-read", exit_on_error=False
        )
        self.run_worker(self._resize_stream(stream))

    async def _resize_stream(self, stream: ByteStream) -> None:
        """Tell the PTY the terminal's size *now* (a worker may run after a later resize:
        a size read when it was made would undo that one)."""
        screen = self.emulator.screen
        try:
            await stream.resize(screen.columns, screen.lines)
        except Exception as exc:
            if stream is self._stream:
                self._disconnected(str(exc) or type(exc).__name__)

    async def _pump(self, stream: ByteStream) -> None:
        """Read, parse in slices, answer queries, post events, repaint what changed."""
        reason = ""
        while True:
            try:
                data = await stream.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                break
            if stream is not self._stream:
                return
            if not data:
                reason = end_reason(stream)
                break
            for start in range(0, len(data), FEED_SLICE):
                if start:
                    await asyncio.sleep(0)  # let keys and repaints through
                    if stream is not self._stream:
                        return
                emulator = self.emulator
                try:
                    emulator.feed(data[start : start + FEED_SLICE])
                except Exception as exc:  # a parser bug must not freeze the session
                    self.log.error(f"terminal: could not parse output: {exc!r}")
                if emulator.replies:
                    await self.send(emulator.take_replies())
                if emulator.events:
                    self._post_events()
            self._sync_input()
            self._output_changed()
        if stream is self._stream:
            self._output_changed()
            self._disconnected(reason)

    def _post_events(self) -> None:
        for event in self.emulator.take_events():
            if isinstance(event, TitleEvent):
                self.post_message(self.TitleChanged(self, event.title))
            elif isinstance(event, CommandEvent):
                # Only the shell holding this PTY's secret can run a vibebox command; the same
                # bytes from any other output (a `cat`) are ignored (vibebox_core.commandtoken).
                stream = self._stream
                if stream is not None and commandtoken.matches(command_token(stream), event.token):
                    self.post_message(self.VibeboxCommand(self, event.name))
                else:
                    self.log.warning("terminal: ignored a vibebox command without this PTY's token")
            elif isinstance(event, BellEvent):
                self.post_message(self.Bell(self))

    def _disconnected(self, reason: str) -> None:
        if self.disconnect_reason is not None:
            return
        self.disconnect_reason = reason
        self._sync_input()
        self.post_message(self.Disconnected(self, reason))
        self.refresh()

    # -- painting ------------------------------------------------------------------------

    def _output_changed(self) -> None:
        screen = self.emulator.screen
        if screen.scrolled:
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
        wait = self._pacer.wait()
        if wait > 0:  # output keeps coming: it shows in the next frame (see frames.py)
            if self._frame_timer is None:
                self._frame_timer = self.set_timer(wait, self._frame_due)
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
        self._pacer.painted()
        if self.history_offset or len(dirty) > screen.lines // 2:
            self.refresh()
        else:
            for row in dirty:
                self._refresh_row(row)
        screen.clean()

    def _frame_due(self) -> None:
        self._frame_timer = None
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

    def render_line(self, y: int) -> Strip:
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
        if self._apply_size() and self._stream is not None and self.disconnect_reason is None:
            await self._resize_stream(self._stream)

    # -- input ---------------------------------------------------------------------------

    async def on_key(self, event: events.Key) -> None:
        key = event.key
        if key == FOCUS_OUT_KEY:
            # Let the app's own binding for this key (if any) decide where focus goes; if
            # nothing moved it by the next refresh, move it to the next widget.
            self.call_after_refresh(self._focus_out_fallback)
            return
        event.stop()
        event.prevent_default()
        if self.disconnect_reason is not None:
            if key == "enter":
                self.post_message(self.ReconnectRequested(self))
            return
        if not self.emulator.screen.in_alt:
            if key == SCROLLBACK_UP_KEY:
                self.scroll_lines(self.emulator.screen.lines - 1)
                return
            if key == SCROLLBACK_DOWN_KEY:
                self.scroll_lines(-(self.emulator.screen.lines - 1))
                return
        await self._send_typed(
            encode_key(key, event.character, app_cursor=self.emulator.app_cursor)
        )

    def _focus_out_fallback(self) -> None:
        if self.has_focus:
            self.screen.focus_next()
        if self.has_focus:  # nowhere else to go: the keys stay the guest's
            driver = self._raw_driver()
            if driver is not None:
                driver.resume_raw_input()

    # -- raw input (the host terminal's bytes; see vibebox_tui.terminal.input) -----------

    def _raw_driver(self) -> VibeboxDriver | None:
        driver = self.app._driver
        return driver if isinstance(driver, VibeboxDriver) else None

    def accepts_raw_input(self) -> bool:
        """Keys typed now are the guest's (read by the driver's input thread)."""
        return (
            self._stream is not None and self.disconnect_reason is None and self.app.focused is self
        )

    def _sync_input(self) -> None:
        """Mirror the guest's cursor/keypad modes onto the host terminal while it types for
        the guest, so the host sends what xterm would send the guest; normal modes else."""
        driver = self._raw_driver()
        if driver is None:
            return
        active = self.is_mounted and self.accepts_raw_input()
        emulator = self.emulator
        driver.mirror_modes(active and emulator.app_cursor, active and emulator.app_keypad)

    async def _on_raw_input(self, message: RawInput) -> None:
        message.stop()
        for destination, data in message.chunks:
            if self.disconnect_reason is not None or self._stream is None:
                if destination == "keys" and b"\r" in data and self._stream is not None:
                    self.post_message(self.ReconnectRequested(self))
                return
            if destination == "paste":
                text = data.decode("utf-8", errors="replace")
                self.scroll_lines(-self.history_offset)
                await self.send(encode_paste(text, bracketed=self.emulator.bracketed_paste))
            elif destination == "focus":  # the host window's focus, for a program that asked
                if self.emulator.focus_events:
                    await self.send(data)
            else:
                await self._send_typed(data)

    async def _send_typed(self, data: bytes) -> None:
        """Send typed bytes; shift+PgUp/PgDn page the scrollback on the main screen. With LNM
        set (``CSI 20 h``) a typed CR goes as CR LF, as xterm sends it."""
        if not self.emulator.screen.in_alt and b"\x1b[" in data:
            for seq, direction in _SCROLLBACK_BYTES.items():
                if seq in data:
                    before, _, after = data.partition(seq)
                    await self._send_typed(before)
                    self.scroll_lines(direction * (self.emulator.screen.lines - 1))
                    await self._send_typed(after)
                    return
        if data:
            self.scroll_lines(-self.history_offset)
            await self.send(data.replace(b"\r", b"\r\n") if self.emulator.newline_mode else data)

    def scroll_lines(self, count: int) -> None:
        """Move the view ``count`` lines back into the scrollback (negative: forward)."""
        limit = len(self.emulator.screen.scrollback)
        offset = max(0, min(limit, self.history_offset + count))
        if offset != self.history_offset:
            self.history_offset = offset
            self.refresh()

    async def on_paste(self, event: events.Paste) -> None:
        event.stop()
        if self.disconnect_reason is None:
            self.scroll_lines(-self.history_offset)
            await self.send(encode_paste(event.text, bracketed=self.emulator.bracketed_paste))

    async def _mouse(self, event: events.MouseEvent, kind: MouseKind) -> bool:
        """Report the event to the program if it tracks the mouse; True if it was sent."""
        if self.disconnect_reason is not None or self.history_offset:
            return False
        data = self._mouse_state.report(self.emulator.mouse_modes, kind, event)
        if data is None:
            return False
        event.stop()
        await self.send(data)
        return True

    async def on_mouse_down(self, event: events.MouseDown) -> None:
        if await self._mouse(event, "press"):
            self.capture_mouse()

    async def on_mouse_up(self, event: events.MouseUp) -> None:
        if await self._mouse(event, "release"):
            self.capture_mouse(False)

    async def on_mouse_move(self, event: events.MouseMove) -> None:
        await self._mouse(event, "motion")

    async def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        if not await self._mouse(event, "wheel_up"):
            await self._wheel(WHEEL_LINES)

    async def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        if not await self._mouse(event, "wheel_down"):
            await self._wheel(-WHEEL_LINES)

    async def _wheel(self, lines: int) -> None:
        if self.emulator.screen.in_alt:
            # Full-screen programs get arrow keys, like xterm's alternateScroll.
            key = "up" if lines > 0 else "down"
            await self.send(encode_key(key, app_cursor=self.emulator.app_cursor) * abs(lines))
        else:
            self.scroll_lines(lines)

    async def on_focus(self, event: events.Focus) -> None:
        driver = self._raw_driver()
        if driver is not None:
            driver.resume_raw_input()
        self._sync_input()
        self._refresh_row(self.emulator.screen.cursor.y)
        if self.emulator.focus_events:
            await self.send(b"\x1b[I")

    async def on_blur(self, event: events.Blur) -> None:
        self._sync_input()
        self._refresh_row(self.emulator.screen.cursor.y)
        if self.emulator.focus_events:
            await self.send(b"\x1b[O")
