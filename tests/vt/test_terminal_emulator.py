"""Emulator behaviour on hand-written sequences: modes, regions, replies, events, robustness."""

from __future__ import annotations

import random
import re

import pytest
from rich.cells import cell_len
from rich.style import Style

from vibebox_tui.terminal.render import Renderer
from vibebox_tui.terminal.vt.attrs import BOLD, TRUECOLOR, UNDERLINE, Attr, apply_sgr
from vibebox_tui.terminal.vt.emulator import (
    PLAIN_STRETCH,
    BellEvent,
    CommandEvent,
    Emulator,
    TitleEvent,
)
from vibebox_tui.terminal.vt.grid import HistoryLine, Line
from vibebox_tui.terminal.vt.history import BlockRow
from vibebox_tui.terminal.vt.plain import (
    LAZY_ROWS,
    Flood,
    feed_block,
    find_flood,
    plain_flow,
    plain_parts,
)
from vibebox_tui.terminal.vt.screen import Screen
from vibebox_tui.terminal.vt.sequences import NOT_PLAIN_CHAR, NOT_PLAIN_ESCAPE


def term(data: bytes | str, columns: int = 20, lines: int = 5) -> Emulator:
    emulator = Emulator(columns, lines)
    emulator.feed(data.encode() if isinstance(data, str) else data)
    return emulator


def rows(emulator: Emulator) -> list[str]:
    return [line.rstrip() for line in emulator.screen.display]


def cursor(emulator: Emulator) -> tuple[int, int]:
    return emulator.screen.cursor.x, emulator.screen.cursor.y


# -- SGR -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("", Attr()),
        ("1;31", Attr(fg=1, flags=BOLD)),
        ("38;5;208", Attr(fg=208)),
        ("38:5:208", Attr(fg=208)),
        ("48;2;1;2;3", Attr(bg=TRUECOLOR | 0x010203)),
        ("38:2::1:2:3", Attr(fg=TRUECOLOR | 0x010203)),
        ("38:2:1:2:3", Attr(fg=TRUECOLOR | 0x010203)),
        ("4:3", Attr(flags=UNDERLINE)),
        ("4:0", Attr()),
        ("58:2::9:9:9;1", Attr(flags=BOLD)),
        ("38;5", Attr()),  # truncated: ignored, no crash
        ("38;2;1", Attr()),
        ("x;1", Attr(flags=BOLD)),  # junk parameter skipped, the rest applies
        ("95;104", Attr(fg=13, bg=12)),
        ("1;22", Attr()),
    ],
)
def test_sgr_forms(params: str, expected: Attr) -> None:
    assert apply_sgr(Attr(), params) == expected


def test_private_sgr_is_ignored_and_text_after_it_kept() -> None:
    emulator = term("\x1b[1m\x1b[?4mA\x1b[>4;2mB\x1b[=5mC")
    assert rows(emulator)[0] == "ABC"
    table = emulator.screen.table
    assert table.attrs[emulator.screen.buffer[0].attrs[2]] == Attr(flags=BOLD)


# -- cursor, regions, editing --------------------------------------------------------------


def test_scroll_region_scrolls_only_inside() -> None:
    emulator = term("top\x1b[2;4r\x1b[4;1Ha\r\nb\r\nc", lines=5)
    assert rows(emulator) == ["top", "a", "b", "c", ""]
    emulator.feed(b"\r\nd")
    assert rows(emulator) == ["top", "b", "c", "d", ""]
    assert len(emulator.screen.scrollback) == 0  # region not at the top: no scrollback


def test_reverse_index_at_region_top_scrolls_down() -> None:
    emulator = term("1\r\n2\r\n3\x1b[1;3r\x1b[H\x1bM", lines=3)
    assert rows(emulator) == ["", "1", "2"]


def test_full_screen_scroll_feeds_scrollback() -> None:
    emulator = term("".join(f"{i}\r\n" for i in range(10)), lines=3)
    assert [line.text.rstrip() for line in emulator.screen.scrollback] == list("01234567")
    assert rows(emulator) == ["8", "9", ""]


def in_place_after(setup: bytes, output: bytes, lines: int = 5) -> bool:
    """Whether ``output``, after ``setup`` was painted, changed the screen in place."""
    emulator = term(setup, lines=lines)
    emulator.screen.clean()
    emulator.feed(output)
    return emulator.screen.changed_in_place()


@pytest.mark.parametrize("flood_path", [False, True])
def test_a_flood_streaming_by_is_told_from_what_is_drawn_in_place(flood_path: bool) -> None:
    many = b"".join(b"line %d\r\n" % i for i in range(200 if flood_path else 12))
    status = b"\x1b[2;5r\x1b[5;1H"  # a status line on row 1, output below it
    # streaming by: a screenful or more through the region
    assert not in_place_after(b"$ ", many)
    assert not in_place_after(status, many)
    assert not in_place_after(b"\x1b[?1049h", many)
    # drawn in place: an echo, a few lines, a status line, a new picture, nothing scrolled
    assert in_place_after(b"$ ", b"x")
    assert in_place_after(b"$ ", b"\r\n$ ")  # less than a screenful scrolled (less, vim)
    assert in_place_after(status, many + b"\x1b7\x1b[1;1HECHO-1\x1b8")
    assert in_place_after(b"$ ", many + b"\x1b[?1049h")
    assert in_place_after(b"$ ", b"\x1b[2L")  # insert lines: a program's redraw
    assert not in_place_after(b"$ ", b"")  # nothing changed


