"""``TerminalView``: the embedded terminal widget.

It reads a :class:`~vibebox_core.streams.ByteStream` in a worker, feeds the emulator in slices
(yielding to the event loop between them so keys stay responsive during a flood), and posts
what the program asked for as messages nested in the widget (``TerminalView.TitleChanged``...).
Keys, pastes and focus changes go back to the stream, encoded as xterm does. Painting the
screen (only the rows that changed, from strips cached per line) and following the widget's
size are its base's, :class:`~vibebox_tui.terminal.canvas.TerminalCanvas`: a resize resizes the
emulator and the PTY together.

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
the focus) are encoded by :func:`~vibebox_tui.terminal.keys.encode_key`. Several terminals
(the dashboard's tabs) share that driver: the focused one gets the host's bytes and mirrors its
modes onto the host terminal; the others keep reading their streams and change nothing there.
"""

from __future__ import annotations

import asyncio
import contextlib

from textual import events
from textual.message import Message
from textual.worker import Worker

from vibebox_core import commandtoken
from vibebox_core.streams import ByteStream, ReadsAhead, WritesSoon, command_token, end_reason
from vibebox_tui.terminal.canvas import TerminalCanvas
from vibebox_tui.terminal.input import RawInput, VibeboxDriver
from vibebox_tui.terminal.keys import (
    FOCUS_OUT_KEY,
    SCROLLBACK_DOWN_KEY,
    SCROLLBACK_UP_KEY,
    encode_key,
    encode_paste,
)
from vibebox_tui.terminal.mouse import MouseKind, MouseState
from vibebox_tui.terminal.vt.emulator import BellEvent, CommandEvent, Emulator, TitleEvent
from vibebox_tui.terminal.vt.plain import plain_flow

# The scrollback keys as the host terminal's bytes (xterm's shift+PgUp / shift+PgDn).
_SCROLLBACK_BYTES = {b"\x1b[5;2~": 1, b"\x1b[6;2~": -1}
FEED_SLICE = 32 * 1024
"""Bytes parsed before yielding to the event loop (keeps key latency low under floods). A
slice of 32 KiB takes about 1.5 ms; at 8 KiB the rows each slice leaves on the screen were
built as cells only to scroll off in the next one, and the parser ran a quarter slower (the
emulator 17 against 22 MB/s, the headless widget 15 against 20 MB/s on a 4 MB coloured
stream, ``tests/bench/bench_terminal.py``'s stream, both in one run)."""
FLOOD_SLICE = 256 * 1024
"""Bytes parsed before yielding once the slice before was a flood's, taken whole by the flood
path (plain.py's ``find_flood``): that path builds only the rows left on the screen, for each
slice, so fewer, longer slices build fewer rows that scroll off in the next one."""
DEFER_LIMIT = 1 << 20
"""Most output collected unparsed while the next frame of a flood is not due (bytes)."""
ECHO_HOLD = 64 * 1024
"""Most plain output streaming by (:meth:`TerminalView._streams_by`) held unparsed in a key's
echo window (bytes): all of it is parsed before the echo behind it, and a frame's worth of a
flood (a tenth of a second, a few hundred KB) took up to tens of milliseconds."""
WHEEL_LINES = 3


class TerminalMessage(Message):
    """Base of the messages a :class:`TerminalView` posts; ``control`` is that terminal."""

    def __init__(self, terminal: TerminalView) -> None:
        super().__init__()
        self.terminal = terminal

    @property
    def control(self) -> TerminalView:
        return self.terminal


