"""Pilot tests of steering the policy from the inspector's network log (fake backend):
select an entry, ``a``/``b``, confirm with ``y``; the focus stays where the user put it."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, confirm_armed, osc_command, until_attached, wait_for

from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.base import SecretRow
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.screens import ConfirmScreen
from vibebox_tui.widgets import Inspector

SIZE = (120, 40)

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


@pytest.fixture(autouse=True)
def quick_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConfirmScreen, "ARM_SECONDS", 0.05)


def notified(app: VibeboxApp, fragment: str) -> bool:
    return any(fragment in n.message for n in app._notifications)


async def focus_inspector(pilot: Pilot[Any], app: VibeboxApp) -> Inspector:
    """Open the inspector and move the focus there as a user does (leave the terminal, show
    it, shift+tab from the session list to it)."""
    inspector = app.query_one(Inspector)
    await pilot.press("ctrl+backslash", "i")
    await wait_for(pilot, lambda: inspector.data is not None)
    await pilot.press("shift+tab")
    await wait_for(pilot, lambda: inspector.has_focus)
    return inspector


async def test_showing_the_inspector_and_new_entries_leave_the_terminal_focused(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        stream.feed(osc_command(stream, "explain"))
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.data is not None)
        backend.log_network(directory, "10:15:03 blocked proxy evil.example:443 (not listed)")
        await wait_for(pilot, lambda: "evil.example" in inspector.text)
        assert app.focused is app.terminal
        assert "▸" not in inspector.text  # no cursor while the terminal has the keys
        await pilot.press("a")  # typed into the guest, not a steer
        assert backend.steered == [] and not isinstance(app.screen, ConfirmScreen)


async def test_allowing_a_blocked_entry_asks_names_the_parent_entry_and_applies_on_y(
    demo_app: DemoApp,
) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.edit_config(directory, mode="blocklist", entries=("example.com", "other.test"))
    backend.log_network(directory, "10:15:02 allowed proxy pypi.org:443 (fine)")
    backend.log_network(directory, "10:15:03 blocked proxy api.example.com:443 (listed)")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        inspector = await focus_inspector(pilot, app)
        assert inspector.selected is not None and inspector.selected.host == "api.example.com"
        assert "▸ 10:15:03 blocked" in inspector.text
        await pilot.press("a")
        await wait_for(pilot, lambda: confirm_armed(app))
        body = app.screen.query_one("#body").render()
        assert "Allow api.example.com? removes blocklist entry example.com" in str(body)
        assert "unblocks example.com and all its subdomains" in str(body)
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(app, "applied to the running session"))
        assert backend.steered == [(directory, ("api.example.com",), "allow")]

        def entries() -> tuple[str, ...]:
            return inspector.data.network_entries if inspector.data else ()

        await wait_for(pilot, lambda: entries() == ("other.test",))
        assert inspector.has_focus  # the dialog gave the focus back


async def test_n_changes_nothing_and_a_moved_cursor_picks_the_entry(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.log_network(directory, "10:15:02 allowed proxy files.pythonhosted.org:443 (listed)")
    backend.log_network(directory, "10:15:03 allowed dns pypi.org (listed)")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        inspector = await focus_inspector(pilot, app)
        await pilot.press("up")
        assert inspector.selected is not None
        assert inspector.selected.host == "files.pythonhosted.org"
        await pilot.press("j", "k")
        assert inspector.selected.host == "files.pythonhosted.org"
        await pilot.press("b")
        await wait_for(pilot, lambda: confirm_armed(app))
        body = str(app.screen.query_one("#body").render())
        assert (
            "Block files.pythonhosted.org? removes allowlist entry files.pythonhosted.org" in body
        )
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.steered == []


async def test_a_host_already_in_that_state_is_said_without_a_question(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.log_network(directory, "10:15:02 allowed proxy api.github.com:443 (listed)")
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await focus_inspector(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: notified(app, "already allowed (by allowlist entry github"))
        assert not isinstance(app.screen, ConfirmScreen) and backend.steered == []


async def test_a_hostile_or_ip_host_is_refused_in_a_notification(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    hostile = "ev\x1b]0;owned\x07il.test[b]"
    backend.log_network(directory, "10:15:01 blocked proxy x (listed)", host="10.0.0.9")
    backend.log_network(directory, "10:15:02 blocked proxy y (listed)", host=hostile)
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await focus_inspector(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: notified(app, "not a domain name"))
        assert not any("\x1b" in n.message for n in app._notifications)
        await pilot.press("up", "a")
        await wait_for(pilot, lambda: notified(app, "IP address"))
        assert backend.steered == []


async def test_the_inspector_lists_the_approved_secrets_by_kind(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    directory = demo_sessions()[0].directory
    backend.secrets[directory] = (SecretRow("GITHUB_TOKEN", ("api.github.com",), "env"),)
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        inspector = app.query_one(Inspector)
        await pilot.press("ctrl+backslash", "i")
        await wait_for(pilot, lambda: "GITHUB_TOKEN" in inspector.text)
        assert "from env" in inspector.text and "→ api.github.com" in inspector.text
