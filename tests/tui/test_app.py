"""Pilot tests of the dashboard on the fake backend: every binding, command and dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette
from tui.pilot_wait import (
    DemoApp,
    booting_app,
    browser_text,
    centre,
    osc_command,
    until_attached,
    until_booting,
    wait_for,
)

from vibebox_core.errors import VMError
from vibebox_core.progress import ProgressEvent
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.base import SessionRow
from vibebox_tui.backend.demo import fake_id
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.layout import terminal_area
from vibebox_tui.screens import ConfirmScreen, ErrorScreen, HelpScreen
from vibebox_tui.terminal import TerminalView
from vibebox_tui.widgets import BootProgress, Inspector, SessionBrowser, SessionHeader

SIZE = (100, 30)

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


# -- start-up --------------------------------------------------------------------------------


async def test_startup_attaches_to_the_project_session(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        sid = fake_id(1)
        assert app.focused is app.query_one(TerminalView)
        header = app.query_one(SessionHeader)
        assert (header.project, header.session_id, header.state) == ("webshop", sid, "running")
        stream = backend.streams[sid]
        await pilot.press("l", "s", "enter")
        await stream.wait_for(lambda: bytes(stream.written).endswith(b"ls\r"))
        # Letter keys reach the guest, not the app's bindings.
        await pilot.press("i")
        await stream.wait_for(lambda: bytes(stream.written).endswith(b"i"))
        assert not app.query_one(Inspector).display
        # The PTY got the terminal's size, and the last size it got is the one shown (a stale
        # default sent after the real size would leave the shell at 80x24).
        await stream.wait_for(lambda: bool(stream.resizes))
        await pilot.pause(0.1)
        view = app.query_one(TerminalView)
        assert view.size.width < SIZE[0]
        assert stream.resizes[-1] == (view.size.width, view.size.height), stream.resizes


async def test_startup_creates_a_session_for_a_new_directory(tmp_path: Path) -> None:
    backend = FakeBackend([], project=tmp_path / "fresh")
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        assert backend.session_for(tmp_path / "fresh") is not None
        await wait_for(pilot, lambda: "fresh" in browser_text(app))


async def test_boot_progress_shows_steps_and_console_tail(demo_app: DemoApp) -> None:
    app, _, hold = booting_app(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        progress = await until_booting(pilot, app)
        assert centre(app) == "progress"
        text = progress.render_steps().plain
        assert "✓ preparing session" in text and "▸ waiting for SSH" in text
        assert "14.8s" in text
        progress.focus()
        await pilot.press("ctrl+o")
        await wait_for(
            pilot,
            lambda: "Debian GNU/Linux 12" in str(progress.query_one("#progress-console").render()),
        )
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: not progress.console_shown)
        hold.set()
        await until_attached(pilot, app)


async def test_keys_typed_while_booting_reach_the_shell_and_act_on_nothing(
    demo_app: DemoApp,
) -> None:
    app, backend, hold = booting_app(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        progress = await until_booting(pilot, app)
        progress.focus()
        # n then y would recreate the session, q would quit, i/s/t/? move things around.
        await pilot.press(*"sqlite3 nvm y", "backspace", "x", "enter", "i", "q", "?")
        await wait_for(pilot, lambda: progress.typed_ahead == "sqlite3 nvm x\riq?")
        assert "typed ahead, for the shell: sqlite3 nvm x⏎iq?" in progress.render_steps().plain
        assert app.return_code is None and app.screen is app.screen_stack[0]
        assert not backend.recreated and not app.query_one(Inspector).display
        assert app.focused is progress
        hold.set()
        await until_attached(pilot, app)
        assert app.attachment is not None
        stream = backend.streams[app.attachment.session.id]
        await stream.wait_for(lambda: bytes(stream.written).startswith(b"sqlite3 nvm x\riq?"))
        assert progress.typed_ahead == ""


async def test_fatal_startup_error_shows_dialog_then_exits_1(demo_app: DemoApp) -> None:
    app, _ = demo_app()
    backend = app.backend
    assert isinstance(backend, FakeBackend)
    backend.set_state(fake_id(1), "shut off")
    backend.fail_attach = VMError(
        "The VM did not boot within 120 s", hint='Set accel = "tcg" in vibebox.toml'
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        screen = app.screen
        assert isinstance(screen, ErrorScreen)
        assert "did not boot" in screen.message and "accel" in screen.hint
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1


async def test_error_after_startup_is_a_dialog_not_an_exit(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.fail_attach = VMError("libvirt refused to start the VM", hint="Check libvirtd")
        browser = app.query_one(SessionBrowser)
        browser.focus()
        browser.highlighted = 1  # ml-notebooks (shut off)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ErrorScreen))
        assert app.return_code is None
        assert centre(app) == "idle"


# -- session browser -------------------------------------------------------------------------


async def test_empty_index_shows_a_hint() -> None:
    app = VibeboxApp(FakeBackend([]), live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "No sessions yet" in browser_text(app)
        assert centre(app) == "idle"
        assert app.focused is app.query_one(SessionBrowser)


async def test_browser_lists_every_session_with_state_and_reason(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        # The demo's other vibebox and ours.
        await wait_for(pilot, lambda: "2 att." in browser_text(app))
        text = browser_text(app)
        for name in ("webshop", "ml-notebooks", "old-api", "dotfiles"):
            assert name in text
        assert "broken" in text and "disk.qcow2 is missing" in text
        assert "shut off" in text
        assert fake_id(1)[:8] in text and "2026-11-27 10:15" in text
        assert fake_id(1)[:9] not in text  # ids that differ in 8 digits are shown with 8
        # Live: a state change shows without a restart.
        backend.set_state(fake_id(4), "running")
        await wait_for(
            pilot,
            lambda: "dotfiles" in browser_text(app) and browser_text(app).count("running") == 2,
        )


async def test_enter_on_a_broken_session_explains_why(demo_app: DemoApp) -> None:
    app, _ = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        browser = app.query_one(SessionBrowser)
        browser.focus()
        await wait_for(pilot, lambda: browser.option_count == 4)
        browser.highlighted = 3  # old-api, sorted by last active
        assert browser.selected_session is not None
        assert browser.selected_session.state == "broken"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "disk.qcow2" in app.screen.message  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert app.attachment is not None and app.attachment.session.id == fake_id(1)


async def test_a_failing_index_is_a_notification_and_recovers(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.fail_list = True
        await wait_for(pilot, lambda: any("damaged" in n.message for n in app._notifications))
        assert not isinstance(app.screen, ErrorScreen)
        backend.fail_list = False
        backend.set_state(fake_id(2), "running")
        await wait_for(pilot, lambda: browser_text(app).count("running") == 2)


# -- vibebox commands ------------------------------------------------------------------------


async def test_command_help_lists_every_command(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.streams[fake_id(1)].feed(osc_command(backend.streams[fake_id(1)], "help"))

        def help_text() -> str:
            if not isinstance(app.screen, HelpScreen):
                return ""
            return "\n".join(str(w.render()) for w in app.screen.query(".command"))

        await wait_for(pilot, lambda: ":help" in help_text())  # shown, and its rows mounted
        text = help_text()
        for name in (":new", ":exit", ":explain", ":help"):
            assert name in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_command_text_merely_displayed_does_nothing(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        stream.feed(b"$ cat notes.txt\r\n:exit :new :explain :help\r\n$ ")
        await wait_for(pilot, lambda: ":exit" in "".join(app.terminal.emulator.screen.display))
        await pilot.pause(0.1)
        assert app.return_code is None and app.screen is app.screen_stack[0]
        assert not app.query_one(Inspector).display


async def test_unknown_command_is_a_warning(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.streams[fake_id(1)].feed(osc_command(backend.streams[fake_id(1)], "frobnicate"))
        await wait_for(pilot, lambda: any("frobnicate" in n.message for n in app._notifications))


# -- bindings --------------------------------------------------------------------------------


async def test_bindings_outside_the_terminal(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.press("ctrl+backslash")
        await wait_for(pilot, lambda: app.focused is not app.terminal)
        await pilot.press("i")
        await wait_for(pilot, lambda: app.query_one(Inspector).display)
        await pilot.press("i")
        await wait_for(pilot, lambda: not app.query_one(Inspector).display)
        # On a narrow screen the inspector took the browser's place (and the focus); hiding
        # it returns to the terminal.
        assert app.focused is app.terminal
        await pilot.press("ctrl+backslash", "question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.click("#close")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("t")
        await wait_for(pilot, lambda: app.focused is app.terminal)
        await pilot.press("ctrl+backslash", "s")
        await wait_for(pilot, lambda: isinstance(app.focused, SessionBrowser))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert backend.recreated == []


async def test_footer_hides_letter_bindings_inside_the_terminal(demo_app: DemoApp) -> None:
    app, _ = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        assert app.check_action("toggle_inspector", ()) is False
        assert app.check_action("leave_terminal", ()) is True
        await pilot.press("ctrl+backslash")
        await wait_for(pilot, lambda: app.check_action("toggle_inspector", ()) is True)
        assert app.check_action("leave_terminal", ()) is False


async def test_ctrl_p_goes_to_the_guest_in_the_terminal_and_opens_the_palette_outside(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        await pilot.press("ctrl+p")
        await stream.wait_for(lambda: bytes(stream.written).endswith(b"\x10"))
        assert not isinstance(app.screen, CommandPalette)
        await pilot.press("ctrl+backslash", "ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "New session (:new)",
            "Explain (:explain)",
            "Help (:help)",
            "Exit (:exit)",
            "Delete the selected session",
            "Attach to the selected session",
            "Toggle inspector",
            "Console log",
            "Focus terminal",
            "Focus sessions",
        ):
            assert title in titles
        await pilot.press(*"explain")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(Inspector).display)


async def test_disconnect_then_enter_reconnects(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = backend.streams[fake_id(1)]
        first.feed_eof("Session exited with status 0")
        await wait_for(pilot, lambda: app.terminal.disconnect_reason is not None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: backend.streams[fake_id(1)] is not first)
        await until_attached(pilot, app)


async def test_usable_at_80x24(demo_app: DemoApp) -> None:
    app, _ = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_attached(pilot, app)
        assert app.terminal.size.width >= 40
        await pilot.press("ctrl+backslash", "i")
        browser = app.query_one(SessionBrowser)
        await wait_for(
            pilot,
            lambda: (
                app.query_one(Inspector).display
                and (not browser.display or browser.size.width == 0)
            ),
        )
        assert app.terminal.size.width >= 30


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (200, 50)])
async def test_layout_module_agrees_with_the_stylesheet(
    size: tuple[int, int], demo_app: DemoApp
) -> None:
    """``vibebox`` opens the PTY at layout.terminal_area() before the app exists."""
    app, _ = demo_app()
    async with app.run_test(size=size) as pilot:
        await until_attached(pilot, app)
        await pilot.pause()
        assert (app.terminal.size.width, app.terminal.size.height) == terminal_area(*size)


async def test_ids_made_within_a_minute_are_shown_long_enough_to_tell_apart(
    tmp_path: Path,
) -> None:
    first, second = "019bf290-0001-7c23-ba1d-dce7e6d40693", "019bf290-0002-7c23-ba1d-dce7e6d40693"
    sessions = [
        SessionRow(first, tmp_path / "one", "running", 1),
        SessionRow(second, tmp_path / "two", "shut off", 0),
    ]
    backend = FakeBackend(sessions, project=None)
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "two" in browser_text(app))
        text = browser_text(app)
        assert "019bf290-0001" in text and "019bf290-0002" in text


def test_boot_steps_keep_their_times_in_one_column() -> None:
    progress = BootProgress(live_clock=False)
    progress.begin("Starting the session of /tmp/x")
    for i, step in enumerate(("checking image", "waiting for the VM's address", "waiting for SSH")):
        progress.add_event(ProgressEvent(step, "detail", float(i), False))
    rows = [line for line in progress.render_steps().plain.splitlines() if "s  detail" in line]
    assert len(rows) == 3
    assert len({row.index("s  detail") for row in rows}) == 1, rows
