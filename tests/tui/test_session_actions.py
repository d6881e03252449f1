"""Pilot tests of what the dashboard does to sessions (``vibebox_tui/session_actions.py``):
attach, approve ``vibebox.toml``, recreate, delete, leave; on the fake backend."""

from __future__ import annotations

import pytest
from tui.pilot_wait import (
    DemoApp,
    booting_app,
    browser_text,
    centre,
    confirm_armed,
    osc_command,
    until_attached,
    until_booting,
    wait_for,
)

from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.demo import demo_sessions, fake_id
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.screens import ConfirmScreen, ErrorScreen
from vibebox_tui.widgets import SessionBrowser, SessionHeader

SIZE = (100, 30)

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


# -- attaching -------------------------------------------------------------------------------


async def test_enter_on_another_session_switches_the_terminal(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        await pilot.press("ctrl+backslash")
        await wait_for(pilot, lambda: isinstance(app.focused, SessionBrowser))
        await pilot.press("down")  # ml-notebooks
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: app.attachment is not None and app.attachment.session.id == fake_id(2)
        )
        await until_attached(pilot, app)
        first = next(s for s in backend.list_sessions() if s.id == fake_id(1))
        assert first.attached == 1  # ours was released; the demo's other vibebox remains
        assert app.query_one(SessionHeader).project == "ml-notebooks"


# -- approving vibebox.toml ------------------------------------------------------------------


DIFF = ('network.entries: + "evil.example"', 'mounts: + "/:/host:rw"')


async def test_changed_policy_asks_and_approval_starts_the_session() -> None:
    sessions = demo_sessions()
    backend = FakeBackend(sessions, project=sessions[1].directory)
    backend.unapproved[sessions[1].directory] = DIFF
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "evil.example" in str(app.screen.query_one("#body").render())
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.press("y")
        await until_attached(pilot, app)
        assert backend.approved == [sessions[1].directory]
        assert app.attachment is not None and app.attachment.session.id == fake_id(2)


async def test_refused_policy_at_startup_is_fatal() -> None:
    sessions = demo_sessions()
    backend = FakeBackend(sessions, project=sessions[1].directory)
    backend.unapproved[sessions[1].directory] = DIFF
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "vibebox approve" in app.screen.hint  # type: ignore[attr-defined]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1 and backend.approved == []


# -- recreating, deleting, leaving -----------------------------------------------------------


async def test_command_new_confirms_recreates_and_reattaches(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        old_stream = backend.streams[fake_id(1)]
        old_stream.feed(osc_command(old_stream, "new"))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.recreated == []
        old_stream.feed(osc_command(old_stream, "new"))
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.recreated == [fake_id(1)])
        await wait_for(
            pilot, lambda: app.attachment is not None and app.attachment.session.id == fake_id(5)
        )
        await until_attached(pilot, app)
        assert old_stream.closed
        assert app.query_one(SessionHeader).session_id == fake_id(5)


@pytest.mark.parametrize("key", ["d", "delete"])
async def test_delete_asks_and_deletes(key: str, demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        browser = app.query_one(SessionBrowser)
        browser.focus()
        await wait_for(pilot, lambda: browser.option_count == 4)
        browser.highlighted = 2  # dotfiles
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.deleted == []
        await pilot.press(key)
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.deleted == [fake_id(4)])
        await wait_for(pilot, lambda: "dotfiles" not in browser_text(app))


async def test_delete_confirm_enter_defaults_to_cancel(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        app.query_one(SessionBrowser).focus()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.deleted == []


async def test_deleting_the_attached_session_detaches_first(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        app.query_one(SessionBrowser).focus()
        await pilot.press("d")  # the highlighted one is the attached session
        await wait_for(pilot, lambda: confirm_armed(app))
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: backend.deleted == [fake_id(1)])
        assert app.attachment is None and centre(app) == "idle"
        assert backend.streams[fake_id(1)].closed


async def test_command_exit_leaves_with_status_0_and_detaches(demo_app: DemoApp) -> None:
    app, backend = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        stream = backend.streams[fake_id(1)]
        stream.feed(osc_command(stream, "exit"))
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert stream.closed
    session = next(s for s in backend.list_sessions() if s.id == fake_id(1))
    # Ours was released (the demo's other vibebox remains); the VM stays up.
    assert session.attached == 1 and session.state == "running"


async def test_ctrl_q_leaves_while_booting_as_q_is_typed_ahead(demo_app: DemoApp) -> None:
    app, _, hold = booting_app(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        progress = await until_booting(pilot, app)
        progress.focus()
        await pilot.press("q")
        await wait_for(pilot, lambda: progress.typed_ahead == "q")
        assert app.return_code is None
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None)
        hold.set()
    assert app.return_code == 0
