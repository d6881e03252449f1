"""Pilot tests: the terminal's keys, as Textual key events and as the host terminal's bytes
(the key table in ``tests/data/keytable.py``), and what may take the keyboard from it."""

from __future__ import annotations

import pytest
from data.keytable import GROUPS, KEY_TABLE
from textual.widgets import Button
from tui.pilot_wait import DemoApp, osc_command, until_attached, wait_for
from tui.terminal_apps import KeyApp, in_key_group, raw_chunks, screen_text, written_after

from vibebox_core.streams import MemoryStream
from vibebox_tui.backend.demo import fake_id
from vibebox_tui.terminal import FOCUS_OUT_KEY, TerminalView
from vibebox_tui.terminal.input import RawInput

#: The dashboard's size in its Pilot tests (tests/tui/test_app.py).
DASHBOARD_SIZE = (100, 30)


# -- the key table (tests/data/keytable.py), through a running app ----------------------------


@pytest.mark.parametrize("group", list(GROUPS))
async def test_key_table_as_textual_key_events(group: str) -> None:
    stream = MemoryStream()
    app = KeyApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        await in_key_group(pilot, stream, term, group)
        failures = []
        for case in (c for c in KEY_TABLE if c.group == group and c.keys):
            before = len(stream.written)
            await pilot.press(*case.keys)
            got = await written_after(stream, before, case.guest)
            if got != case.guest:
                failures.append((case.name, case.guest, got))
        assert not failures


@pytest.mark.parametrize("group", list(GROUPS))
async def test_key_table_as_the_host_terminal_s_bytes(group: str) -> None:
    """What the dashboard's driver gives the terminal (RawInput) reaches the guest as the
    table says: unchanged, pastes re-encoded, shift+PgUp/PgDn kept on the main screen."""
    stream = MemoryStream()
    app = KeyApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        await in_key_group(pilot, stream, term, group)
        failures = []
        for case in (c for c in KEY_TABLE if c.group == group):
            before = len(stream.written)
            chunks = raw_chunks(case)
            if chunks:
                term.post_message(RawInput(chunks))
            await pilot.pause()
            got = await written_after(stream, before, case.guest)
            if got != case.guest:
                failures.append((case.name, case.guest, got))
            term.scroll_lines(-term.history_offset)
        assert not failures


async def test_raw_input_only_while_the_terminal_has_the_keyboard() -> None:
    stream = MemoryStream()
    app = KeyApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        assert term.accepts_raw_input()
        app.query_one(Button).focus()
        await pilot.pause()
        assert not term.accepts_raw_input()
        term.focus()
        await pilot.pause()
        assert term.accepts_raw_input()
        stream.feed_eof("Session exited")
        while term.disconnect_reason is None:
            await pilot.pause()
        assert not term.accepts_raw_input()
        term.post_message(RawInput([("keys", b"\r")]))  # Enter reconnects, as a key event does
        while ("reconnect",) not in app.messages:
            await pilot.pause()
        assert bytes(stream.written) == b""


async def test_shift_page_up_as_bytes_pages_the_scrollback() -> None:
    stream = MemoryStream()
    app = KeyApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        stream.feed(b"".join(b"line %d\r\n" % i for i in range(100)))
        while "line 99" not in screen_text(term):
            await pilot.pause()
        term.post_message(RawInput([("keys", b"a\x1b[5;2~")]))
        while term.history_offset == 0:
            await pilot.pause()
        assert term.history_offset == term.size.height - 1
        term.post_message(RawInput([("keys", b"b")]))
        await stream.wait_for(lambda: stream.written == b"ab")
        assert term.history_offset == 0  # typing returns to the live screen


# -- typing never lands nowhere: only a key moves the keyboard out of the terminal ------------


async def test_nothing_but_a_key_takes_the_keyboard_from_the_terminal(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=DASHBOARD_SIZE) as pilot:
        await until_attached(pilot, app)
        term, stream = app.terminal, backend.streams[fake_id(1)]
        assert app.focused is term
        stream.feed(osc_command(stream, "explain"))  # the inspector opens
        await wait_for(pilot, lambda: app.inspector.display and app.inspector.data is not None)
        app.notify("a notification")
        backend.set_state(fake_id(2), "running")  # a state change the poll brings
        backend.fail_list = True  # a poll that fails: an error notification
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        backend.fail_list = False
        await pilot.resize_terminal(80, 24)  # a resize, across a layout breakpoint
        await pilot.pause()
        await pilot.resize_terminal(*DASHBOARD_SIZE)
        await pilot.pause()
        assert app.focused is term and term.accepts_raw_input()
        await pilot.press(*":exit")
        await stream.wait_for(lambda: stream.written.endswith(b":exit"))
        await pilot.press(FOCUS_OUT_KEY)  # a key does move it
        await wait_for(pilot, lambda: app.focused is not term)
        assert not term.accepts_raw_input()


async def test_the_host_window_s_focus_reaches_programs_that_ask() -> None:
    stream = MemoryStream()
    app = KeyApp(stream)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(TerminalView)
        term.post_message(RawInput([("focus", b"\x1b[O"), ("keys", b"x")]))
        await stream.wait_for(lambda: stream.written == b"x")  # not asked: not reported
        stream.feed(b"\x1b[?1004h")
        while not term.emulator.focus_events:
            await pilot.pause()
        term.post_message(RawInput([("focus", b"\x1b[O"), ("focus", b"\x1b[I")]))
        await stream.wait_for(lambda: stream.written == b"x\x1b[O\x1b[I")
