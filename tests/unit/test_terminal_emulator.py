"""Emulator behaviour on hand-written sequences: modes, regions, replies, events, robustness."""

from __future__ import annotations

import random

import pytest
from rich.cells import cell_len
from rich.style import Style

from vibebox_tui.terminal.attrs import BOLD, TRUECOLOR, UNDERLINE, Attr, apply_sgr
from vibebox_tui.terminal.emulator import BellEvent, CommandEvent, Emulator, TitleEvent
from vibebox_tui.terminal.render import Renderer


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
    from vibebox_tui.terminal.screen import Screen

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