class TerminalView(TerminalCanvas, can_focus=True):
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

    # -- messages (handlers: on_terminal_view_title_changed, ...) ------------------------

    class TitleChanged(TerminalMessage):
        """The program set the window title (OSC 0 or 2)."""

        def __init__(self, terminal: TerminalView, title: str) -> None:
            super().__init__(terminal)
            self.title = title

    class VibeboxCommand(TerminalMessage):
        """The guest shell ran a vibebox command (``:new``, ``:exit``, ...; OSC 7777)."""

        def __init__(self, terminal: TerminalView, name: str) -> None:
            super().__init__(terminal)
            self.name = name

    class Disconnected(TerminalMessage):
        """The stream ended: the guest program exited or the connection dropped."""

        def __init__(self, terminal: TerminalView, reason: str) -> None:
            super().__init__(terminal)
            self.reason = reason

    class ReconnectRequested(TerminalMessage):
        """The user pressed Enter on a disconnected terminal."""

    class Bell(TerminalMessage):
        """The program rang the bell."""

    class Resized(TerminalMessage):
        """The terminal took a new size from its widget (and told its PTY)."""

        def __init__(self, terminal: TerminalView, columns: int, lines: int) -> None:
            super().__init__(terminal)
            self.columns = columns
            self.lines = lines

    def __init__(
        self,
        stream: ByteStream | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._stream: ByteStream | None = None
        self._worker: Worker[None] | None = None
        self._pending_stream = stream
        self._mouse_state = MouseState()
        self._typed = asyncio.Event()
        self._leaving = False  # ctrl+\ was typed; the focus has not moved yet
        self._held: list[events.Key] = []  # keys typed meanwhile (see on_key)

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

    async def resize_to(self, columns: int, lines: int) -> None:
        """Give the emulator and the PTY this size although the widget is not shown (a tab in
        the background follows the one on screen, so its programs draw for the right size)."""
        screen = self.emulator.screen
        columns, lines = max(1, columns), max(1, lines)
        if (columns, lines) == (screen.columns, screen.lines):
            return
        self.emulator.resize(columns, lines)
        self.history_offset = min(self.history_offset, len(self.emulator.screen.scrollback))
        if self._stream is not None and self.disconnect_reason is None:
            await self._resize_stream(self._stream)

    async def send(self, data: bytes) -> None:
        """Write bytes to the guest (as if typed); ignored while disconnected."""
        if self._stream is not None and self.disconnect_reason is None and data:
            self._echo_expected()
            try:
                await self._stream.write(data)
            except Exception as exc:  # a dropped connection: show it, never a traceback
                self._disconnected(str(exc) or type(exc).__name__)

    # -- lifecycle -----------------------------------------------------------------------

    def on_mount(self) -> None:
        self._apply_size()
        driver = self._raw_driver()
        if driver is not None:
            if driver.raw_target is None:
                driver.raw_target = self  # the focused terminal takes it over (on_focus)
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
        """Read, parse in slices, answer queries, post events, repaint what changed.

        While the pacer holds the next frame back (a flood), output is collected rather than
        parsed, up to :data:`DEFER_LIMIT` bytes, and parsed when the frame is due, a key is
        typed or no more came for :data:`~vibebox_tui.terminal.frames.IDLE_GAP` (the
        output paused: painted then too): a frame's worth of output is parsed in one go --
        as long chunks, whose lines mostly scroll off and are kept as the output itself
        (plain.py's ``find_flood``), where read by read every row was built as cells first,
        in longer slices once the flood path takes one (:data:`FLOOD_SLICE`). A stream
        that reads ahead on its own (:class:`ReadsAhead`) is not even asked until then, so
        the reads of a flood do not wake this loop one by one. In a key's echo window every
        read is parsed as it comes (the echo may be in it), but for plain output while a
        flood streams by (:meth:`_streams_by`), held for the frame all the same, up to
        :data:`ECHO_HOLD` bytes."""
        reason = ""
        pending: list[bytes] = []
        size = 0
        plain = True  # all of pending is plain output streaming by (plain_flow)
        held = b""  # the end of the last read, checked with the next one (plain_flow)
        read: asyncio.Future[bytes] | None = None
        take_ready = stream.take_ready if isinstance(stream, ReadsAhead) else None
        try:
            while True:
                self._deferred = bool(pending) and self._frame_waits(size, plain)
                if self._deferred:
                    # In an echo window every read is looked at as it comes (an echo may be
                    # in it); else the held output is collected once the frame is due.
                    echo = self._pacer.in_echo_window()
                    if read is None and take_ready is not None and not echo:
                        await self._sleep_until_frame()
                        more = take_ready()
                        if more:
                            self._pacer.arrived()
                            pending.append(more)
                            size += len(more)
                            flows, held = plain_flow(more, held)
                            plain = plain and flows
                            continue
                    else:
                        if read is None:
                            read = asyncio.ensure_future(stream.read())
                        streams_by = echo and plain  # a flood's output after a key
                        look = self._pacer.look_again(not streams_by)
                        await asyncio.wait((read,), timeout=look)
                        if streams_by and not read.done():
                            continue  # held until the pacer says the frame is due
                if pending and (read is None or not read.done()):
                    if not await self._parse(stream, b"".join(pending)):
                        return
                    pending.clear()
                    size = 0
                    plain = True
                    continue
                if read is None:
                    read = asyncio.ensure_future(stream.read())
                try:
                    data = await read
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    reason = str(exc) or type(exc).__name__
                    break
                finally:
                    read = None
                if stream is not self._stream:
                    return
                if not data:
                    reason = end_reason(stream)
                    break
                self._pacer.arrived()
                pending.append(data)
                size += len(data)
                flows, held = plain_flow(data, held)
                plain = plain and flows
            if pending and not await self._parse(stream, b"".join(pending)):
                return
        finally:
            self._deferred = False
            if read is not None:
                read.cancel()
        if stream is self._stream:
            self._output_changed()
            self._disconnected(reason)

    def _frame_waits(self, size: int, plain: bool) -> bool:
        """``size`` bytes of output may wait unparsed: the next frame is not due yet, and no
        key was just sent (an echo in the output is looked for at once) unless the output is
        ``plain`` (:func:`plain_flow`), a flood streams by (:meth:`_streams_by`) and less than
        :data:`ECHO_HOLD` waits."""
        pacer = self._pacer
        if size >= DEFER_LIMIT:
            return False
        if pacer.in_echo_window():
            return plain and size < ECHO_HOLD and self._streams_by() and pacer.wait(False) > 0
        return pacer.wait() > 0

    def _streams_by(self) -> bool:
        """Plain output (:func:`plain_flow`) that comes now only streams through the scroll
        region: a screenful or more streamed through it since the last frame, and the cursor
        is in it. Such output's rows are painted at the flood's frame, even in an echo window
        (the canvas's rule, ``Grid.changed_in_place``), so it need not be parsed at once
        either: parsed read by read, a flood's reads are too short for the parser's fast path,
        and with a key every 0.12 s they doubled the dashboard's CPU, which it
        took from the guest (``tests/bench/bench_flood.py``)."""
        screen = self.emulator.screen
        region = screen.streamed_region()
        return region is not None and region[0] <= screen.cursor.y <= region[1]

    async def _sleep_until_frame(self) -> None:
        """Until it is time to look at the held output again (the frame is due, or the
        output may have paused: :meth:`FramePacer.look_again`), or a key is sent (its echo
        paints at once)."""
        self._typed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._typed.wait(), self._pacer.look_again())

    async def _parse(self, stream: ByteStream, data: bytes) -> bool:
        """Feed ``data`` to the emulator in slices, answer, post events, repaint; False if
        ``stream`` was detached meanwhile."""
        self._deferred = False
        start, step = 0, FEED_SLICE
        while start < len(data):
            if start:
                await asyncio.sleep(0)  # let keys and repaints through
                if stream is not self._stream:
                    return False
            emulator = self.emulator
            try:
                emulator.feed(data[start : start + step])
            except Exception as exc:  # a parser bug must not freeze the session
                self.log.error(f"terminal: could not parse output: {exc!r}")
            start += step
            step = FLOOD_SLICE if emulator.flooded else FEED_SLICE
            if emulator.replies:
                await self.send(emulator.take_replies())
            if emulator.events:
                self._post_events()
        self._sync_input()
        self._output_changed()
        return True

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

    async def _size_changed(self) -> None:
        if self._stream is not None and self.disconnect_reason is None:
            await self._resize_stream(self._stream)
        screen = self.emulator.screen
        self.post_message(self.Resized(self, screen.columns, screen.lines))

    # -- input ---------------------------------------------------------------------------

    async def on_key(self, event: events.Key) -> None:
        key = event.key
        if key == FOCUS_OUT_KEY:
            # Let the app's own binding for this key (if any) decide where focus goes; if
            # nothing moved it by the next refresh, move it to the next widget.
            self._leaving = True
            self.call_after_refresh(self._focus_out_fallback)
            return
        event.stop()
        event.prevent_default()
        if self._leaving:
            # Typed right after ctrl+\ (as fast as a paste) and given to this terminal before
            # the focus moved: a key for the dashboard. It goes there once the focus has left
            # (on_blur), or to the guest after all if the focus stays (_focus_out_fallback).
            self._held.append(events.Key(key, event.character))
            return
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

    async def _focus_out_fallback(self) -> None:
        # The screen's focus, not has_focus: that one follows only once the Blur is handled.
        if self.screen.focused is self:
            self.screen.focus_next()
        if self.screen.focused is not self:
            if self._leaving:
                self._replay_held_keys()
            return
        # Nowhere else to go: the keys stay the guest's, those typed meanwhile too.
        driver = self._raw_driver()
        if driver is not None:
            driver.resume_raw_input()
        for key in self._take_held_keys():
            await self.on_key(key)

    def _replay_held_keys(self) -> None:
        """The focus left after ctrl+\\: the keys typed right after it go to the dashboard
        (to whatever has the focus now), in order."""
        for key in self._take_held_keys():
            self.app.post_message(key)

    def _take_held_keys(self) -> list[events.Key]:
        """The keys typed since ctrl+\\ (see on_key); the terminal is no longer leaving."""
        self._leaving = False
        held, self._held = self._held, []
        return held

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
        if driver is None or driver.raw_target is not self:
            return  # another terminal (a tab) types for the guest: its modes are the host's
        active = self.is_mounted and self.accepts_raw_input()
        emulator = self.emulator
        driver.mirror_modes(active and emulator.app_cursor, active and emulator.app_keypad)

    def send_keys_now(self, data: bytes) -> bool:
        """From the driver's input thread: typed ``data`` straight to the guest when nothing
        here changes it (see :class:`~vibebox_tui.terminal.input.RawInputTarget`); the app's
        loop then only starts the echo's window (:class:`_KeysSent`)."""
        stream = self._stream
        if (
            not isinstance(stream, WritesSoon)
            or self._leaving
            or self.history_offset
            or self.emulator.newline_mode
            or not self.accepts_raw_input()
        ):
            return False
        if not self.emulator.screen.in_alt and any(seq in data for seq in _SCROLLBACK_BYTES):
            return False
        stream.write_soon(data)
        self.post_message(self._KeysSent())
        return True

    class _KeysSent(Message, bubble=False):
        """The input thread sent keys to the guest (:meth:`TerminalView.send_keys_now`)."""

    def _on_terminal_view__keys_sent(self, message: _KeysSent) -> None:
        message.stop()
        self._echo_expected()

    def _echo_expected(self) -> None:
        """Keys went to the guest: what it echoes paints at once, even in a flood, and the
        output collected for the next frame is parsed now."""
        self._pacer.typed()
        self._typed.set()

    async def _on_raw_input(self, message: RawInput) -> None:
        try:
            await self._handle_raw_input(message)
        finally:
            message.handled()

    async def _handle_raw_input(self, message: RawInput) -> None:
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
            driver.raw_target = self  # of several terminals (tabs), keys go to the focused one
            driver.resume_raw_input()
        self._sync_input()
        self._refresh_row(self.emulator.screen.cursor.y)
        if self.emulator.focus_events:
            await self.send(b"\x1b[I")

    async def on_blur(self, event: events.Blur) -> None:
        if self._leaving:
            self._replay_held_keys()
        self._sync_input()
        self._refresh_row(self.emulator.screen.cursor.y)
        if self.emulator.focus_events:
            await self.send(b"\x1b[O")
