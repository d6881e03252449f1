"""Hostile guest text in the dashboard: shown escaped, never acted on, nothing hidden.

The guest (root) chooses window titles, host names in the network log, the project's files and
``vibebox.toml``; a cloned repository chooses the project's directory name. These tests feed
such strings (Textual markup, escape sequences, ``\\r`` overwrites, bidi overrides) into the
header, the inspector, a dialog and the approval diff, and read what is really drawn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widget import Widget
from tui.pilot_wait import DemoApp, until_attached, wait_for

from vibebox_core.errors import VibeboxError
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.screens import ConfirmScreen, ErrorScreen
from vibebox_tui.widgets import Inspector, SessionHeader

SIZE = (120, 40)
#: Strings a hostile guest would try; each must show as text with every control escaped.
HOSTILE = "[bold red]ALERT[/] [@click=app.quit]x[/] \x1b[2K\rsafe \u202egnp.exe \x1b]0;t\x07"

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


def drawn(widget: Widget) -> str:
    """The characters ``widget`` really draws (its strips), line by line."""
    lines = widget.render_lines(widget.size.region)
    return "\n".join("".join(segment.text for segment in strip) for strip in lines)


def assert_escaped(text: str) -> None:
    """No raw control, ESC or bidi character is drawn."""
    bad = [ch for ch in text if (ord(ch) < 0x20 and ch != "\n") or ch in "\x7f\x1b\u202e\u2066"]
    assert not bad, f"raw characters drawn: {bad!r}"


async def test_a_guest_window_title_is_drawn_escaped_in_the_header(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        # OSC 2 with markup, backspaces, a carriage return and a bidi override inside (an
        # ESC or a C1 control would end the OSC itself).
        stream.feed(b"\x1b]2;[bold red]pwn[/] \x08\x08\rhidden \xe2\x80\xae!\x07")
        header = app.query_one(SessionHeader)
        await wait_for(pilot, lambda: "pwn" in header.title)
        await pilot.pause()
        shown = drawn(header)
        assert "[bold red]pwn[/] \\x08\\x08\\rhidden \\u202e!" in shown
        assert_escaped(shown)


async def test_hostile_host_names_in_the_inspector_log_are_escaped(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.log_network(directory, f"12:00:00 allowed {HOSTILE}")
    backend.log_network(directory, "12:00:01 blocked ev\u200bil.example\x1b[8m")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.press("ctrl+backslash", "i")
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.display and inspector.data is not None)
        await pilot.pause()
        text = inspector.text
        assert "[bold red]ALERT[/] [@click=app.quit]x[/] \\x1b[2K\\rsafe \\u202egnp.exe" in text
        assert "ev\\u200bil.example\\x1b[8m" in text
        assert_escaped(drawn(inspector))
        assert app.is_running  # [@click=app.quit] was text, not an action


async def test_an_error_dialog_shows_a_hostile_message_as_text(demo_app: DemoApp) -> None:
    app, _ = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        error = VibeboxError(f"cannot mount {HOSTILE}", hint="[/]fix \x1b[31mit")
        app.push_screen(ErrorScreen.for_error("Starting [b]x", error))
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        await pilot.pause()
        shown = "\n".join(drawn(w) for w in app.screen.query("#title, #message, #hint"))
        assert "Starting [b]x" in shown
        assert "[bold red]ALERT[/]" in shown and "\\x1b[2K\\rsafe" in shown
        assert "\\u202egnp.exe" in shown and "[/]fix \\x1b[31mit" in shown
        assert_escaped(shown)


async def test_no_line_of_the_approval_diff_can_hide_itself() -> None:
    sessions = demo_sessions()
    backend = FakeBackend(sessions, project=sessions[1].directory)
    diff = (
        'mounts: + "/:/host:rw"\r\x1b[2Knetwork.entries: + "harmless.example"',
        '[/]network.mode: "allowlist" -> "blocklist"',
        "ports: + \u202e8000\u202c",
        "[@click=app.quit]quit[/]",
    )
    backend.unapproved[sessions[1].directory] = diff
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        body = drawn(app.screen.query_one("#body"))
        flat = " ".join(line.strip() for line in body.splitlines())
        assert 'mounts: + "/:/host:rw"\\r\\x1b[2Knetwork.entries: + "harmless.example"' in flat
        assert '[/]network.mode: "allowlist" -> "blocklist"' in flat
        assert "ports: + \\u202e8000\\u202c" in flat
        assert "[@click=app.quit]quit[/]" in flat
        assert_escaped(body)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.approved == []


async def test_a_hostile_project_directory_name_is_escaped(tmp_path: Path) -> None:
    directory = tmp_path / "proj\x1b[2J\u202e[red]x"
    backend = FakeBackend([], project=directory)
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.pause()
        header = drawn(app.query_one(SessionHeader))
        assert "proj\\x1b[2J\\u202e[red]x" in header
        assert_escaped(header)
        browser = drawn(app.query_one("#browser"))
        assert_escaped(browser)


# -- vibebox commands need this PTY's token ------------------------------------------------


def command(name: str, token: str) -> bytes:
    return f"\x1b]7777;vibebox-command={name};{token}\x07".encode()


async def test_program_output_cannot_forge_a_vibebox_command(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        # What `cat` of a planted file shows: unsigned, badly signed, another PTY's token.
        stream.feed(b"\x1b]7777;vibebox-command=new\x07")
        stream.feed(command("exit", ""))
        stream.feed(command("new", "0" * 32))
        stream.feed(command("help", stream.command_token[:-1] + "x"))
        stream.feed(b"after\r\n")
        view = app.query_one("TerminalView")
        await wait_for(pilot, lambda: "after" in drawn(view))
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        assert backend.recreated == []
        # The shell's own :help, signed with this PTY's token, still works.
        stream.feed(command("help", stream.command_token))
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def test_a_destructive_confirm_ignores_keys_typed_before_it_was_armed(
    monkeypatch: pytest.MonkeyPatch,
    demo_app: DemoApp,
) -> None:
    # A long guard for the first dialog, so a loaded machine cannot arm it mid-test.
    monkeypatch.setattr(ConfirmScreen, "ARM_SECONDS", 60.0)
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        stream.feed(command("new", stream.command_token))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        await pilot.press("y", "y")  # typed ahead of the question: ignored
        await pilot.click("#confirm")  # disabled until armed
        assert not dialog.armed and app.screen is dialog
        assert backend.recreated == []
        await pilot.press("tab", "enter")  # the confirm button cannot take the focus yet
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.recreated == []
        # Once armed (after ARM_SECONDS) the answer counts, with the safe one focused.
        monkeypatch.setattr(ConfirmScreen, "ARM_SECONDS", 0.3)
        stream.feed(command("new", stream.command_token))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.armed)
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.recreated == [fake_id(1)])


async def test_a_disconnect_reason_from_the_guest_is_drawn_escaped(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        # The exit signal's name is whatever the guest's sshd sends.
        backend.streams[fake_id(1)].feed_eof("Session ended by signal \x1b]0;x\x07\x1b[2JKILL")
        view = app.query_one("TerminalView")
        await wait_for(pilot, lambda: "KILL" in drawn(view))
        shown = drawn(view)
        assert "Session ended by signal \\x1b]0;x\\x07\\x1b[2JKILL" in shown
        assert_escaped(shown)
