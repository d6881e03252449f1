"""The keys' short way: the dashboard's input thread sends typed keys to the guest itself
(``VibeboxDriver._give_raw`` -> ``TerminalView.send_keys_now``), without waiting for the app's
loop, which a flood keeps busy parsing and painting; whatever needs the app goes as a
``RawInput`` message, and no key ever passes one still on its way."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from data.keytable import GROUPS, KEY_TABLE
from tui.pilot_wait import wait_for
from tui.terminal_apps import KeyApp, in_key_group, raw_chunks, written_after

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import TerminalView
from vibebox_tui.terminal.input import Chunk, RawInput, VibeboxDriver


class SoonStream(MemoryStream):
    """A stream the input thread may write to (``WritesSoon``), as the IO thread's is; it
    counts the writes that came that way."""

    def __init__(self) -> None:
        super().__init__()
        self.soon = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def write_soon(self, data: bytes) -> None:
        assert self.loop is not None
        self.soon += 1
        self.loop.call_soon_threadsafe(self.written.extend, data)


class CountingView(TerminalView):
    """Counts the RawInput messages the app's loop handled."""

    def __init__(self, stream: MemoryStream) -> None:
        super().__init__(stream)
        self.messages = 0

    def _on_raw_input(self, message: RawInput) -> None:  # type: ignore[override]
        self.messages += 1  # Textual calls TerminalView's own handler too (each class's)


class SoonApp(KeyApp):
    def compose(self) -> Any:
        yield CountingView(self.stream)


def from_input_thread(driver: VibeboxDriver, chunks: list[Chunk]) -> None:
    """Give ``chunks`` the way the driver's input thread does: from a thread of its own."""
    thread = threading.Thread(target=driver._give_raw, args=(chunks,))
    thread.start()
    thread.join()


async def started(
    pilot: Any, app: SoonApp, stream: SoonStream, group: str = "normal"
) -> tuple[CountingView, Any]:
    """The app's view at a prompt, in the modes of the key table's ``group``, and a driver
    giving it raw input."""
    stream.loop = asyncio.get_running_loop()
    view = app.query_one(CountingView)
    driver = VibeboxDriver(app)  # never started: only its hand-over of raw input is used
    driver.raw_target = view
    await in_key_group(pilot, stream, view, group)
    return view, driver


async def test_typed_keys_go_from_the_input_thread_without_a_message() -> None:
    stream = SoonStream()
    app = SoonApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        view, driver = await started(pilot, app, stream)
        for key in (b"l", b"s", b"\x1b[A", b"\x1bb", b"\r"):
            from_input_thread(driver, [("keys", key)])
        await stream.wait_for(lambda: stream.written.endswith(b"\r"))
        assert bytes(stream.written) == b"ls\x1b[A\x1bb\r"
        assert (stream.soon, view.messages) == (5, 0)
        # the app's loop still learns of them: their echo paints at once
        await wait_for(pilot, lambda: view._pacer._typed_at > float("-inf"))


@pytest.mark.parametrize("group", list(GROUPS))
async def test_key_table_through_the_input_threads_short_way(group: str) -> None:
    """Every key of the table reaches the guest as the table says, whichever way it went
    (pastes re-encoded and shift+PgUp/PgDn kept by the widget, on the app's loop)."""
    stream = SoonStream()
    app = SoonApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        view, driver = await started(pilot, app, stream, group)
        failures = []
        for case in (c for c in KEY_TABLE if c.group == group):
            chunks = raw_chunks(case)
            before = len(stream.written)
            if chunks:
                from_input_thread(driver, chunks)
            for _ in range(3):
                await pilot.pause()
            got = await written_after(stream, before, case.guest)
            if got != case.guest:
                failures.append((case.name, case.guest, got))
            view.scroll_lines(-view.history_offset)
        assert not failures


async def test_keys_never_pass_a_message_still_on_its_way() -> None:
    stream = SoonStream()
    app = SoonApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        view, driver = await started(pilot, app, stream)
        # a paste needs the app's loop; the keys typed right after it wait behind it
        from_input_thread(driver, [("paste", b"pasted")])
        from_input_thread(driver, [("keys", b"x")])
        from_input_thread(driver, [("keys", b"y")])
        await stream.wait_for(lambda: stream.written.endswith(b"y"))
        assert bytes(stream.written) == b"pastedxy"
        assert stream.soon == 0 and view.messages == 3
        from_input_thread(driver, [("keys", b"z")])  # all handled: the short way again
        await stream.wait_for(lambda: stream.written.endswith(b"z"))
        assert stream.soon == 1 and view.messages == 3


async def test_keys_that_need_the_app_go_as_a_message() -> None:
    stream = SoonStream()
    app = SoonApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        view, driver = await started(pilot, app, stream)
        from_input_thread(driver, [("keys", b"\x1b[5;2~")])  # shift+PgUp: the scrollback
        await wait_for(pilot, lambda: view.history_offset > 0)
        from_input_thread(driver, [("keys", b"a")])  # scrolled back: the key returns the view
        await stream.wait_for(lambda: stream.written.endswith(b"a"))
        await wait_for(pilot, lambda: view.history_offset == 0)
        stream.feed(b"\x1b[20h")  # LNM: a typed CR goes as CR LF
        await wait_for(pilot, lambda: view.emulator.newline_mode)
        from_input_thread(driver, [("keys", b"\r")])
        await stream.wait_for(lambda: stream.written.endswith(b"\r\n"))
        assert bytes(stream.written) == b"a\r\n" and stream.soon == 0
        assert view.messages == 3
