"""Pilot tests of the dashboard's checkpoints (``vibebox_tui/session_actions.py``, the palette
actions and ``screens/checkpoints.py``): save from the palette, the list, restore after a
confirmation that says project files are not touched, remove; on the fake backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import OptionList
from tui.pilot_wait import DemoApp, centre, confirm_armed, until_attached, wait_for

from vibebox_core.errors import VibeboxError
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.screens import CheckpointsScreen, ConfirmScreen, ErrorScreen
from vibebox_tui.widgets import SessionBrowser

SIZE = (100, 30)
PROJECT = demo_sessions()[0].directory  # webshop, running

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


def notified(app: VibeboxApp, fragment: str) -> bool:
    return any(fragment in n.message for n in app._notifications)


def body(app: VibeboxApp) -> str:
    return str(app.screen.query_one("#body").render())


async def leave_terminal(pilot: Pilot[Any], app: VibeboxApp) -> None:
    await pilot.press("ctrl+backslash")
    await wait_for(pilot, lambda: isinstance(app.focused, SessionBrowser))


async def open_checkpoints(pilot: Pilot[Any], app: VibeboxApp) -> CheckpointsScreen:
    await leave_terminal(pilot, app)
    await app.run_action("checkpoints")
    await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
    assert isinstance(app.screen, CheckpointsScreen)
    return app.screen


async def test_the_palette_saves_a_checkpoint(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await leave_terminal(pilot, app)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Save a checkpoint" in titles and "Checkpoints" in titles
        await pilot.press(*"save a checkpoint")
        await pilot.press("enter")
        await wait_for(pilot, lambda: notified(app, "the VM was paused"))
        assert [row.name for row in backend.checkpoint_rows[PROJECT]] == ["ckpt-20261127-101500"]
        assert centre(app) == "terminal"  # a save does not take the terminal away


async def test_restore_asks_says_project_files_stay_and_reattaches(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "before-upgrade")
    backend.add_checkpoint(PROJECT, "after-migration")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = app.attachment
        await open_checkpoints(pilot, app)
        listed = app.screen.query_one(OptionList)
        assert listed.option_count == 2
        assert "before-upgrade" in str(listed.get_option_at_index(0).prompt)
        assert "12.5 MiB" in str(listed.get_option_at_index(0).prompt)
        await pilot.press("down", "enter")  # after-migration
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = body(app)
        assert "after-migration" in text
        assert "Project files on the host are not touched" in text
        assert "started again" in text
        await pilot.press("y")  # too early: ignored
        assert isinstance(app.screen, ConfirmScreen)
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.restored == [(PROJECT, "after-migration")])
        await wait_for(pilot, lambda: app.attachment is not None and app.attachment is not first)
        await until_attached(pilot, app)  # running again, with a new terminal
        assert notified(app, "project files on the host are untouched")


async def test_cancelled_restore_changes_nothing(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "keep")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        first = app.attachment
        await open_checkpoints(pilot, app)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # Cancel has the focus
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.restored == []
        assert app.attachment is first


async def test_remove_asks_then_removes(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "old")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await open_checkpoints(pilot, app)
        await pilot.press("d")
        await wait_for(pilot, lambda: confirm_armed(app))
        assert "It can no longer be restored" in body(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(app, "Removed checkpoint old"))
        assert backend.removed == [(PROJECT, "old")]
        assert backend.checkpoint_rows[PROJECT] == []


async def test_hostile_checkpoint_names_are_shown_escaped(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "x\x1b]0;owned\x07[bold]y\u202e")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await open_checkpoints(pilot, app)
        prompt = str(app.screen.query_one(OptionList).get_option_at_index(0).prompt)
        assert "\\x1b]0;owned\\x07[bold]y\\u202e" in prompt
        assert "\x1b" not in prompt and "\u202e" not in prompt


async def test_empty_list_offers_to_save(demo_app: DemoApp) -> None:
    app, backend = demo_app(1)  # ml-notebooks, booted by the start
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await open_checkpoints(pilot, app)
        assert "No checkpoints yet" in str(app.screen.query_one("#empty").render())
        await pilot.press("s")
        await wait_for(pilot, lambda: notified(app, "Saved checkpoint ckpt-20261127-101500"))
        assert len(backend.checkpoint_rows[demo_sessions()[1].directory]) == 1


async def test_a_failure_is_an_error_dialog(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.fail_checkpoint = VibeboxError("qemu-img could not read the disk", hint="retry")
        await leave_terminal(pilot, app)
        await app.run_action("save_checkpoint")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert app.attachment is not None and app.attachment.session.id == fake_id(1)


async def test_no_checkpoint_while_the_session_starts(demo_app: DemoApp) -> None:
    hold = asyncio.Event()
    app, _ = demo_app(1, hold_boot=hold)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: centre(app) == "progress")
        await app.run_action("checkpoints")
        await wait_for(pilot, lambda: notified(app, "checkpoints work once it runs"))
        assert not isinstance(app.screen, CheckpointsScreen)
        hold.set()
        await until_attached(pilot, app)
