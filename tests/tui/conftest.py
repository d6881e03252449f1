"""Fixtures for the dashboard's tests: UTC clocks, fast polls, the app on the fake backend.

Helpers used inside a test (waiting for a condition, for the terminal to attach) are in
``pilot_wait.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tui.pilot_wait import DemoApp

from vibebox_tui import app as app_module
from vibebox_tui.app import VibeboxApp
from vibebox_tui.backend.demo import demo_sessions
from vibebox_tui.backend.fake import FakeBackend


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so the times the dashboard shows are the same on every host."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    os.environ.pop("TZ", None)
    time.tzset()


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app polls sessions, the inspector and the console every 0.05 s (not 0.5-1 s)."""
    monkeypatch.setattr(app_module, "SESSION_POLL_SECONDS", 0.05)
    monkeypatch.setattr(app_module, "INSPECTOR_POLL_SECONDS", 0.05)
    monkeypatch.setattr(app_module, "CONSOLE_POLL_SECONDS", 0.05)


@pytest.fixture
def demo_app() -> DemoApp:
    """Make the dashboard on a fake backend over the demo sessions (see :class:`DemoApp`)."""

    def make(session: int | None = 0, **backend: Any) -> tuple[VibeboxApp, FakeBackend]:
        sessions = demo_sessions()
        project = None if session is None else sessions[session].directory
        fake = FakeBackend(sessions, project=project, **backend)
        return VibeboxApp(fake, live_clock=False), fake

    return make
