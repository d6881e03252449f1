"""Emulation checked on byte streams recorded from real programs (tests/data/terminal/).

The recordings were made at 80x24 with TERM=xterm-256color by
``tests/data/terminal/record.py``; each has marks (byte offsets) taken after each scripted
input, so a test can replay a prefix and check the screen at that moment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyte
import pytest
from pyte.graphics import BG_AIXTERM, BG_ANSI, FG_AIXTERM, FG_ANSI, FG_BG_256

from vibebox_tui.terminal.vt.attrs import (
    BOLD,
    DEFAULT,
    DIM,
    ITALIC,
    REVERSE,
    STRIKE,
    TRUECOLOR,
    UNDERLINE,
    Attr,
)
from vibebox_tui.terminal.vt.emulator import Emulator

DATA = Path(__file__).resolve().parents[1] / "data" / "terminal"


def recording(name: str) -> tuple[bytes, dict[str, int]]:
    meta = json.loads((DATA / f"{name}.json").read_text())
    assert (meta["cols"], meta["rows"]) == (80, 24)
    return (DATA / f"{name}.bin").read_bytes(), {m["name"]: m["offset"] for m in meta["marks"]}


def replay(name: str, mark: str | None = None, *, chunk: int = 0) -> Emulator:
    data, marks = recording(name)
    if mark is not None:
        data = data[: marks[mark]]
    emulator = Emulator(80, 24)
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        emulator.feed(data[i : i + step])
    return emulator


def attr_at(emulator: Emulator, x: int, y: int) -> Attr:
    screen = emulator.screen
    return screen.table.attrs[screen.buffer[y].attrs[x]]


def rows(emulator: Emulator) -> list[str]:
    return [line.rstrip() for line in emulator.screen.display]


def rgb(r: int, g: int, b: int) -> int:
    return TRUECOLOR | (r << 16) | (g << 8) | b


# -- vim -----------------------------------------------------------------------------------


def test_vim_opens_file_on_alternate_screen_with_syntax_colours() -> None:
    emulator = replay("vim", "opened")
    screen = emulator.screen
    assert screen.in_alt
    assert emulator.app_cursor and emulator.app_keypad and emulator.bracketed_paste
    text = rows(emulator)
    assert text[0] == 'print("hello")'
    assert text[3] == "def main() -> int:"
    assert text[4] == "    return 0"
    assert all(row == "~" for row in text[5:23])
    assert text[23].startswith('"/tmp/vbx-rec/hello.py" 5L, 49B')
    assert text[23].endswith("1,1           All")
    assert attr_at(emulator, 0, 0).fg == 6  # "print": cyan
    assert attr_at(emulator, 6, 0).fg == 1  # "hello": red
    assert attr_at(emulator, 0, 3).fg == 130  # "def": 256-colour brown
    assert attr_at(emulator, 0, 5).fg == 12  # "~": bright blue
    assert (screen.cursor.x, screen.cursor.y) == (0, 0)


def test_vim_answers_its_startup_queries() -> None:
    emulator = replay("vim", "opened")
    replies = emulator.take_replies()
    # two cursor position reports (vim measures ambiguous-width glyphs), DA2, fg/bg colours
    assert replies.count(b"R") == 2
    assert b"\x1b[>1;10;0c" in replies
    assert b"\x1b]10;rgb:" in replies and b"\x1b]11;rgb:" in replies


def test_vim_edit_shows_new_line_and_cursor() -> None:
    emulator = replay("vim", "edited")
    text = rows(emulator)
    assert text[5] == "import sys"
    assert attr_at(emulator, 0, 5).fg == 5  # "import": magenta
    assert text[23].endswith("6,10          All")
    assert (emulator.screen.cursor.x, emulator.screen.cursor.y) == (9, 5)


def test_vim_quit_restores_main_screen_and_modes() -> None:
    emulator = replay("vim", "quit")
    assert not emulator.screen.in_alt
    assert not emulator.app_cursor and not emulator.app_keypad and not emulator.bracketed_paste
    assert emulator.cursor_visible
    assert all(row == "" for row in rows(emulator))  # main screen as it was before vim
    assert emulator.screen.scrollback == type(emulator.screen.scrollback)()


def test_vim_byte_by_byte_equals_whole() -> None:
    whole = replay("vim", "edited")
    split = replay("vim", "edited", chunk=1)
    assert split.screen.display == whole.screen.display
    assert [line.attrs for line in split.screen.buffer] == [
        line.attrs for line in whole.screen.buffer
    ]
    assert (split.screen.cursor.x, split.screen.cursor.y) == (9, 5)


# -- less ----------------------------------------------------------------------------------


def test_less_pages_on_alternate_screen_and_leaves_no_trace() -> None:
    opened = replay("less", "opened")
    assert opened.screen.in_alt
    assert rows(opened)[0] == "line 001 of the text"
    assert rows(opened)[23] == "/tmp/vbx-rec/lines.txt"
    assert attr_at(opened, 0, 23).flags & REVERSE
    paged = replay("less", "paged")
    assert rows(paged)[0] == "line 024 of the text"
    assert rows(paged)[22] == "line 046 of the text"
    assert rows(paged)[23] == ":"
    assert (paged.screen.cursor.x, paged.screen.cursor.y) == (1, 23)
    quit_ = replay("less", "quit")
    assert not quit_.screen.in_alt
    assert all(row == "" for row in rows(quit_))
    assert len(quit_.screen.scrollback) == 0  # the alternate screen never scrolls back


# -- top -----------------------------------------------------------------------------------


def test_top_header_bold_numbers_and_reverse_column_titles() -> None:
    emulator = replay("top", "running")
    text = rows(emulator)
    assert text[0].startswith("top - ")
    assert text[1].startswith("Tasks:")
    assert text[6].split()[:2] == ["PID", "USER"]
    assert attr_at(emulator, 0, 6).flags & REVERSE
    assert attr_at(emulator, 8, 1).flags & BOLD  # the task count
    assert not emulator.cursor_visible  # top hides the cursor
    assert emulator.app_cursor


# -- ls ------------------------------------------------------------------------------------


def test_coloured_ls() -> None:
    emulator = replay("ls")
    assert rows(emulator)[:5] == ["adir", "archive.tar.gz", "link", "plain.txt", "run.sh"]
    assert attr_at(emulator, 0, 0) == Attr(fg=4, flags=BOLD)  # directory
    assert attr_at(emulator, 0, 1) == Attr()  # plain file
    assert attr_at(emulator, 0, 2) == Attr(fg=6, flags=BOLD)  # symlink
    assert attr_at(emulator, 0, 4) == Attr(fg=2, flags=BOLD)  # executable
    assert (emulator.screen.cursor.x, emulator.screen.cursor.y) == (0, 5)


# -- a program on the alternate screen that exits ------------------------------------------


def test_alternate_screen_program_exits_and_main_screen_returns() -> None:
    inside = replay("altscreen", "inside")
    assert inside.screen.in_alt
    assert rows(inside)[0] == "inside alt"
    assert rows(inside)[10] == "     at 10,5"
    done = replay("altscreen", "done")
    assert not done.screen.in_alt
    assert rows(done)[:3] == ["before", "after", ""]
    assert (done.screen.cursor.x, done.screen.cursor.y) == (0, 2)


# -- progress bar --------------------------------------------------------------------------


def test_progress_bar_redrawn_with_carriage_return() -> None:
    emulator = replay("progress")
    assert rows(emulator)[:3] == ["[####################] 100%", "done", ""]
    assert attr_at(emulator, 0, 0).fg == 2
    assert attr_at(emulator, 23, 0) == Attr()


# -- emoji and CJK -------------------------------------------------------------------------


def test_emoji_and_cjk_keep_the_rest_of_the_line() -> None:
    emulator = replay("unicode")
    text = rows(emulator)
    assert text[0] == "CJK: 漢字かなカナ end"
    assert text[1] == "VS16: ❤\ufe0f heart | end"
    assert text[2] == "ZWJ: 👨\u200d👩\u200d👧 family | end"
    assert text[3] == "flag: 🇩🇪 de | end"
    assert text[4] == "combining: e\u0301 cafe\u0301 | end"
    line = emulator.screen.buffer[0]
    assert line.chars[5:7] == ["漢", ""]  # a wide character and its right half
    assert line.chars[17:21] == list(" end")  # 5 + 6 wide characters = 17 columns
    # a wide character that does not fit in the last column wraps whole
    assert text[5] == "wide-wrap: " + "字" * 34
    assert emulator.screen.buffer[5].wrapped
    assert text[6] == "字" * 6


def test_utf8_split_across_reads() -> None:
    whole = replay("unicode")
    split = replay("unicode", chunk=1)
    assert split.screen.display == whole.screen.display


# -- private and colon-form SGR ------------------------------------------------------------


def test_private_and_colon_sgr_keep_the_rest_of_the_chunk() -> None:
    emulator = replay("sgr")
    assert rows(emulator)[0] == "ABREDCURLYTRUEORANGEALLDIMULEND"
    words = ("A", "RED", "CURLY", "TRUE", "ORANGE", "ALL", "DIM")
    x = {word: rows(emulator)[0].index(word) for word in words}
    assert attr_at(emulator, x["A"], 0) == Attr()  # CSI ? 1;2 m changes nothing
    assert attr_at(emulator, x["RED"], 0) == Attr(fg=rgb(255, 0, 0))
    assert attr_at(emulator, x["CURLY"], 0) == Attr(fg=rgb(255, 0, 0), flags=UNDERLINE)
    assert attr_at(emulator, x["TRUE"], 0) == Attr(fg=rgb(0, 128, 255))
    assert attr_at(emulator, x["ORANGE"], 0) == Attr(fg=208)
    everything = BOLD | ITALIC | UNDERLINE | REVERSE | STRIKE
    assert attr_at(emulator, x["ALL"], 0) == Attr(flags=everything)
    assert attr_at(emulator, x["DIM"], 0) == Attr(flags=DIM)
    assert not emulator.cursor_visible


def test_stock_pyte_crashes_on_the_private_sgr_recording() -> None:
    # Why the parser is our own: pyte 0.8.2 raises on CSI ? ... m.
    data, _ = recording("sgr")
    with pytest.raises(TypeError):
        pyte.ByteStream(pyte.Screen(80, 24)).feed(data)


# -- same screen (text, cursor, colours, attributes) as pyte where pyte is right -----------


@pytest.mark.parametrize(
    ("name", "mark"),
    [
        ("less", "opened"),
        ("less", "paged"),
        ("top", "running"),
        ("top", "quit"),
        ("ls", "done"),
        ("altscreen", "inside"),
        ("progress", "done"),
    ],
)
def test_screen_identical_to_pyte(name: str, mark: str) -> None:
    data, marks = recording(name)
    data = data[: marks[mark]]
    reference = pyte.Screen(80, 24)
    pyte.ByteStream(reference).feed(data)
    emulator = Emulator(80, 24)
    emulator.feed(data)
    assert emulator.screen.display == reference.display
    cursor = emulator.screen.cursor
    assert (cursor.x, cursor.y) == (reference.cursor.x, reference.cursor.y)
    table = emulator.screen.table
    for y, line in enumerate(emulator.screen.buffer):
        ours = [as_pyte(table.attrs[attr]) for attr in line.attrs]
        theirs = [
            (c.fg, c.bg, c.bold, c.italics, c.underscore, c.reverse, c.strikethrough)
            for c in (reference.buffer[y][x] for x in range(80))
        ]
        assert ours == theirs, f"row {y}"


def _pyte_color(value: int, *, background: bool) -> str:
    if value == DEFAULT:
        return "default"
    if value & TRUECOLOR:
        return f"{value & 0xFFFFFF:06x}"
    if value < 8:
        return (BG_ANSI if background else FG_ANSI)[(40 if background else 30) + value]
    if value < 16:
        return (BG_AIXTERM if background else FG_AIXTERM)[(100 if background else 90) + value - 8]
    return str(FG_BG_256[value])


def as_pyte(attr: Attr) -> tuple[str, str, bool, bool, bool, bool, bool]:
    """Our attribute in pyte's terms (colour names / hex), for the comparison above."""
    return (
        _pyte_color(attr.fg, background=False),
        _pyte_color(attr.bg, background=True),
        bool(attr.flags & BOLD),
        bool(attr.flags & ITALIC),
        bool(attr.flags & UNDERLINE),
        bool(attr.flags & REVERSE),
        bool(attr.flags & STRIKE),
    )


@pytest.mark.parametrize(
    "name", ["vim", "less", "top", "ls", "altscreen", "progress", "unicode", "sgr"]
)
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_any_read_boundaries_give_the_same_screen(name: str, chunk: int) -> None:
    whole, split = replay(name), replay(name, chunk=chunk)
    assert split.screen.display == whole.screen.display
    assert [line.attrs for line in split.screen.buffer] == [
        line.attrs for line in whole.screen.buffer
    ]
    assert (split.screen.cursor.x, split.screen.cursor.y) == (
        whole.screen.cursor.x,
        whole.screen.cursor.y,
    )
    assert split.take_replies() == whole.take_replies()
    assert split.take_events() == whole.take_events()
