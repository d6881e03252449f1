"""Snapshots of steering from the inspector (fake backend): an entry selected, and the
one-line question before a blocked host is allowed.

Regenerate with ``pytest tests/tui/test_steer_snapshots.py --snapshot-update`` and look at the
SVGs in ``__snapshots__/`` before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, confirm_armed, wait_for

from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.base import SecretRow
from vibebox_tui.backend.demo import demo_sessions
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.widgets import Inspector

SnapCompare = Callable[..., bool]
SIZE = (120, 40)

pytestmark = pytest.mark.usefixtures("utc")


def _blocked_app(demo_app: DemoApp) -> tuple[VibeboxApp, FakeBackend]:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.edit_config(directory, mode="blocklist", entries=("example.com",))
    backend.secrets[directory] = (SecretRow("GITHUB_TOKEN", ("api.github.com",), "env"),)
    backend.log_network(directory, "10:15:02 allowed proxy pypi.org:443 (not listed)")
    backend.log_network(directory, "10:15:03 blocked proxy api.example.com:443 (listed)")
    return app, backend


async def _select(pilot: Pilot[Any], app: VibeboxApp) -> None:
    await wait_for(pilot, lambda: app.attachment is not None)
    await wait_for(pilot, lambda: app.browser.option_count == len(app.sessions) > 0)
    inspector = app.query_one(Inspector)
    await pilot.press("ctrl+backslash", "i")
    await wait_for(pilot, lambda: inspector.data is not None and bool(inspector.data.secrets))
    await pilot.press("shift+tab")
    await wait_for(pilot, lambda: inspector.has_focus)
    await pilot.pause()


def test_inspector_entry_selected(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = _blocked_app(demo_app)
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: _select(pilot, app))


def test_allow_question(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = _blocked_app(demo_app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _select(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
