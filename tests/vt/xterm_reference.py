"""Run xterm.js (``@xterm/headless``, the reference engine) on byte streams and compare its
screens with the emulator's, cell by cell.

The node project is ``tests/conformance/`` (``npm ci`` there, done by ``.ci/setup``); one node
process renders every case handed to :func:`reference_screens`.

Also a tool: ``python tests/vt/xterm_reference.py FILE [COLS ROWS]`` prints the cells where
the emulator and xterm.js disagree for the bytes in FILE.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vibebox_tui.terminal.vt.emulator import Emulator

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
DUMP_JS = CONFORMANCE / "dump.js"

Cell = tuple[str, int, int, int, int]  # text, width, fg, bg, flags


@dataclass
class ScreenState:
    """What is compared: the cells, the cursor, its visibility and the active buffer."""

    cells: list[list[Cell]]
    cursor: tuple[int, int]
    cursor_hidden: bool
    alternate: bool


def reference_available() -> str | None:
    """Why the reference engine cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (.ci/setup installs nodejs)"
    if not (CONFORMANCE / "node_modules" / "@xterm" / "headless").is_dir():
        return "@xterm/headless is not installed: run `npm ci` in tests/conformance"
    return None


def _norm(text: str, width: int, fg: int, bg: int, flags: int) -> Cell:
    if text == "" and width == 1:
        text = " "  # xterm.js leaves never-written cells empty; a blank is a blank
    return (text, width, fg, bg, flags)


def reference_screens(cases: list[tuple[bytes, int, int]]) -> list[ScreenState]:
    """xterm.js's screen after each (bytes, columns, lines) case, in one node process."""
    payload = [
        {"cols": cols, "rows": rows, "data": base64.b64encode(data).decode()}
        for data, cols, rows in cases
    ]
    done = subprocess.run(
        ["node", str(DUMP_JS)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        check=True,
        cwd=CONFORMANCE,
        timeout=120,
    )
    out: list[ScreenState] = []
    for screen in json.loads(done.stdout):
        cells = [[_norm(*cell) for cell in row] for row in screen["lines"]]
        out.append(
            ScreenState(
                cells,
                (screen["cursor"][0], screen["cursor"][1]),
                screen["cursorHidden"],
                screen["buffer"] == "alternate",
            )
        )
    return out


def emulator_state(emulator: Emulator) -> ScreenState:
    """The emulator's screen in the reference's terms."""
    screen = emulator.screen
    attrs = screen.table.attrs
    cells: list[list[Cell]] = []
    for line in screen.buffer:
        row: list[Cell] = []
        chars = line.chars
        for x, text in enumerate(chars):
            attr = attrs[line.attrs[x]]
            if text == "":
                width = 0
            elif x + 1 < len(chars) and chars[x + 1] == "":
                width = 2
            else:
                width = 1
            row.append(_norm(text, width, attr.fg, attr.bg, attr.flags))
        cells.append(row)
    cursor = (screen.cursor.x, screen.cursor.y)
    return ScreenState(cells, cursor, not emulator.cursor_visible, screen.in_alt)


def run_emulator(data: bytes, cols: int, rows: int) -> ScreenState:
    emulator = Emulator(cols, rows)
    emulator.feed(data)
    return emulator_state(emulator)


def differences(ours: ScreenState, ref: ScreenState) -> list[str]:
    """Human-readable differences; empty when the screens agree."""
    out: list[str] = []
    if ours.alternate != ref.alternate:
        out.append(f"buffer: ours alternate={ours.alternate}, xterm.js {ref.alternate}")
    if ours.cursor != ref.cursor:
        out.append(f"cursor: ours {ours.cursor}, xterm.js {ref.cursor}")
    if ours.cursor_hidden != ref.cursor_hidden:
        out.append(f"cursor hidden: ours {ours.cursor_hidden}, xterm.js {ref.cursor_hidden}")
    for y, (mine, theirs) in enumerate(zip(ours.cells, ref.cells, strict=True)):
        for x, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            if a != b:
                out.append(f"cell {x},{y}: ours {a!r}, xterm.js {b!r}")
    return out


def main(argv: list[str]) -> int:
    data = Path(argv[1]).read_bytes()
    cols, rows = (int(argv[2]), int(argv[3])) if len(argv) > 3 else (80, 24)
    diffs = differences(run_emulator(data, cols, rows), reference_screens([(data, cols, rows)])[0])
    for line in diffs[:200]:
        print(line)
    print(f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