def test_insert_delete_chars_and_lines() -> None:
    emulator = term("abcdef\x1b[1;3H\x1b[2@XY", columns=8)
    assert rows(emulator)[0] == "abXYcdef"
    emulator.feed(b"\x1b[1;3H\x1b[2P")
    assert rows(emulator)[0] == "abcdef"
    emulator.feed(b"\r\nline2\x1b[1;1H\x1b[L")
    assert rows(emulator)[:3] == ["", "abcdef", "line2"]
    emulator.feed(b"\x1b[M")
    assert rows(emulator)[:2] == ["abcdef", "line2"]


def test_erase_in_line_and_display() -> None:
    emulator = term("hello world\x1b[1;6H\x1b[K")
    assert rows(emulator)[0] == "hello"
    emulator.feed(b"\x1b[1;3H\x1b[1K")
    assert rows(emulator)[0] == "   lo"
    emulator.feed(b"\x1b[2J")
    assert rows(emulator) == [""] * 5


def test_erase_uses_background_colour_only() -> None:
    emulator = term("\x1b[1;4;44m\x1b[2J")
    table = emulator.screen.table
    assert table.attrs[emulator.screen.buffer[2].attrs[5]] == Attr(bg=4)


def test_autowrap_and_pending_wrap() -> None:
    emulator = term("abcde", columns=5)
    assert cursor(emulator) == (5, 0)  # wrap pending, not yet taken
    emulator.feed(b"f")
    assert rows(emulator)[:2] == ["abcde", "f"]
    emulator = term("\x1b[?7labcdefg", columns=5)
    assert rows(emulator)[:2] == ["abcdg", ""]


def test_wide_char_overwritten_by_narrow_clears_its_other_half() -> None:
    emulator = term("漢字\x1b[1;2Hx")
    assert emulator.screen.buffer[0].chars[:4] == [" ", "x", "字", ""]


def test_tabs_and_backspace() -> None:
    emulator = term("a\tb\x08c\x1b[3g\r\td", columns=20)
    # a, tab to 8, b, back over it, c; then no tab stops left: tab goes to the last column
    assert rows(emulator)[0] == "a       c          d"


def test_dec_line_drawing_charset() -> None:
    emulator = term("\x1b(0lqk\x1b(Bq")
    assert rows(emulator)[0] == "┌─┐q"


# -- modes ---------------------------------------------------------------------------------


def test_decckm_and_keypad_and_bracketed_paste_modes() -> None:
    emulator = term("\x1b[?1h\x1b=\x1b[?2004h")
    assert emulator.app_cursor and emulator.app_keypad and emulator.bracketed_paste
    emulator.feed(b"\x1b[?1l\x1b>\x1b[?2004l")
    assert not (emulator.app_cursor or emulator.app_keypad or emulator.bracketed_paste)


@pytest.mark.parametrize("mode", [1049, 1047, 47])
def test_alternate_screen_modes(mode: int) -> None:
    emulator = term("main\r\n")
    emulator.feed(f"\x1b[?{mode}hALT".encode())
    assert emulator.screen.in_alt
    assert rows(emulator)[:2] == ["", "ALT"]  # cursor stays where it was
    assert "main" not in rows(emulator)
    emulator.feed(f"\x1b[?{mode}l".encode())
    assert not emulator.screen.in_alt
    assert rows(emulator)[0] == "main"


def test_1049_saves_and_restores_the_cursor() -> None:
    emulator = term("abc\x1b[?1049h\x1b[4;4Hx\x1b[?1049l")
    assert cursor(emulator) == (3, 0)


def test_alternate_screen_never_reaches_scrollback() -> None:
    emulator = term("\x1b[?1049h" + "".join(f"{i}\r\n" for i in range(20)), lines=3)
    assert len(emulator.screen.scrollback) == 0
    emulator.feed(b"\x1b[?1049l")
    assert rows(emulator) == ["", "", ""]


def test_resize_keeps_cursor_line_and_pushes_top_into_scrollback() -> None:
    emulator = term("1\r\n2\r\n3\r\n4\r\n5", lines=5)
    emulator.resize(10, 3)
    assert rows(emulator) == ["3", "4", "5"]
    assert cursor(emulator) == (1, 2)
    assert [line.text.rstrip() for line in emulator.screen.scrollback] == ["1", "2"]
    emulator.resize(30, 6)
    assert emulator.screen.columns == 30
    assert all(len(line.chars) == 30 for line in emulator.screen.buffer)


# -- replies and events --------------------------------------------------------------------


def test_status_and_attribute_queries_are_answered() -> None:
    emulator = term("ab\r\nc\x1b[5n\x1b[6n\x1b[c\x1b[>c\x1b[?6n\x1b[?2004$p\x1b[18t")
    assert emulator.take_replies() == (
        b"\x1b[0n\x1b[2;2R\x1b[?62;22c\x1b[>1;10;0c\x1b[?2;2R\x1b[?2004;2$y\x1b[8;5;20t"
    )


def test_title_and_vibebox_commands_are_events_not_text() -> None:
    emulator = term(
        "\x1b]0;one\x07\x1b]2;two\x1b\\\x1b]7777;vibebox-command=explain;t0k\x07ok\x07"
        "\x1b]7777;vibebox-command=new\x07"
    )
    assert emulator.take_events() == [
        TitleEvent("one"),
        TitleEvent("two"),
        CommandEvent("explain", "t0k"),  # the widget checks the token against its PTY's
        BellEvent(),
        CommandEvent("new", ""),
    ]
    assert rows(emulator)[0] == "ok"


def test_osc_split_across_reads() -> None:
    emulator = Emulator(20, 3)
    data = b"a\x1b]7777;vibebox-command=new;abc\x07b"
    for byte in data:
        emulator.feed(bytes([byte]))
    assert emulator.take_events() == [CommandEvent("new", "abc")]
    assert rows(emulator)[0] == "ab"


