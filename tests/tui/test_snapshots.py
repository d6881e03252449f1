"""Snapshots of the dashboard's main views on the fake backend (fixed size, ids and times).

Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs
in ``__snapshots__/`` before committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, wait_for

from vibebox_core.errors import VMError
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.screens import ConfirmScreen, ErrorScreen
from vibebox_tui.widgets import BootProgress, Inspector

SIZE = (100, 30)
# The terminal area is exactly 80x24 at this size: recorded 80x24 programs fit.
TERMINAL_80x24 = (116, 26)
RECORDINGS = Path(__file__).parent.parent / "data" / "terminal"

SnapCompare = Callable[..., bool]

pytestmark = pytest.mark.usefixtures("utc")


def attached(app: VibeboxApp) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.attachment is not None)
        await wait_for(pilot, lambda: app.browser.option_count == len(app.sessions) > 0)
        await pilot.pause()

    return run_before


def colour_test_bytes() -> bytes:
    out = [b"vibecoder@vibebox:~/webshop$ ./colours\r\n"]
    line = "".join(f"\x1b[{30 + i}m col{i} " for i in range(8))
    out.append((line + "\x1b[0m\r\n").encode())
    line = "".join(f"\x1b[1;{90 + i}m bri{i} " for i in range(8))
    out.append((line + "\x1b[0m\r\n").encode())
    line = "".join(f"\x1b[48;5;{16 + i * 7}m  " for i in range(30))
    out.append((line + "\x1b[0m  256 colours\r\n").encode())
    line = "".join(f"\x1b[48;2;{i * 7};{80 + i * 4};{255 - i * 7}m " for i in range(30))
    out.append((line + "\x1b[0m  truecolor\r\n").encode())
    out.append(
        b"\x1b[1mbold\x1b[0m \x1b[3mitalic\x1b[0m \x1b[4munderline\x1b[0m "
        b"\x1b[7mreverse\x1b[0m \x1b[2mdim\x1b[0m \x1b[9mstrike\x1b[0m\r\n"
    )
    out.append(b"\x1b[32m\xe2\x9c\x93 12 passed\x1b[0m, \x1b[31m1 failed\x1b[0m in 0.42s\r\n")
    out.append(b"vibecoder@vibebox:~/webshop$ ")
    return b"".join(out)


def test_empty_index(snap_compare: SnapCompare) -> None:
    app = VibeboxApp(FakeBackend([]), live_clock=False)
    assert snap_compare(app, terminal_size=SIZE)


def test_sessions_with_a_broken_one(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = demo_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=attached(app))


def test_inspector_open(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.log_network(directory, "10:15:02 allowed proxy pypi.org:443")
    backend.log_network(directory, "10:15:03 blocked proxy evil.example:443 (not listed)")

    async def run_before(pilot: Pilot[Any]) -> None:
        await attached(app)(pilot)
        app.action_explain()
        await wait_for(pilot, lambda: app.query_one(Inspector).data is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 34), run_before=run_before)


def test_confirm_dialog(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = demo_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        await attached(app)(pilot)
        await pilot.press("ctrl+backslash", "d")
        # Once armed the dialog shows "Delete (y)" (it ignores keys that came earlier).
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.armed)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_boot_progress(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = demo_app(1, hold_boot=asyncio.Event())

    async def run_before(pilot: Pilot[Any]) -> None:
        progress = app.query_one(BootProgress)
        await wait_for(pilot, lambda: "waiting for SSH" in progress.steps)
        await wait_for(pilot, lambda: app.browser.option_count == 4)
        progress.focus()
        await pilot.press("ctrl+o")
        await wait_for(
            pilot, lambda: "Debian" in str(progress.query_one("#progress-console").render())
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_error_dialog(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    error = VMError(
        "The VM of ml-notebooks showed no sign of life for 120 s "
        "(console: 'Booting the kernel.' and nothing after).",
        hint='KVM may hang under nested virtualisation: set accel = "tcg" in vibebox.toml.',
    )
    app, _ = demo_app(1, fail_attach=error)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        await wait_for(pilot, lambda: app.browser.option_count == 4)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_terminal_colours(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app(prompt=b"")

    async def run_before(pilot: Pilot[Any]) -> None:
        await attached(app)(pilot)
        backend.streams[fake_id(1)].feed(colour_test_bytes())
        await wait_for(pilot, lambda: "truecolor" in "".join(app.terminal.emulator.screen.display))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_terminal_full_screen_program(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app(prompt=b"")
    meta = (RECORDINGS / "vim.json").read_text()
    assert '"cols": 80' in meta and '"rows": 24' in meta
    opened = (RECORDINGS / "vim.bin").read_bytes()[:2211]  # vim open, a line added

    async def run_before(pilot: Pilot[Any]) -> None:
        await attached(app)(pilot)
        await wait_for(pilot, lambda: app.terminal.emulator.screen.columns == 80)
        backend.streams[fake_id(1)].feed(opened)
        await wait_for(pilot, lambda: app.terminal.emulator.screen.in_alt)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=TERMINAL_80x24, run_before=run_before)


def test_two_tabs(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app(prompt=b"")
    sid = fake_id(1)

    async def run_before(pilot: Pilot[Any]) -> None:
        await attached(app)(pilot)
        backend.streams[sid].feed(b"\x1b]2;vim notes.txt\x07vibecoder@vibebox:~/webshop$ vim")
        await wait_for(pilot, lambda: app.header.title == "vim notes.txt")
        await pilot.press("ctrl+backslash", "o")
        await wait_for(pilot, lambda: len(backend.tab_streams[sid]) == 1)
        await wait_for(pilot, lambda: app.focused is app.terminal and app.tabs.count == 2)
        backend.tab_streams[sid][0].feed(
            b"\x1b]2;pytest -q\x07vibecoder@vibebox:~/webshop$ pytest -q\r\n"
            b"\x1b[32m12 passed\x1b[0m in 0.42s\r\nvibecoder@vibebox:~/webshop$ "
        )
        await wait_for(pilot, lambda: "passed" in "".join(app.terminal.emulator.screen.display))
        await wait_for(pilot, lambda: app.header.title == "pytest -q")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
