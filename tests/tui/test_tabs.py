"""Pilot tests of the terminal's tabs on the fake backend: open, switch, close, titles, keys,
sizes, and the attachment that holds them."""

from __future__ import annotations

from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, until_attached, wait_for

from vibebox_core.errors import SupervisorError
from vibebox_core.streams import MemoryStream
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.base import Attachment
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.terminal import TerminalView
from vibebox_tui.widgets import SessionHeader, TerminalTabs
from vibebox_tui.widgets.tabs import MAX_TABS, TabBar

SIZE = (100, 30)
SID = fake_id(1)

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


def tabs_of(app: VibeboxApp) -> TerminalTabs:
    return app.query_one(TerminalTabs)


def attached_count(backend: FakeBackend) -> int | None:
    session = backend.session_for(demo_sessions()[0].directory)
    return session.attached if session is not None else None


def screen_text(view: TerminalView) -> str:
    return "\n".join(view.emulator.screen.display)


async def open_tab(pilot: Pilot[Any], app: VibeboxApp, backend: FakeBackend) -> MemoryStream:
    """``ctrl+\\`` then ``o``, as a user opens a tab; the new tab's stream."""
    before = len(backend.tab_streams[SID])
    await pilot.press("ctrl+backslash", "o")
    await wait_for(pilot, lambda: tabs_of(app).count == before + 2)
    await wait_for(pilot, lambda: app.focused is tabs_of(app).active)
    return backend.tab_streams[SID][-1]


