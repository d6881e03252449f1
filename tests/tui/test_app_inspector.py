"""Pilot tests of the dashboard's inspector pane on the fake backend: shown by ``:explain``
or ``i``, live while it is open."""

from __future__ import annotations

import pytest
from tui.pilot_wait import (
    DemoApp,
    osc_command,
    until_attached,
    wait_for,
)

from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.widgets import Inspector

SIZE = (100, 30)

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


# -- inspector -------------------------------------------------------------------------------


async def test_command_explain_shows_the_inspector_and_keeps_the_keyboard(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        backend.streams[fake_id(1)].feed(osc_command(backend.streams[fake_id(1)], "explain"))
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.display and inspector.data is not None)
        # The terminal keeps the keyboard: keys typed after :explain (e.g. :exit) are the guest's.
        assert app.focused is app.terminal
        text = inspector.text
        assert "/home/vibecoder/webshop" in text and "rw default" in text
        assert "allowlist" in text and "pypi.org" in text
        assert "192.168.122.57" in text and "2048 MB" in text
        assert "vibebox.toml" in text and ".vibebox/" in text


async def test_inspector_is_live(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.press("ctrl+backslash", "i")
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.data is not None)
        backend.edit_config(directory, mode="blocklist", entries=("evil.example",))
        await wait_for(pilot, lambda: "evil.example" in inspector.text)
        assert "blocklist" in inspector.text
        backend.set_state(fake_id(1), "stopping")
        await wait_for(pilot, lambda: "◑ stopping" in inspector.text)
        backend.log_network(directory, "10:15:03 blocked proxy evil.example:443 (listed)")
        await wait_for(pilot, lambda: "blocked proxy evil.example" in inspector.text)
        await pilot.press("i")
        await wait_for(pilot, lambda: not inspector.display)


async def test_inspector_says_whether_an_approved_change_applied_live(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.press("ctrl+backslash", "i")
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.data is not None)
        assert "applied live" not in inspector.text and "next start" not in inspector.text
        backend.set_policy_state(directory, "live")
        await wait_for(pilot, lambda: "approved policy applied live" in inspector.text)
        backend.set_policy_state(
            directory, "next start", ("~ network mode: allowlist → blocklist",)
        )
        await wait_for(pilot, lambda: "approved change applies at next start" in inspector.text)
        assert "~ network mode: allowlist → blocklist" in inspector.text
        assert "applied live" not in inspector.text
