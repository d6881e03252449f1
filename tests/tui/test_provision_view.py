"""Pilot tests of provisioning in the dashboard: its output under its step in the start-up
view (escaped), a failing step marked, the terminal attached all the same with a notice, and
the inspector's provisioning line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui.pilot_wait import DemoApp, centre, until_attached, wait_for

from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressEvent
from vibebox_core.session import provision_record
from vibebox_tui.backend.base import InspectorData
from vibebox_tui.backend.core import CoreBackend
from vibebox_tui.backend.demo import PROVISION_FAILING, PROVISION_FAILING_NOTICE
from vibebox_tui.widgets import BootProgress
from vibebox_tui.widgets.inspector import render_inspector
from vibebox_tui.widgets.progress import OUTPUT_LINES

SIZE = (100, 30)
SnapCompare = Callable[..., bool]

pytestmark = pytest.mark.usefixtures("fast_polls", "utc")


async def test_provisioning_output_shows_under_its_step(demo_app: DemoApp) -> None:
    hold = asyncio.Event()
    app, _ = demo_app(1, hold_boot=hold, provision=PROVISION_FAILING[:3])
    async with app.run_test(size=SIZE) as pilot:
        progress = app.query_one(BootProgress)
        await wait_for(pilot, lambda: "provisioning" in progress.steps)
        await wait_for(pilot, lambda: len(progress.steps["provisioning"].output) == 3)
        text = progress.render_steps().plain
        assert "▸ provisioning" in text
        assert "step 1/2: sudo apt-get install -y jq" in text
        assert "│ Reading package lists..." in text
        assert "│ Setting up jq (1.6-2.1) ..." in text
        # The guest's escape sequences are shown escaped, never sent to the terminal.
        assert "│ \\x1b[31mhostile\\x1b]0;title\\x07 output" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "✓ waiting for SSH" in text  # provisioning comes after SSH
        hold.set()
        await until_attached(pilot, app)


async def test_a_failing_step_is_marked_and_the_terminal_attaches(demo_app: DemoApp) -> None:
    hold = asyncio.Event()
    app, _ = demo_app(
        1,
        hold_boot=hold,
        provision=PROVISION_FAILING,
        provision_notice=PROVISION_FAILING_NOTICE,
        provision_failed=True,
    )
    async with app.run_test(size=SIZE) as pilot:
        progress = app.query_one(BootProgress)
        await wait_for(pilot, lambda: progress.steps.get("provisioning") is not None)
        await wait_for(pilot, lambda: progress.steps["provisioning"].failed)
        text = progress.render_steps().plain
        assert "✗ provisioning" in text
        assert "step 2/2 failed with exit status 2" in text
        assert "│ make: *** No rule to make target 'setup'.  Stop." in text
        hold.set()
        await until_attached(pilot, app)
        assert centre(app) == "terminal"  # usable: the shell is there
        notices = [n.message for n in app._notifications]
        assert any("step 2 of 2 failed with exit status 2" in n for n in notices)
        assert any(n.severity == "warning" for n in app._notifications)


async def test_a_warm_attach_tells_nothing_about_provisioning(demo_app: DemoApp) -> None:
    app, _ = demo_app(0, provision=PROVISION_FAILING, provision_notice=PROVISION_FAILING_NOTICE)
    async with app.run_test(size=SIZE) as pilot:
        await until_attached(pilot, app)
        assert not list(app._notifications)


def test_only_the_last_output_lines_stay_on_screen() -> None:
    progress = BootProgress(live_clock=False)
    progress.add_event(ProgressEvent("provisioning", "step 1/1: seq 100", 1.0))
    for number in range(100):
        progress.add_event(
            ProgressEvent("provisioning", "step 1/1: seq 100", 1.0, output=(str(number),))
        )
    text = progress.render_steps().plain
    assert "│ 99" in text and f"│ {99 - OUTPUT_LINES}\n" not in text
    assert text.count("│ ") == OUTPUT_LINES
    assert "step 1/1: seq 100" in text


def test_the_inspector_says_the_list_changed() -> None:
    data = InspectorData(
        project=Path("/home/me/src/webshop"),
        session_id="019bf291-0001-7c23-ba1d-dce7e6d40693",
        provision="2 steps; last run: 1 step succeeded (2026-11-27T10:15:16Z); the list "
        "changed since: `vibebox provision` runs it again\x1b[2J",
        provision_warn=True,
    )
    text = render_inspector(data, 60).plain
    assert "Provisioning" in text
    assert "the list changed since" in text
    assert "\x1b" not in text and "\\x1b[2J" in text
    assert "Provisioning" not in render_inspector(InspectorData(Path("/p"), None), 60).plain


def test_snapshot_of_a_failing_provisioning(snap_compare: SnapCompare, demo_app: DemoApp) -> None:
    app, _ = demo_app(1, hold_boot=asyncio.Event(), provision=PROVISION_FAILING)

    async def run_before(pilot: Pilot[Any]) -> None:
        progress = app.query_one(BootProgress)
        await wait_for(pilot, lambda: progress.steps.get("provisioning") is not None)
        await wait_for(pilot, lambda: progress.steps["provisioning"].failed)
        await wait_for(pilot, lambda: app.browser.option_count == 4)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_real_backend_says_the_list_changed_since_it_ran(vibebox_home: Path) -> None:
    root = vibebox_home.parent / f"{vibebox_home.name}-proj"
    root.mkdir()
    project = ProjectPaths.for_directory(root)
    project.config.write_text('[provision]\nrun = ["echo new"]\n')
    entry = SessionIndex().ensure(project.root)
    record = provision_record.Record(entry.id, "done", provision_record.steps_digest(["old"]), 1)
    provision_record.write_record(project, record)
    backend = CoreBackend(root, hypervisor=FakeHypervisor())
    before = backend.fingerprint(root)
    data = backend.inspect(root)
    assert data.provision.startswith("1 step; last run: 1 step succeeded")
    assert "the list changed since" in data.provision
    assert data.provision_warn
    project.config.write_text('[provision]\nrun = ["old"]\n')
    provision_record.write_record(project, record)
    assert backend.fingerprint(root) != before
    again = backend.inspect(root)
    assert "changed" not in again.provision and not again.provision_warn
