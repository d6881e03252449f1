"""The terminal widget on a real guest: asyncssh PTY -> emulator -> Textual, over the lab.

One VM boot (TCG, ~40 s): a login shell appears, keys reach bash, the PTY follows the
widget's size (``stty size``), shell-integration commands (``:help``) arrive as messages and
never as text, full-screen programs use the alternate screen, and ``exit`` shows the
disconnected state with the shell's status. Twice: on this process's own SSH connection, then
relayed by the session's supervisor (:mod:`vibebox_core.supervisor.relay`, what the dashboard uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import start, teardown
from vibebox_core.ssh.pty import SSHPtyStream
from vibebox_core.streams import ByteStream
from vibebox_tui.terminal import TerminalView

pytestmark = pytest.mark.e2e


class Shell(App[None]):
    def __init__(self, stream: ByteStream) -> None:
        super().__init__()
        self.stream = stream
        self.commands: list[str] = []
        self.disconnected: list[str] = []

    def compose(self) -> ComposeResult:
        yield TerminalView(self.stream)

    def on_mount(self) -> None:
        self.query_one(TerminalView).focus()

    def on_terminal_view_vibebox_command(self, message: TerminalView.VibeboxCommand) -> None:
        self.commands.append(message.name)

    def on_terminal_view_disconnected(self, message: TerminalView.Disconnected) -> None:
        self.disconnected.append(message.reason)


async def _until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):  # up to ~30 s of 10 ms pauses
        if condition():
            return
        await pilot.pause(0.01)
    view = pilot.app.query_one(TerminalView)
    screen = "\n".join(view.emulator.screen.display)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")


def _text(app: Shell) -> str:
    return "\n".join(app.query_one(TerminalView).emulator.screen.display)


async def _type(pilot: Pilot[None], line: str) -> None:
    await pilot.press(*[("space" if c == " " else c) for c in line], "enter")


async def test_terminal_on_a_real_guest(e2e_home: Path, e2e_project: Path) -> None:
    try:
        session = await start.ensure_running(ProjectPaths.for_directory(e2e_project))
        try:
            assert session.connection is not None
            await _drive_shell(await SSHPtyStream.open(session.connection, 80, 24), 0)
            await _drive_shell(await start.open_terminal(session, 80, 24), 3)
        finally:
            await session.close()
    finally:
        # Delete the session (VM, network, disk) even when the boot itself failed.
        entry = SessionIndex().find_by_directory(e2e_project)
        if entry is not None:
            await asyncio.wait_for(teardown.delete(entry), 180)


async def _drive_shell(stream: ByteStream, exit_status: int) -> None:
    app = Shell(stream)
    async with app.run_test(size=(90, 30)) as pilot:
        view = app.query_one(TerminalView)
        await _until(pilot, lambda: "$" in _text(app), "a shell prompt")
        await _type(pilot, "stty size")
        await _until(pilot, lambda: "30 90" in _text(app), "stty to report 30x90")
        await pilot.resize_terminal(100, 35)
        await _type(pilot, "clear; stty size")
        await _until(pilot, lambda: "35 100" in _text(app), "stty to follow the resize")
        await _type(pilot, ":help")
        await _until(pilot, lambda: app.commands == ["help"], "the :help message")
        assert "vibebox-command" not in _text(app)
        await _type(pilot, "echo :new")
        await _until(pilot, lambda: _text(app).count(":new") >= 2, "echo output")
        assert app.commands == ["help"]  # displaying the text fires nothing
        await _type(pilot, "printf '\\033[?1049h\\033[H ALT'; sleep 1; printf '\\033[?1049l'")
        await _until(pilot, lambda: view.emulator.screen.in_alt, "the alternate screen")
        await _until(pilot, lambda: not view.emulator.screen.in_alt, "the main screen")
        await _type(pilot, f"exit {exit_status}")
        await _until(pilot, lambda: bool(app.disconnected), "the disconnected state")
        assert f"status {exit_status}" in app.disconnected[0]
        assert view.disconnect_reason is not None
    await stream.close()
