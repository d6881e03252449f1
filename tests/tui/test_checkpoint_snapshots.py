"""Snapshots of the checkpoints dialog and the restore confirmation on the fake backend.

Regenerate with ``pytest tests/tui/test_checkpoint_snapshots.py --snapshot-update`` and look at
the SVGs in ``__snapshots__/`` before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, confirm_armed, wait_for

from vibebox_tui.backend.demo import demo_sessions
from vibebox_tui.screens import CheckpointsScreen
from vibebox_tui.widgets import SessionBrowser

SIZE = (100, 30)
PROJECT = demo_sessions()[0].directory

SnapCompare = Callable[..., bool]

pytestmark = pytest.mark.usefixtures("utc")


async def checkpoints_open(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(pilot, lambda: app.attachment is not None)
    await wait_for(pilot, lambda: app.browser.option_count == len(app.sessions) > 0)
    app.browser.focus()  # out of the terminal, as ctrl+backslash does
    await wait_for(pilot, lambda: isinstance(app.focused, SessionBrowser))
    await app.run_action("checkpoints")
    await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
    await pilot.pause()


def test_checkpoints_dialog(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "before-upgrade", "1.2 GiB")
    backend.add_checkpoint(PROJECT, "after-migration", "1.3 GiB")
    assert snap_compare(app, terminal_size=SIZE, run_before=checkpoints_open)


def test_restore_confirmation(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, backend = demo_app()
    backend.add_checkpoint(PROJECT, "before-upgrade", "1.2 GiB")

    async def run_before(pilot: Pilot[Any]) -> None:
        await checkpoints_open(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