def test_text_that_merely_shows_a_command_is_not_a_command() -> None:
    emulator = term("echo ':new' vibebox-command=new\r\n")
    assert emulator.take_events() == []


def test_random_bytes_never_crash_the_parser() -> None:
    rnd = random.Random(1)
    alphabet = b"\x1b[]?>;:0123456789mHJKhlr\x07\\P\r\n\xe2\x82\xac\xff abc"
    emulator = Emulator(30, 8)
    for _ in range(300):
        emulator.feed(bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 60))))
    assert len(emulator.screen.buffer) == 8
    assert all(len(line.chars) == 30 for line in emulator.screen.buffer)


def test_dcs_strings_are_swallowed() -> None:
    assert rows(term("a\x1bPzz\x1b\\b"))[0] == "ab"


# -- rendering -----------------------------------------------------------------------------


def test_rendered_strips_are_exactly_as_wide_as_the_screen() -> None:
    emulator = term("e\u0301 漢字 ❤\ufe0f 👨\u200d👩\u200d👧 🇩🇪 end", columns=30, lines=2)
    renderer = Renderer(emulator.screen.table)
    strip = renderer.line(emulator.screen.buffer[0], 30)
    assert strip.cell_length == 30
    assert cell_len(strip.text) == 30
    assert strip.text.rstrip().endswith("end")


def test_renderer_caches_strips_until_the_line_changes() -> None:
    emulator = term("\x1b[31mred\x1b[0m plain", lines=2)
    renderer = Renderer(emulator.screen.table, Style(color="white", bgcolor="black"))
    line = emulator.screen.buffer[0]
    first = renderer.line(line, 20)
    assert renderer.line(line, 20) is first
    segment = next(iter(first))
    assert segment.text == "red" and segment.style is not None
    assert segment.style.color is not None and segment.style.color.number == 1
    emulator.feed(b"\x1b[1;1Hx")
    assert renderer.line(line, 20) is not first


def test_full_reset_keeps_pending_replies_and_events() -> None:
    emulator = term("\x1b]2;t\x07\x1b[5n\x1b[31mx\x1bcy")
    assert rows(emulator)[0] == "y"
    assert emulator.take_replies() == b"\x1b[0n"
    assert emulator.take_events() == [TitleEvent("t")]
    table = emulator.screen.table
    assert table.attrs[emulator.screen.buffer[0].attrs[0]] == Attr()


def test_fast_unicode_paths_draw_exactly_what_the_per_character_path_draws() -> None:
    from vibebox_tui.terminal.vt.screen import Screen

    rnd = random.Random(5)
    pieces = ["abc ", "é", "e\u0301", "─│┌", "█▓", "漢字", "かな", "한국", "❤\ufe0f", "👨\u200d👩"]
    pieces += ["🇩🇪", "Ω", "\u200b", "\uff71\uff72", "\uff21\uff22", "·", "x" * 7]
    for columns in (1, 2, 3, 7, 10):
        fast, slow = Screen(columns, 4), Screen(columns, 4)
        for _ in range(200):
            text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6)))
            fast.draw(text)
            slow._draw_unicode(text)
            if rnd.random() < 0.2:
                x, y = rnd.randrange(columns), rnd.randrange(4)
                for screen in (fast, slow):
                    screen.move_to(x, y)
            assert [line.chars for line in fast.buffer] == [line.chars for line in slow.buffer]
            assert [line.wrapped for line in fast.buffer] == [line.wrapped for line in slow.buffer]
            assert (fast.cursor.x, fast.cursor.y) == (slow.cursor.x, slow.cursor.y)


