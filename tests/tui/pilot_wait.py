"""Helpers for Pilot tests: wait until a condition holds (no bare sleeps), until attached or
booting; what the guest shell prints for a vibebox command; what the dashboard shows.

The fixtures that set the dashboard up (UTC clocks, fast polls, the app on the fake backend)
are in ``conftest.py``; :class:`DemoApp` is the type of its ``demo_app`` factory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from textual.pilot import Pilot
from textual.widgets import ContentSwitcher

from vibebox_core.streams import MemoryStream
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.fake import FakeBackend
from vibebox_tui.screens import ConfirmScreen
from vibebox_tui.widgets import BootProgress, SessionBrowser


class DemoApp(Protocol):
    """Makes the dashboard on a fake backend over the demo sessions (``demo_app`` fixture)."""

    def __call__(self, session: int | None = 0, **backend: Any) -> tuple[VibeboxApp, FakeBackend]:
        """The app started in the directory of demo session ``session`` (None: in none), and
        its backend; ``backend`` keywords go to :class:`FakeBackend`."""
        ...


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 15.0
) -> None:
    """Let the app run until ``condition()`` holds; AssertionError after ``timeout`` seconds.

    The bound is generous: a condition that holds costs nothing more, and on a loaded machine
    (other test runs, VMs) the app can need several seconds where it needs milliseconds alone.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def until_attached(pilot: Pilot[Any], app: VibeboxApp) -> None:
    """Wait until the terminal shows an attached session."""
    await wait_for(
        pilot,
        lambda: app.attachment is not None and app.query_one(ContentSwitcher).current == "terminal",
    )


def osc_command(stream: MemoryStream, name: str) -> bytes:
    """What the guest shell's ``:name`` prints: the command signed with the PTY's token."""
    return f"\x1b]7777;vibebox-command={name};{stream.command_token}\x07".encode()


def confirm_armed(app: VibeboxApp) -> bool:
    """A confirm dialog is up and takes its destructive answer (it ignores early keys)."""
    return isinstance(app.screen, ConfirmScreen) and app.screen.armed


def browser_text(app: VibeboxApp) -> str:
    browser = app.query_one(SessionBrowser)
    return "\n".join(
        str(browser.get_option_at_index(i).prompt) for i in range(browser.option_count)
    )


def centre(app: VibeboxApp) -> str | None:
    return app.query_one(ContentSwitcher).current


def booting_app(demo_app: DemoApp) -> tuple[VibeboxApp, FakeBackend, asyncio.Event]:
    """The dashboard starting a shut-off session whose boot waits for the returned event."""
    hold = asyncio.Event()
    app, backend = demo_app(1, hold_boot=hold)
    return app, backend, hold


async def until_booting(pilot: Pilot[int], app: VibeboxApp) -> BootProgress:
    """Wait until the boot shows its last step; return the progress view."""
    progress = app.query_one(BootProgress)
    await wait_for(pilot, lambda: "waiting for SSH" in progress.steps)
    return progress