async def test_a_new_tab_is_a_terminal_of_its_own_and_takes_the_keyboard(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        tabs = tabs_of(app)
        assert tabs.count == 1 and not tabs.bar.display  # one tab: no tab bar
        attached = attached_count(backend)
        second = await open_tab(pilot, app, backend)
        assert second is not first and tabs.active_index == 1 and tabs.bar.display
        # Its own shell: the prompt it printed shows in the new tab only.
        await wait_for(pilot, lambda: "vibebox" in screen_text(tabs.active))
        # Still one attachment: the fake counts as the supervisor does (not the terminals).
        assert attached_count(backend) == attached
        # Keys reach the shown tab only.
        await pilot.press("l", "s", "enter")
        await second.wait_for(lambda: bytes(second.written).endswith(b"ls\r"))
        assert b"ls" not in bytes(first.written)
        # Back to tab 1 (ctrl+\ then 1): the keyboard goes with it.
        await pilot.press("ctrl+backslash", "1")
        await wait_for(pilot, lambda: app.focused is tabs.views[0])
        assert tabs.active_index == 0 and tabs.views[0].display and not tabs.views[1].display
        await pilot.press("p", "w", "d", "enter")
        await first.wait_for(lambda: bytes(first.written).endswith(b"pwd\r"))
        assert b"pwd" not in bytes(second.written)
        # ] and [ go round.
        await pilot.press("ctrl+backslash", "right_square_bracket")
        await wait_for(pilot, lambda: app.focused is tabs.views[1])
        await pilot.press("ctrl+backslash", "right_square_bracket")
        await wait_for(pilot, lambda: app.focused is tabs.views[0])
        await pilot.press("ctrl+backslash", "left_square_bracket")
        await wait_for(pilot, lambda: app.focused is tabs.views[1])


async def test_keys_typed_right_after_ctrl_backslash_are_the_dashboards(
    demo_app: DemoApp,
) -> None:
    """``ctrl+\\`` then ``1`` as fast as a paste: both reach the terminal before the focus
    has moved, and the ``1`` still switches tabs instead of reaching the guest."""
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        tabs = tabs_of(app)
        second = await open_tab(pilot, app, backend)
        await pilot.press("a")
        await second.wait_for(lambda: bytes(second.written).endswith(b"a"))
        for key, character in (("ctrl+backslash", "\x1c"), ("1", "1")):
            app.post_message(events.Key(key, character))  # no wait between them
        await wait_for(pilot, lambda: app.focused is tabs.views[0])
        assert tabs.active_index == 0 and bytes(second.written).endswith(b"a")
        await pilot.press("p", "enter")  # and the keyboard is the shown tab's again
        first = backend.streams[SID]
        await first.wait_for(lambda: bytes(first.written).endswith(b"p\r"))


async def test_tab_keys_are_the_guests_while_the_terminal_has_the_focus(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        await pilot.press("o", "w", "1", "right_square_bracket")
        await first.wait_for(lambda: bytes(first.written).endswith(b"ow1]"))
        assert tabs_of(app).count == 1 and backend.tab_streams[SID] == []


async def test_each_tab_keeps_its_own_screen_and_scrollback(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        tabs = tabs_of(app)
        backend.streams[SID].feed(b"".join(b"first %d\r\n" % n for n in range(60)))
        await wait_for(pilot, lambda: len(tabs.views[0].emulator.screen.scrollback) > 20)
        second = await open_tab(pilot, app, backend)
        second.feed(b"\r\nonly in two\r\n")
        await wait_for(pilot, lambda: "only in two" in screen_text(tabs.views[1]))
        assert "first" not in screen_text(tabs.views[1])
        assert not tabs.views[1].emulator.screen.scrollback
        assert "only in two" not in screen_text(tabs.views[0])
        # Output keeps coming in a tab that is not shown.
        backend.streams[SID].feed(b"background done\r\n")
        await wait_for(pilot, lambda: "background done" in screen_text(tabs.views[0]))


async def test_the_shown_tabs_title_is_the_header_title_escaped(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        header, tabs = app.query_one(SessionHeader), tabs_of(app)
        backend.streams[SID].feed(b"\x1b]2;vim notes.txt\x07")
        await wait_for(pilot, lambda: header.title == "vim notes.txt")
        second = await open_tab(pilot, app, backend)
        # A new tab has no title yet; the header follows the shown tab.
        await wait_for(pilot, lambda: header.title == "")
        second.feed(b"\x1b]0;evil\x08\x08\rgood \xe2\x80\xaered [b]x[/b]\x07")
        await wait_for(pilot, lambda: "evil" in header.title)
        for shown in (str(header.render()), str(tabs.bar.render())):
            # Escaped, never markup: no control or bidi character reaches the host terminal.
            assert "evil\\x08\\x08\\rgood" in shown, shown
            assert not any(c in shown for c in "\x08\r\u202e")
        assert "\\u202ered [b]x[/b]" in str(header.render())  # text, never markup
        assert "1  vim notes.txt" in str(tabs.bar.render())
        # A title set in a tab that is not shown does not take the header.
        backend.streams[SID].feed(b"\x1b]2;make test\x07")
        await wait_for(pilot, lambda: "make test" in str(tabs.bar.render()))
        assert "evil" in header.title
        await pilot.press("ctrl+backslash", "1")
        await wait_for(pilot, lambda: header.title == "make test")


async def test_closing_a_tab_ends_its_shell_and_shows_another(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        tabs = tabs_of(app)
        second = await open_tab(pilot, app, backend)
        third = await open_tab(pilot, app, backend)
        await pilot.press("ctrl+backslash", "2")
        await wait_for(pilot, lambda: app.focused is tabs.views[1])
        await pilot.press("ctrl+backslash", "w")
        await wait_for(pilot, lambda: second.closed and tabs.count == 2)
        # The tab after it moves up; the keyboard stays in a terminal.
        await wait_for(pilot, lambda: app.focused is tabs.active)
        assert tabs.active.stream is third and not first.closed and not third.closed
        await pilot.press("ctrl+backslash", "w")
        await wait_for(pilot, lambda: third.closed and tabs.count == 1 and not tabs.bar.display)
        await wait_for(pilot, lambda: app.focused is tabs.active)
        assert tabs.active.stream is first
        # The last tab: like a shell that ended -- the attachment stays, Enter reconnects.
        await pilot.press("ctrl+backslash", "w")
        await wait_for(pilot, lambda: first.closed and tabs.active.disconnect_reason is not None)
        assert app.attachment is not None and tabs.count == 1
        await wait_for(pilot, lambda: any("reconnect" in n.message for n in app._notifications))
        await pilot.press("t", "enter")
        await wait_for(pilot, lambda: backend.streams[SID] is not first)
        await until_attached(pilot, app)
        await wait_for(pilot, lambda: tabs.active.disconnect_reason is None)


async def test_a_tab_whose_shell_ends_closes_the_last_one_stays(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        tabs = tabs_of(app)
        second = await open_tab(pilot, app, backend)
        second.feed_eof("Session exited with status 0")
        await wait_for(pilot, lambda: tabs.count == 1 and second.closed)
        await wait_for(pilot, lambda: any("Tab 2 closed" in n.message for n in app._notifications))
        await wait_for(pilot, lambda: app.focused is tabs.active)
        assert tabs.active.stream is first and tabs.active.disconnect_reason is None
        first.feed_eof("Session exited with status 0")
        await wait_for(pilot, lambda: tabs.active.disconnect_reason is not None)
        assert tabs.count == 1 and app.attachment is not None


async def test_every_tabs_pty_follows_the_window(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        tabs = tabs_of(app)
        second = await open_tab(pilot, app, backend)
        shown = tabs.active
        # With two tabs the bar takes a row: both PTYs got the terminal's size.
        size = (shown.size.width, shown.size.height)
        await wait_for(pilot, lambda: second.resizes[-1:] == [size])
        await wait_for(pilot, lambda: first.resizes[-1:] == [size])
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: (shown.size.width, shown.size.height) != size)
        size = (shown.size.width, shown.size.height)
        await wait_for(pilot, lambda: second.resizes[-1:] == [size])
        await wait_for(pilot, lambda: first.resizes[-1:] == [size])  # not shown, resized too
        assert tabs.views[0].emulator.screen.columns == size[0]
        # Back to one tab: the bar's row comes back to the terminal.
        await pilot.press("ctrl+backslash", "w")
        await wait_for(pilot, lambda: tabs.count == 1)
        await wait_for(pilot, lambda: first.resizes[-1:] == [(size[0], size[1] + 1)])


async def test_tabs_need_an_attached_terminal_and_stop_at_nine(demo_app: DemoApp) -> None:
    app, backend = demo_app(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("o")
        await wait_for(
            pilot, lambda: any("No session attached" in n.message for n in app._notifications)
        )
        assert tabs_of(app).count == 1
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        for _ in range(MAX_TABS - 1):
            await open_tab(pilot, app, backend)
        app.action_new_tab()  # the palette's way
        await wait_for(pilot, lambda: any("At most 9" in n.message for n in app._notifications))
        assert tabs_of(app).count == MAX_TABS
        await pilot.press("ctrl+backslash", "9")
        await wait_for(pilot, lambda: tabs_of(app).active_index == 8)


async def test_a_click_on_a_tab_shows_it(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await open_tab(pilot, app, backend)
        await pilot.click(TabBar, offset=(2, 0))
        await wait_for(pilot, lambda: tabs_of(app).active_index == 0)


async def test_leaving_closes_every_tab_and_detaches_once(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[SID]
        attached = attached_count(backend)
        second = await open_tab(pilot, app, backend)
        third = await open_tab(pilot, app, backend)
        await pilot.press("ctrl+backslash", "q")
        await wait_for(pilot, lambda: first.closed and second.closed and third.closed)
    assert attached is not None and attached_count(backend) == attached - 1  # released once


async def test_the_attachment_opens_closes_and_refuses_tabs() -> None:
    first, released = MemoryStream(), []
    opened: list[MemoryStream] = []

    async def opener(cols: int, rows: int) -> MemoryStream:
        opened.append(MemoryStream())
        return opened[-1]

    async def release() -> None:
        released.append(True)

    row = demo_sessions()[0]
    attachment = Attachment(row, first, release, opener=opener)
    await attachment.open_terminal(80, 24)
    await attachment.open_terminal(80, 24)
    a, b = opened
    await attachment.close_terminal(a)
    assert a.closed and not b.closed
    await attachment.close()
    assert b.closed and first.closed and released == [True]
    with pytest.raises(SupervisorError, match="was closed"):
        await attachment.open_terminal(80, 24)
    with pytest.raises(SupervisorError, match="opens no more terminals"):
        await Attachment(row, MemoryStream()).open_terminal(80, 24)


class StubDriver:
    """What the terminal asks of the dashboard's driver (terminal/input.py), recorded."""

    def __init__(self) -> None:
        self.raw_target: object = None
        self.modes: list[tuple[bool, bool]] = []

    def resume_raw_input(self) -> None:
        pass

    def mirror_modes(self, app_cursor: bool, app_keypad: bool) -> None:
        self.modes.append((app_cursor, app_keypad))


async def test_the_host_s_raw_keys_and_modes_follow_the_shown_tab(
    demo_app: DemoApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = StubDriver()
    monkeypatch.setattr(TerminalView, "_raw_driver", lambda self: driver)
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        tabs = tabs_of(app)
        await wait_for(pilot, lambda: driver.raw_target is tabs.views[0])
        first = backend.streams[SID]
        second = await open_tab(pilot, app, backend)
        # The driver gives the host's bytes to the focused tab only.
        assert driver.raw_target is tabs.views[1] and tabs.views[1].accepts_raw_input()
        assert not tabs.views[0].accepts_raw_input()
        # A program in the tab that is not shown changes no host mode; the shown one's does.
        driver.modes.clear()
        first.feed(b"\x1b[?1h\x1b=")
        await wait_for(pilot, lambda: tabs.views[0].emulator.app_cursor)
        await pilot.pause(0.05)
        assert (True, True) not in driver.modes
        second.feed(b"\x1b[?1h")
        await wait_for(pilot, lambda: driver.modes[-1:] == [(True, False)])
        await pilot.press("ctrl+backslash", "1")
        await wait_for(pilot, lambda: driver.raw_target is tabs.views[0])
        await wait_for(pilot, lambda: driver.modes[-1:] == [(True, True)])


async def test_the_first_tab_closes_like_any_other(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first, header, tabs = backend.streams[SID], app.query_one(SessionHeader), tabs_of(app)
        second = await open_tab(pilot, app, backend)
        second.feed(b"\x1b]2;htop\x07")
        await pilot.press("ctrl+backslash", "1")
        await wait_for(pilot, lambda: app.focused is tabs.views[0])
        await pilot.press("ctrl+backslash", "w")
        await wait_for(pilot, lambda: first.closed and tabs.count == 1)
        await wait_for(pilot, lambda: app.focused is tabs.active and header.title == "htop")
        assert tabs.active.stream is second and app.attachment is not None
        await pilot.press("e", "n", "v")
        await second.wait_for(lambda: bytes(second.written).endswith(b"env"))
        await pilot.press("ctrl+backslash", "q")
        await wait_for(pilot, lambda: second.closed)
