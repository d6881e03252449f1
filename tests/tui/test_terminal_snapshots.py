"""Snapshots of the terminal widget alone, replaying recorded programs at exactly 80x24.

Regenerate with ``pytest tests/tui/test_terminal_snapshots.py --snapshot-update`` and look at
the SVGs in ``__snapshots__/`` before committing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import TerminalView

RECORDINGS = Path(__file__).parent.parent / "data" / "terminal"
SnapCompare = Callable[..., bool]


class Replay(App[None]):
    CSS = "Screen { background: black; } TerminalView { background: black; color: #d0d0d0; }"

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.stream = MemoryStream()
        self.stream.feed(data)

    def compose(self) -> ComposeResult:
        yield TerminalView(self.stream)

    def on_mount(self) -> None:
        self.query_one(TerminalView).focus()


def recorded(name: str, mark: str) -> bytes:
    meta = json.loads((RECORDINGS / f"{name}.json").read_text())
    offset = next(m["offset"] for m in meta["marks"] if m["name"] == mark)
    return (RECORDINGS / f"{name}.bin").read_bytes()[:offset]


@pytest.mark.parametrize(
    ("name", "mark", "expect"),
    [
        ("vim", "edited", "import sys"),
        ("unicode", "done", "wide-wrap"),
        ("sgr", "done", "ORANGE"),
        ("ls", "done", "run.sh"),
    ],
)
def test_recorded_program(snap_compare: SnapCompare, name: str, mark: str, expect: str) -> None:
    app = Replay(recorded(name, mark))

    async def settle(pilot: Pilot[None]) -> None:
        term = pilot.app.query_one(TerminalView)
        while expect not in "\n".join(term.emulator.screen.display):
            await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)