def _general_parser_only(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    """With ``fast`` False, every chunk goes through the general parser whole, as before
    the fast paths of plain output (plain.py) existed."""
    where = "vibebox_tui.terminal.vt.emulator"
    for name, pattern in ("NOT_PLAIN_CHAR", NOT_PLAIN_CHAR), ("NOT_PLAIN_ESCAPE", NOT_PLAIN_ESCAPE):
        # matching everywhere: no character is plain output
        monkeypatch.setattr(f"{where}.{name}", pattern if fast else re.compile(""))
    monkeypatch.setattr(f"{where}.PLAIN_STRETCH", PLAIN_STRETCH if fast else 1 << 30)
    monkeypatch.setattr(f"{where}.find_flood", find_flood if fast else lambda screen, text: None)


def _cells(emulator: Emulator) -> list[tuple[str, list[str], list[Attr], bool]]:
    screen = emulator.screen
    table = screen.table.attrs
    return [
        (where, list(line.chars), [table[a] for a in line.attrs], line.wrapped)
        for where, lines in (("history", list(screen.scrollback)), ("screen", screen.buffer))
        for line in lines
    ]


@pytest.mark.parametrize("columns", [1, 2, 3, 7, 10])
def test_plain_output_fast_path_draws_exactly_what_the_general_parser_draws(
    columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of text, SGRs, CRs and LFs (plain.py) against the same bytes token by token,
    over wide characters, pending wraps, scroll regions, LNM and background colours."""
    rnd = random.Random(columns)
    pieces = ["ab", "x" * 9, " ", "\x1b[31m", "\x1b[0m", "\x1b[m", "\x1b[1;44m", "\x1b[48;5;9m"]
    pieces += ["\x1b[38;2;1;2;3m", "\r\n", "\r\r\n", "\r", "\n", "\n\r", "zz"]
    wide = "漢字かな한국漢字"
    setups = [f"\x1b[H{wide}\x1b[2;1H{wide}\x1b[1;2H", f"\x1b[H{wide}\x1b[H", "\x1b[20h", ""]
    setups += ["\x1b[2;3r\x1b[3;1H", "\x1b[5;1H\x1b[44m"]
    for _ in range(40):
        chunks = [rnd.choice(setups)] + [
            "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12))) for _ in range(8)
        ]
        chunks.append("\x1b[2b")  # REP: the character the last chunk ended with, if any
        results = []
        for fast in (True, False):
            _general_parser_only(monkeypatch, fast)
            emulator = Emulator(columns, 5)
            for chunk in chunks:
                emulator.feed(chunk.encode())
            screen = emulator.screen
            cursor = (screen.cursor.x, screen.cursor.y, screen.table.attrs[screen.cursor.attr])
            results.append((_cells(emulator), cursor))
        assert results[0] == results[1], chunks
    assert plain_parts("a\x1b[1mb\r\r\nc") == ["a", "\x1b[1m", "b", "\r\r\n", "c"]
    assert plain_parts("a\tb") is None and plain_parts("\x1b[Ha") is None
    assert plain_parts("é") is None


def _flows(chunks: list[bytes]) -> bool:
    held, plain = b"", True
    for chunk in chunks:
        flows, held = plain_flow(chunk, held)
        plain = plain and flows
    return plain


@pytest.mark.parametrize(
    ("output", "plain"),
    [
        (b"\x1b[32mINFO\x1b[0m line 1 \x1b[38;2;1;2;3mrgb\x1b[m\r\nline 2\r\n", True),
        (b"half a line, then more", True),  # text on the cursor's row
        (b"\x1b7\x1b[1;1H\x1b[2Kecho\x1b8", False),  # drawn in place: an echo
        (b"50%\r60%", False),  # a lone CR goes back over the line
        (b"a\nb", False),  # a lone LF moves down without returning
        (b"ab\x08 \x08", False),  # bash erasing a character
        (b"\x1b[2J", False),
        (b"\x1b]0;title\x07", False),
        ("caf\u00e9\r\n".encode(), False),  # not ASCII: widths, charsets
        (b"tab\there", False),
    ],
)
def test_plain_flow_tells_a_flood_streaming_by_from_output_drawn_in_place(
    output: bytes, plain: bool
) -> None:
    """Cut anywhere, as reads are, the verdict is that of the whole output."""
    assert _flows([output]) is plain
    for cut in range(1, len(output)):
        assert _flows([output[:cut], output[cut:]]) is plain, cut


def test_plain_flow_carries_what_a_read_cut_to_the_next() -> None:
    assert plain_flow(b"line\r") == (True, b"\r")
    assert plain_flow(b"\nmore", b"\r") == (True, b"")
    assert plain_flow(b"x\x1b[38;5") == (True, b"\x1b[38;5")
    assert plain_flow(b"1;1H", b"\x1b[") == (False, b"")  # a cursor move after all


@pytest.mark.parametrize("columns", [1, 2, 3, 7, 10])
@pytest.mark.parametrize("limit", [3, 40])
@pytest.mark.parametrize("lazy", [0, 3, LAZY_ROWS])
def test_lines_scrolled_off_in_one_chunk_are_exactly_what_the_general_parser_leaves(
    columns: int, limit: int, lazy: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of many lines, most of which scroll off before the chunk ends (plain.py puts
    those straight into the scrollback, Grid.scroll_in), against the general parser: lines
    as long as the screen is wide (pending wrap) and longer, empty lines, colours that change
    mid-line and at line ends, lone CRs and bare LFs among them, scroll regions, the alternate
    screen, LNM, wide characters left on the screen, and a scrollback shorter than a chunk;
    with ``lazy`` rows and more besides a screenful, those that scroll off are kept as the
    output that drew them (history.py) and read back as cells here."""
    monkeypatch.setattr("vibebox_tui.terminal.vt.grid.SCROLLBACK_LINES", limit)
    monkeypatch.setattr("vibebox_tui.terminal.vt.plain.LAZY_ROWS", lazy)
    if lazy < LAZY_ROWS:
        monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.FLOOD_TEXT", 0)
    blocks: list[bool] = []

    def counted(screen: Screen, text: str, flood: Flood) -> bool:
        blocks.append(feed_block(screen, text, flood))
        return blocks[-1]

    monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.feed_block", counted)
    rnd = random.Random(100 + columns + limit)
    words = ["a", "bc", "x" * columns, "y" * (columns - 1), "z" * (2 * columns + 1), ""]
    sgrs = ["\x1b[31m", "\x1b[0m", "\x1b[44m", "\x1b[1;42m", "\x1b[m", ""]
    ends = ["\r\n"] * 8 + ["\n", "\r\r\n", "\r", "\n\r"]
    wide = "漢字かな한국漢字"
    setups = ["", "\x1b[20h", "\x1b[?1049h", "\x1b[1;3r\x1b[3;1H", "\x1b[2;4r\x1b[4;1H"]
    setups += [f"\x1b[H{wide}\x1b[5;1H{wide}\r\n", "\x1b[44m\x1b[2J\x1b[5;1H", "\x1b[1;9r"]
    setups += ["\x1b[3;1H", f"\x1b[4;1H{wide}\x1b[2A"]

    def line() -> str:
        return "".join(rnd.choice(sgrs) + rnd.choice(words) for _ in range(rnd.randint(0, 3)))

    for _ in range(25):
        chunks = [rnd.choice(setups)]
        for _ in range(4):
            # some chunks a pager or `cat` could send: every line ends in CR LF
            chunk_ends = rnd.choice([ends, ["\r\n"], ["\r\n", "\r\r\n"]])
            count = rnd.randint(1, 30)
            chunks.append("".join(line() + rnd.choice(chunk_ends) for _ in range(count)))
            chunks[-1] += line()  # most chunks end inside a line
        chunks.append("\x1b[2b")
        results = []
        for fast in (True, False):
            _general_parser_only(monkeypatch, fast)
            emulator = Emulator(columns, 5)
            for chunk in chunks:
                emulator.feed(chunk.encode())
            screen = emulator.screen
            state = (screen.cursor.x, screen.cursor.y, screen.table.attrs[screen.cursor.attr])
            results.append((_cells(emulator), state, screen.scrolled, len(screen.scrollback)))
        assert results[0] == results[1], chunks
    assert any(blocks) == (lazy < LAZY_ROWS)  # the test reached the block path (or not)


@pytest.mark.parametrize("columns", [1, 3, 10])
@pytest.mark.parametrize(("stretch", "credit"), [(1, 8), (64, 8), (8, 1)])
def test_plain_stretches_of_other_chunks_draw_exactly_what_the_general_parser_draws(
    columns: int, stretch: int, credit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks that mix plain output with everything else (cursor moves, erases, DECSC/DECRC,
    modes the fast path leaves to the general parser: insert, autowrap off, DEC graphics,
    LNM; the alternate screen, scroll regions, non-ASCII and combining characters, OSC, REP)
    parsed stretch by stretch against the same chunks parsed whole by the general parser."""
    rnd = random.Random(200 + columns + stretch + credit)
    plain = ["ab", "x" * 9, " ", "\x1b[31m", "\x1b[0m", "\x1b[1;44m", "\r\n", "\r", "\n"]
    plain += ["lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\r\n"]
    other = ["\x1b[H", "\x1b[2;3H", "\x1b7", "\x1b8", "\x1b[2K", "\x1b[J", "\x1b[4h", "\x1b[4l"]
    other += ["\x1b[?7l", "\x1b[?7h", "\x1b(0", "\x1b(B", "\x0e", "\x0f", "\x1b[20h", "\x1b[20l"]
    other += ["é", "e\u0301", "\u0301", "漢字", "\t", "\x08", "\x1b]0;t\x07", "\x1b[?1049h"]
    other += ["\x1b[?1049l", "\x1b[2;4r", "\x1b[r", "\x1b[3b", "\x1b[?m", "\x1b[1", "\x1b[P"]
    for _ in range(40):
        chunks = [
            "".join(
                rnd.choice(other if rnd.random() < 0.15 else plain)
                for _ in range(rnd.randint(1, 40))
            )
            for _ in range(6)
        ]
        results = []
        for fast in (True, False):
            _general_parser_only(monkeypatch, fast)
            if fast:
                monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.PLAIN_STRETCH", stretch)
                monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.PLAIN_CREDIT", credit)
            emulator = Emulator(columns, 5)
            for chunk in chunks:
                emulator.feed(chunk.encode())
            screen = emulator.screen
            state = (screen.cursor.x, screen.cursor.y, screen.table.attrs[screen.cursor.attr])
            results.append((_cells(emulator), state, screen.insert, screen.autowrap))
        assert results[0] == results[1], chunks


def test_rows_scrolled_off_unseen_become_history_rows_and_mark_the_screen() -> None:
    emulator = Emulator(4, 3)
    screen = emulator.screen
    emulator.feed(b"\x1b[3;1H\r\n")  # the cursor on a fresh bottom row
    screen.clean()
    emulator.feed(b"".join(b"%d\x1b[31mr\x1b[0m\r\n" % n for n in range(10)) + b"tail")
    assert rows(emulator) == ["8r", "9r", "tail"]
    history = list(screen.scrollback)
    assert all(isinstance(line, HistoryLine) for line in history)
    assert [line.text for line in history[-3:]] == ["5r  ", "6r  ", "7r  "]
    assert screen.scrolled == 11 and screen.dirty >= {0, 1, 2}
    assert all(isinstance(line, Line) for line in screen.buffer)


def test_rows_of_a_flood_are_kept_as_its_output_and_read_back_as_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk of a `cat`: its rows that scroll off unseen stay the output that drew them
    until read; read, they are the cells the general parser leaves, and a colour set before
    the chunk holds through it into the rows left on the screen."""
    ends = ["\r\n", "\r\n", "\r\r\n"]  # CR CR LF: a CR LF file through a PTY
    lines = "".join(
        f"{n}\x1b[1m!\x1b[22m{'w' * (n % 23)}{ends[n % 3]}" for n in range(3 * LAZY_ROWS)
    )
    # a reset (and the blue again) a third of the way in, a red from two thirds on
    lines = lines.replace("\r\n64", "\r\n\x1b[0m\x1b[44m64").replace("\r\n128", "\r\n\x1b[31m128")
    chunk = lines + "end"
    results = []
    for fast in (True, False):
        _general_parser_only(monkeypatch, fast)
        emulator = Emulator(10, 4)
        emulator.feed(b"\x1b[4;1H\x1b[44m\r\n")  # the cursor on a fresh bottom row
        emulator.feed(chunk.encode())
        history = list(emulator.screen.scrollback)
        if fast:
            assert sum(isinstance(row, BlockRow) for row in history) > LAZY_ROWS
        results.append(_cells(emulator))
    assert results[0] == results[1]
    assert rows(emulator)[-1] == "end"
    table = emulator.screen.table.attrs
    last = table[emulator.screen.buffer[-1].attrs[0]]
    assert (last.fg, last.bg) == (1, 4)  # red from the chunk, blue from before it


@pytest.mark.parametrize(
    "first",
    [
        *("", "\x1b[?1049h", "\x1b[1;3r", "\x1b[2;9r", "\x1b[?3h", "\x1b[5A", "\x1b[?7l"),
        *("\x1b[20h", "\x1b(0", "\x1b[4h", "\x1b[44m\x1b[2J", "\r", "\x1b[H"),
    ],
)
def test_a_floods_first_line_may_change_the_screen_it_scrolls_on(
    first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first lines of a flood's chunk are drawn before the rest is scrolled in at once:
    a mode, a scroll region, the alternate screen, a width or a cursor move among them
    leaves exactly what the general parser leaves."""
    lines = "".join(f"{n}\x1b[3{n % 8}m-\x1b[m{'w' * (n % 37)}\r\n" for n in range(3 * LAZY_ROWS))
    chunk = "a" + first + "b\r\n" + lines + "end"
    results = []
    for fast in (True, False):
        _general_parser_only(monkeypatch, fast)
        emulator = Emulator(20, 6)
        emulator.feed(b"\x1b[?40h\x1b[6;1H\r\n")  # DECCOLM allowed; a fresh bottom row
        emulator.feed(chunk.encode())
        screen = emulator.screen
        state = (screen.cursor.x, screen.cursor.y, screen.columns, screen.top, screen.bottom)
        results.append((_cells(emulator), state, len(screen.scrollback)))
        if fast and first in ("", "\x1b[1;3r"):  # with a flood to scroll in at once still
            # (after a sequence, the plain lines that follow it are a flood's stretch)
            assert any(isinstance(row, BlockRow) for row in screen.scrollback)
    assert results[0] == results[1]


@pytest.mark.parametrize(
    "setup",
    [
        *("\x1b[2;6r\x1b[6;1H", "\x1b[?1049h\x1b[6;1H"),
        *("\x1b[?1049h\x1b[2;5r\x1b[5;1H", "\x1b[3;6r\x1b[4;1H"),
    ],
)
def test_a_flood_in_a_lower_scroll_region_or_the_alternate_screen_drops_its_rows_unbuilt(
    setup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood under a status line (a scroll region below the top) or on the alternate
    screen: the rows that scroll off go nowhere, so they are not built at all; the screen
    and the scrollback are what the general parser leaves."""
    blocks: list[bool] = []

    def counted(screen: Screen, text: str, flood: Flood) -> bool:
        blocks.append(feed_block(screen, text, flood))
        return blocks[-1]

    monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.feed_block", counted)
    lines = "".join(f"{n}\x1b[3{n % 8}m-\x1b[m{'w' * (n % 37)}\r\n" for n in range(6 * LAZY_ROWS))
    results = []
    for fast in (True, False):
        _general_parser_only(monkeypatch, fast)
        emulator = Emulator(20, 6)
        emulator.feed(b"status\r\nkept\r\n" + setup.encode())
        emulator.feed((lines + "end").encode())
        screen = emulator.screen
        state = (screen.cursor.x, screen.cursor.y, screen.top, screen.bottom, screen.scrolled)
        results.append((_cells(emulator), state, len(screen.scrollback)))
    assert blocks == [True]  # the flood path took the chunk (and only with fast)
    assert results[0] == results[1]
    assert rows(emulator)[screen.bottom] == "end"


@pytest.mark.parametrize("setup", ["\x1b[6;1H\r\n", "\x1b[2;6r\x1b[6;1H"])
def test_a_flood_under_a_status_line_drawn_in_place_takes_the_flood_path_between_updates(
    setup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood with a status line drawn in place every so often (a build's progress line;
    bench_flood.py's echo: DECSC, CUP, EL, the text, DECRC), on the main screen and under a
    status line above a scroll region: the plain lines between two updates are scrolled in at
    once, and the screen, the cursor and the scrollback are what the general parser leaves."""
    blocks: list[bool] = []

    def counted(screen: Screen, text: str, flood: Flood) -> bool:
        blocks.append(feed_block(screen, text, flood))
        return blocks[-1]

    monkeypatch.setattr("vibebox_tui.terminal.vt.emulator.feed_block", counted)
    lines = [f"{n}\x1b[3{n % 8}m-\x1b[m{'w' * (n % 37)}\r\n" for n in range(40 * LAZY_ROWS)]
    for n in range(0, len(lines), 4 * LAZY_ROWS):  # an update every 7 KB or so
        lines[n] = f"\x1b7\x1b[1;1H\x1b[2Kstatus {n}\x1b8" + lines[n]
    text = "".join(lines) + "end"
    size = 1 << 14  # the chunks a PTY hands over, cut anywhere
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    results = []
    for fast in (True, False):
        _general_parser_only(monkeypatch, fast)
        emulator = Emulator(20, 6)
        emulator.feed(setup.encode())
        for chunk in chunks:
            emulator.feed(chunk.encode())
        screen = emulator.screen
        state = (screen.cursor.x, screen.cursor.y, screen.table.attrs[screen.cursor.attr])
        results.append((_cells(emulator), state, len(screen.scrollback)))
    assert blocks.count(True) > len(chunks)  # several stretches of a chunk each, not one
    assert results[0] == results[1]
    if "r" in setup:  # above the scroll region the status line stays
        assert rows(emulator)[0].startswith(f"status {len(lines) - 4 * LAZY_ROWS}")


def test_rows_scrolled_off_unseen_keep_attribute_ids_past_16_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chunk = "".join(f"\x1b[38;2;{n};1;2m{n}\x1b[48;5;{n % 256}m.\r\n" for n in range(60)) + "end"
    results = []
    for fast in (True, False):
        _general_parser_only(monkeypatch, fast)
        emulator = Emulator(6, 4)
        table = emulator.screen.table
        for n in range((1 << 16) - 40):  # a long session's attributes: the chunk goes past 16 bits
            table.intern(Attr(fg=TRUECOLOR | n, bg=TRUECOLOR | n))
        emulator.feed(b"\x1b[4;1H\r\n" + chunk.encode())
        results.append(_cells(emulator))
        assert max(emulator.screen.scrollback[-1].attrs) >= 1 << 16
    assert results[0] == results[1]


def test_scrollback_lines_are_compact_and_render_as_they_did_on_screen() -> None:
    emulator = term("\x1b[41mred\x1b[0m plain\r\n漢字 e\u0301\r\n" + "\r\n" * 5, columns=10)
    red, wide = list(emulator.screen.scrollback)[:2]
    assert isinstance(red, HistoryLine) and red.chars == "red plain " and red.text == red.chars
    assert isinstance(wide.chars, tuple) and wide.text.rstrip() == "漢字 e\u0301"
    renderer = Renderer(emulator.screen.table)
    for history in (red, wide):
        line = Line(10)
        line.chars[:] = list(history.chars)
        line.attrs[:] = list(history.attrs)
        assert list(renderer.line(history, 10)) == list(renderer.line(line, 10))
    many = Line(3)
    many.attrs[1] = 70000  # past 16 bits
    assert list(HistoryLine(many).attrs) == [0, 70000, 0]


def test_every_scroll_after_the_renderer_looked_marks_the_region_again() -> None:
    emulator = term("\x1b[2;4r\x1b[4;1H" + "x\r\n" * 3, lines=5)
    screen = emulator.screen
    assert screen.dirty >= {1, 2, 3}
    screen.clean()
    emulator.feed(b"y\r\n")
    assert screen.dirty >= {1, 2, 3}
    screen.clean()
    emulator.feed(b"\x1b[r\x1b[5;1Hz\r\n")  # a new region (the whole screen)
    assert screen.dirty == {0, 1, 2, 3, 4}


def test_synchronized_output_mode_is_tracked_and_reported() -> None:
    emulator = term("\x1b[?2026$p\x1b[?2026h\x1b[?2026$p")
    assert emulator.synchronized
    assert emulator.take_replies() == b"\x1b[?2026;2$y\x1b[?2026;1$y"
    emulator.feed(b"\x1b[?2026l")
    assert not emulator.synchronized


def test_sequences_cut_short_by_escape_are_dropped_not_drawn() -> None:
    emulator = term("a\x1b[12\x1b[31mb\x1b]0;title\x1b[0mc\x1bPq\x1b[1md")
    assert rows(emulator)[0] == "abcd"
    assert emulator.take_events() == []
    table = emulator.screen.table
    assert table.attrs[emulator.screen.buffer[0].attrs[1]].fg == 1


@pytest.mark.parametrize("split", range(1, 12))
def test_string_terminator_split_across_reads(split: int) -> None:
    data = b"a\x1bPzz\x1b\\b\x1b]2;t\x1b\\c"
    for cut in (split, split + 9):
        emulator = Emulator(20, 3)
        emulator.feed(data[:cut])
        emulator.feed(data[cut:])
        assert rows(emulator)[0] == "abc"
        assert emulator.take_events() == [TitleEvent("t")]


def test_cursor_outside_the_scroll_region_moves_freely_as_in_xterm() -> None:
    # pyte 0.8 pulls the cursor into the region here; xterm does not.
    emulator = term("\x1b[5;8r\x1bMab", columns=10, lines=12)  # DECSTBM homes to row 1
    assert cursor(emulator) == (2, 0) and rows(emulator)[0] == "ab"
    emulator = term("\x1b[2;6r\x1b[11;3H\r\nx", columns=10, lines=12)
    assert cursor(emulator) == (1, 11) and rows(emulator)[11] == "x"
    emulator = term("\x1b[3;6r\x1b[2;1H\x1b[5Ax", columns=10, lines=12)
    assert rows(emulator)[0] == "x"


def test_next_line_is_carriage_return_plus_line_feed() -> None:
    assert rows(term("ab\x1bEc"))[:2] == ["ab", "c"]


# -- xterm parity (issue 11): each of the known differences, pinned without the reference --


def test_leaving_the_alternate_screen_twice_still_restores_the_cursor() -> None:
    # as xterm: the second 1049l restores the main screen's saved cursor again
    emulator = term("a\r\nb\r\n\x1b[4;6H\x1b[?1049hdialog\x1b[?1049l\x1b[5;1H\x1b[?1049l")
    assert not emulator.screen.in_alt
    assert cursor(emulator) == (5, 3)


def test_c0_control_inside_a_csi_runs_and_the_csi_goes_on() -> None:
    emulator = term("abcdef\x1b[2\rD")  # CR inside CUB: CR runs, then CUB 2 from column 0
    assert rows(emulator)[0] == "abcdef"
    assert cursor(emulator) == (0, 0)
    emulator = term("ab\x1b[3\n;5HX")
    assert rows(emulator)[2] == "    X"


def test_full_reset_then_crlf_in_the_same_read_keeps_lines_apart() -> None:
    emulator = term("junk\x1bc\r\nfirst\r\nsecond")
    assert rows(emulator)[:3] == ["", "first", "second"]


def test_widths_follow_glibc_flags_vs16_zwj_and_indic_marks() -> None:
    emulator = term("\U0001f1e9\U0001f1eax|\u2764\ufe0fx|\U0001f468\u200d\U0001f469x|\u0915\u0903x")
    line = emulator.screen.buffer[0].chars
    assert line[:3] == ["\U0001f1e9", "\U0001f1ea", "x"]  # a regional indicator is 1 cell
    assert line[4:6] == ["\u2764\ufe0f", "x"]  # VS16 joins, adds no cell
    assert line[7:12] == ["\U0001f468\u200d", "", "\U0001f469", "", "x"]  # 2 + 0 + 2
    assert line[13:16] == ["\u0915", "\u0903", "x"]  # a spacing mark takes a cell


def test_width_table_is_the_c_library_wcwidth() -> None:
    import ctypes
    import ctypes.util
    import platform

    from vibebox_tui.terminal.vt.wcwidth_table import SOURCE
    from vibebox_tui.terminal.vt.widths import code_width

    if f"{platform.libc_ver()[0]} {platform.libc_ver()[1]}" != SOURCE:
        pytest.skip(f"the table is {SOURCE}'s; this C library is {platform.libc_ver()}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.setlocale.restype = ctypes.c_char_p
    libc.setlocale.argtypes = [ctypes.c_int, ctypes.c_char_p]
    assert libc.setlocale(0, b"C.UTF-8")
    wcwidth = libc.wcwidth
    wcwidth.argtypes = [ctypes.c_uint32]
    for code in [*range(0x20, 0x3400), *range(0xA000, 0x30000, 7), *range(0xE0000, 0xE0200)]:
        if 0xD800 <= code < 0xE000:
            continue
        want = wcwidth(code)
        assert code_width(code) == (1 if want < 0 else want), hex(code)


def test_deccolm_is_ignored_unless_mode_40_allows_it() -> None:
    emulator = term("keep\x1b[?3h\x1b[?3l")
    assert rows(emulator)[0] == "keep"
    emulator = term("gone\x1b[2;3H\x1b[?40h\x1b[?3h")
    assert rows(emulator)[0] == "" and cursor(emulator) == (0, 0)


@pytest.mark.parametrize("cancel", ["\x18", "\x1a"])
def test_can_and_sub_abort_osc_and_dcs_strings(cancel: str) -> None:
    emulator = term(f"\x1b]0;title{cancel}shown\x1bPq#0{cancel}too")
    assert emulator.title == ""
    assert "shown" in rows(emulator)[0] and rows(emulator)[0].endswith("too")


def test_dec_special_graphics_is_xterms_table() -> None:
    emulator = term("\x1b(0+,-.0h_`aqx~\x1b(B")
    assert rows(emulator)[0] == "+,-.0\u2424 \u25c6\u2592\u2500\u2502\u00b7"


def test_malformed_csis_are_swallowed() -> None:
    assert rows(term("a\x1b[ 1mb\x1b[1?25lc\x1b[3\x7fCd"))[0] == "abc   d"


def test_decrc_restores_origin_and_pending_wrap_but_not_autowrap() -> None:
    emulator = term("\x1b[?7l\x1b7\x1b[?7h\x1b8" + "x" * 25)
    assert emulator.screen.autowrap
    assert rows(emulator)[1] == "xxxxx"
    emulator = term("x" * 19 + "y\x1b7\x1b[1;1H\x1b8Z")
    assert rows(emulator)[1] == "Z"


def test_pending_wrap_kept_by_tab_ended_by_ech() -> None:
    assert rows(term("x" * 20 + "\tZ"))[1] == "Z"
    emulator = term("x" * 20 + "\x1b[XZ")
    assert rows(emulator)[0] == "x" * 19 + "Z" and rows(emulator)[1] == ""


def test_vpa_honours_origin_mode() -> None:
    emulator = term("\x1b[2;4r\x1b[?6h\x1b[2dX")
    assert rows(emulator)[2] == "X"


def test_rep_repeats_the_last_graphic_character_only_right_after_it() -> None:
    assert rows(term("ab\x1b[3b"))[0] == "abbbb"
    assert rows(term("ab\r\x1b[3bz"))[0] == "zb"
    assert rows(term("a\x1b[31m\x1b[3bz"))[0] == "az"
    assert rows(term("\x1b(0q\x1b[2b\x1b(B"))[0] == "\u2500" * 3


def test_decstr_resets_the_charsets() -> None:
    assert rows(term("\x1b(0q\x1b[!pq"))[0] == "\u2500q"


def test_lnm_makes_line_feed_return_the_carriage() -> None:
    emulator = term("\x1b[20habc\ndef")
    assert rows(emulator)[:2] == ["abc", "def"]
    assert emulator.take_replies() == b""
    emulator.feed(b"\x1b[20$p")
    assert emulator.take_replies() == b"\x1b[20;1$y"


def test_dch_and_ich_never_strand_half_a_wide_character() -> None:
    for data in ("a字b\x1b[1;3H\x1b[P", "a字b\x1b[1;3H\x1b[@", "x" * 17 + "字\x1b[1;1H\x1b[@"):
        chars = term(data).screen.buffer[0].chars
        for x, char in enumerate(chars):
            if char == "":
                assert x > 0 and chars[x - 1] not in ("", " ")  # a right half has its left
            elif x + 1 < len(chars) and char in ("字",):
                assert chars[x + 1] == ""  # a left half has its right


def test_decaln_homes_and_resets_margins() -> None:
    emulator = term("\x1b[2;4r\x1b[?6h\x1b[3;3H\x1b#8")
    assert cursor(emulator) == (0, 0)
    assert not emulator.screen.origin and emulator.screen.bottom == 4
    assert all(row == "E" * 20 for row in rows(emulator))
