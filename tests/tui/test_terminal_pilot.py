"""Pilot tests: the terminal widget wired to an in-memory PTY inside a real Textual app."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Button
from tui.terminal_apps import TermApp, rendered_row, screen_text

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import FOCUS_OUT_KEY, TerminalView


async def test_typing_reaches_the_stream() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.press("l", "s", "enter", "ctrl+c", "up", "tab", "f5")
        await stream.wait_for(lambda: stream.written.endswith(b"\x1b[15~"))
        assert bytes(stream.written) == b"ls\r\x03\x1b[A\t\x1b[15~"


async def test_output_appears_on_screen_and_is_rendered() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"hello \x1b[31mred\x1b[0m world\r\n$ ")
        await pilot.pause()
        while "world" not in screen_text(term):
            await pilot.pause()
        assert rendered_row(term, 0).startswith("hello red world")
        strip = term.render_line(0)
        red = [seg for seg in strip if seg.text == "red"]
        assert red and red[0].style is not None and red[0].style.color is not None


async def test_resizing_the_app_resizes_the_stream() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        await stream.wait_for(lambda: bool(stream.resizes))
        first = stream.resizes[-1]
        assert first == (term.size.width, term.size.height)
        await pilot.resize_terminal(100, 30)
        await stream.wait_for(lambda: stream.resizes[-1] != first)
        assert stream.resizes[-1] == (term.size.width, term.size.height)
        assert term.emulator.screen.columns == term.size.width == 100
        assert term.emulator.screen.lines == term.size.height


async def test_a_size_change_without_a_resize_event_still_reaches_the_pty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Textual can change a widget's size without a Resize event (hiding the focused
    inspector did); the next paint at the new size must still resize the emulator and PTY."""
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        await stream.wait_for(lambda: bool(stream.resizes))
        first = stream.resizes[-1]
        assert first == (term.size.width, term.size.height) and first[0] == 60

        async def lost(self: TerminalView, event: events.Resize) -> None:
            return None

        monkeypatch.setattr(TerminalView, "on_resize", lost)  # Textual looks it up on the class
        await pilot.resize_terminal(90, 30)
        await stream.wait_for(lambda: stream.resizes[-1] != first)
        shown = (term.size.width, term.size.height)
        assert stream.resizes[-1] == shown and shown[0] == 90
        assert (term.emulator.screen.columns, term.emulator.screen.lines) == shown


class HiddenTermApp(App[None]):
    """A terminal never shown yet, with nothing attached (the dashboard at start-up)."""

    def compose(self) -> ComposeResult:
        term = TerminalView(id="term")
        term.display = False
        yield term


async def test_a_late_start_resize_does_not_undo_the_shown_size() -> None:
    """Attached while hidden (the dashboard shows boot progress meanwhile), then shown: the
    start-up resize may run after the resize of being shown; the PTY must end at the shown
    size, not the hidden default (the shell would think it is 80x24)."""
    app = HiddenTermApp()
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(TerminalView)
        await pilot.pause()
        assert (term.emulator.screen.columns, term.emulator.screen.lines) == (80, 24)
        held: list[Coroutine[Any, Any, None]] = []
        run_worker = term.run_worker

        def hold_resizes(work: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(work, "__name__", "") == "_resize_stream":
                held.append(work)  # run it late, below
                return None
            return run_worker(work, *args, **kwargs)

        term.run_worker = hold_resizes  # type: ignore[method-assign]
        stream = MemoryStream()
        term.attach(stream)
        term.display = True
        await stream.wait_for(lambda: bool(stream.resizes))  # the shown size, from on_resize
        assert len(held) == 1
        await held[0]
        assert stream.resizes[-1] == (term.size.width, term.size.height) == (100, 30)


async def test_queries_are_answered_and_messages_posted() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        token = stream.command_token.encode()
        stream.feed(b"\x1b]2;my title\x07ab\x1b[6n\x1b]7777;vibebox-command=new;" + token + b"\x07")
        await stream.wait_for(lambda: b"R" in stream.written)
        assert bytes(stream.written) == b"\x1b[1;3R"
        while len(app.messages) < 2:
            await pilot.pause()
        assert ("title", "my title") in app.messages
        assert ("command", "new") in app.messages
        assert "vibebox-command" not in screen_text(app.query_one(TerminalView))


async def test_disconnect_shows_state_and_enter_requests_reconnect() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"bye\r\n")
        stream.feed_eof("Session exited with status 0")
        while not any(m[0] == "disconnected" for m in app.messages):  # type: ignore[index]
            await pilot.pause()
        assert ("disconnected", "Session exited with status 0") in app.messages
        assert "press Enter to reconnect" in rendered_row(term, term.size.height - 1)
        await pilot.press("x", "enter")
        while ("reconnect",) not in app.messages:
            await pilot.pause()
        assert bytes(stream.written) == b""
        fresh = MemoryStream()
        term.attach(fresh)
        await pilot.press("y")
        await fresh.wait_for(lambda: fresh.written == b"y")
        assert term.disconnect_reason is None


async def test_focus_out_key_leaves_the_terminal() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        assert app.focused is app.query_one(TerminalView)
        await pilot.press(FOCUS_OUT_KEY)
        # mypy keeps app.focused narrowed to the TerminalView across the key press
        assert app.focused is app.query_one(Button)  # type: ignore[comparison-overlap]
        assert bytes(stream.written) == b""


class OnlyTerminalApp(TermApp):
    """A terminal and nothing else to focus."""

    def compose(self) -> ComposeResult:
        yield TerminalView(self.stream, id="term")


async def test_keys_right_after_the_focus_out_key_follow_the_focus() -> None:
    """``ctrl+\\`` and the next keys as fast as a paste reach the terminal before the focus
    moves: they go where the focus went (the button: not the guest), or to the guest when
    there is nowhere else to go, in order."""
    for app_class, expected in ((TermApp, b""), (OnlyTerminalApp, b"xy")):
        stream = MemoryStream()
        app = app_class(stream)
        async with app.run_test(size=(60, 20)) as pilot:
            term = app.query_one(TerminalView)
            assert app.focused is term
            for key, character in ((FOCUS_OUT_KEY, "\x1c"), ("x", "x"), ("y", "y")):
                app.post_message(events.Key(key, character))  # no wait between them
            for _ in range(10):
                await pilot.pause(0.02)
            assert bytes(stream.written) == expected
            assert (app.focused is term) == (app_class is OnlyTerminalApp)


async def test_scrollback_pages_and_returns() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"".join(b"line %d\r\n" % i for i in range(100)))
        while "line 99" not in screen_text(term):
            await pilot.pause()
        await pilot.press("shift+pageup")
        assert term.history_offset == term.size.height - 1
        # live top row shows line 101 - height; one page back is height - 1 lines earlier
        top = 101 - term.size.height - (term.size.height - 1)
        assert rendered_row(term, 0).startswith(f"line {top} ")
        assert rendered_row(term, 0).rstrip().endswith("lines back · shift+pagedown returns")
        await pilot.press("shift+pagedown")
        assert term.history_offset == 0
        await pilot.press("shift+pageup", "a")
        assert term.history_offset == 0  # typing returns to the live screen
        await stream.wait_for(lambda: stream.written == b"a")


async def test_cursor_keys_follow_the_programs_mode() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        await pilot.press("up")
        await stream.wait_for(lambda: stream.written == b"\x1b[A")
        stream.feed(b"\x1b[?1h")
        while not term.emulator.app_cursor:
            await pilot.pause()
        await pilot.press("up", "ctrl+right")
        await stream.wait_for(lambda: stream.written.endswith(b"\x1b[1;5C"))
        assert bytes(stream.written) == b"\x1b[A\x1bOA\x1b[1;5C"


async def test_paste_is_bracketed_only_when_asked() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        term.post_message(events.Paste("one\ntwo"))
        await stream.wait_for(lambda: stream.written == b"one\rtwo")
        stream.feed(b"\x1b[?2004h")
        while not term.emulator.bracketed_paste:
            await pilot.pause()
        term.post_message(events.Paste("x"))
        await stream.wait_for(lambda: stream.written.endswith(b"\x1b[201~"))
        assert bytes(stream.written) == b"one\rtwo\x1b[200~x\x1b[201~"


async def test_scrollback_keys_reach_full_screen_programs() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"".join(b"%d\r\n" % i for i in range(50)) + b"\x1b[?1049h")
        while not term.emulator.screen.in_alt:
            await pilot.pause()
        await pilot.press("shift+pageup")
        await stream.wait_for(lambda: stream.written == b"\x1b[5;2~")
        assert term.history_offset == 0


async def test_mouse_goes_to_programs_that_track_it_else_scrolls_back() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"".join(b"%d\r\n" % i for i in range(50)))
        while "49" not in screen_text(term):
            await pilot.pause()
        term.post_message(events.MouseScrollUp(term, 1, 1, 0, 0, 0, False, False, False))
        await pilot.pause()
        assert term.history_offset == 3
        term.post_message(events.MouseScrollDown(term, 1, 1, 0, 0, 0, False, False, False))
        await pilot.pause()
        assert term.history_offset == 0
        stream.feed(b"\x1b[?1000h\x1b[?1006h")
        while 1000 not in term.emulator.mouse_modes or 1006 not in term.emulator.mouse_modes:
            await pilot.pause()
        await pilot.click(TerminalView, offset=(3, 2))
        await stream.wait_for(lambda: stream.written.endswith(b"m"))
        assert bytes(stream.written) == b"\x1b[<0;4;3M\x1b[<0;4;3m"


async def test_synchronized_update_holds_the_repaint_until_the_frame_ends() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"\x1b[?2026hframe")
        while "frame" not in screen_text(term):
            await pilot.pause()
        assert term._sync_since is not None  # held
        stream.feed(b" done\x1b[?2026l")
        while "done" not in screen_text(term):
            await pilot.pause()
        assert term._sync_since is None  # painted


async def test_cursor_moves_without_output_are_repainted() -> None:
    stream = MemoryStream()
    app = TermApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"$ abc")
        while "abc" not in screen_text(term):
            await pilot.pause()
        await pilot.pause()
        painted: list[int] = []
        original = term.render_line

        def spy(y: int) -> Strip:
            painted.append(y)
            return original(y)

        term.render_line = spy  # type: ignore[method-assign]
        stream.feed(b"\x08\x08")  # the shell moves the cursor left, draws nothing
        while term.emulator.screen.cursor.x != 3:
            await pilot.pause()
        for _ in range(20):  # a few frames
            if 0 in painted:
                break
            await pilot.pause(0.01)
        assert 0 in painted
