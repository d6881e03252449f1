"""Key encoding: every key group, both cursor-key modes, modifiers, bracketed paste."""

from __future__ import annotations

import pytest

from vibebox_tui.terminal.keys import PASTE_END, PASTE_START, encode_key, encode_paste


@pytest.mark.parametrize("app_cursor", [False, True])
@pytest.mark.parametrize(
    ("key", "final"),
    [("up", "A"), ("down", "B"), ("right", "C"), ("left", "D"), ("home", "H"), ("end", "F")],
)
def test_cursor_keys_follow_decckm(app_cursor: bool, key: str, final: str) -> None:
    expected = f"\x1bO{final}" if app_cursor else f"\x1b[{final}"
    assert encode_key(key, app_cursor=app_cursor) == expected.encode()


@pytest.mark.parametrize("app_cursor", [False, True])
@pytest.mark.parametrize(
    ("modifiers", "param"),
    [("shift+", 2), ("alt+", 3), ("alt+shift+", 4), ("ctrl+", 5), ("ctrl+shift+", 6)],
)
def test_modified_cursor_keys_use_csi_1_m_in_both_modes(
    app_cursor: bool, modifiers: str, param: int
) -> None:
    assert encode_key(f"{modifiers}up", app_cursor=app_cursor) == f"\x1b[1;{param}A".encode()
    assert encode_key(f"{modifiers}end", app_cursor=app_cursor) == f"\x1b[1;{param}F".encode()


@pytest.mark.parametrize("app_cursor", [False, True])
@pytest.mark.parametrize(
    ("key", "code"), [("insert", 2), ("delete", 3), ("pageup", 5), ("pagedown", 6)]
)
def test_editing_keys(app_cursor: bool, key: str, code: int) -> None:
    assert encode_key(key, app_cursor=app_cursor) == f"\x1b[{code}~".encode()
    assert encode_key(f"ctrl+{key}", app_cursor=app_cursor) == f"\x1b[{code};5~".encode()
    assert encode_key(f"shift+{key}", app_cursor=app_cursor) == f"\x1b[{code};2~".encode()
    assert encode_key(f"alt+{key}", app_cursor=app_cursor) == f"\x1b[{code};3~".encode()


FUNCTION_KEYS = {
    1: ("\x1bOP", "\x1b[1;{}P"),
    2: ("\x1bOQ", "\x1b[1;{}Q"),
    3: ("\x1bOR", "\x1b[1;{}R"),
    4: ("\x1bOS", "\x1b[1;{}S"),
    5: ("\x1b[15~", "\x1b[15;{}~"),
    6: ("\x1b[17~", "\x1b[17;{}~"),
    7: ("\x1b[18~", "\x1b[18;{}~"),
    8: ("\x1b[19~", "\x1b[19;{}~"),
    9: ("\x1b[20~", "\x1b[20;{}~"),
    10: ("\x1b[21~", "\x1b[21;{}~"),
    11: ("\x1b[23~", "\x1b[23;{}~"),
    12: ("\x1b[24~", "\x1b[24;{}~"),
}


@pytest.mark.parametrize("app_cursor", [False, True])
@pytest.mark.parametrize("number", sorted(FUNCTION_KEYS))
def test_function_keys_with_modifiers(app_cursor: bool, number: int) -> None:
    plain, modified = FUNCTION_KEYS[number]
    assert encode_key(f"f{number}", app_cursor=app_cursor) == plain.encode()
    for modifiers, param in (("shift+", 2), ("alt+", 3), ("ctrl+", 5), ("ctrl+shift+", 6)):
        key = f"{modifiers}f{number}"
        assert encode_key(key, app_cursor=app_cursor) == modified.format(param).encode()


def test_high_function_numbers_are_shifted_and_ctrl_function_keys() -> None:
    assert encode_key("f13") == b"\x1b[1;2P"  # xterm: shift+F1
    assert encode_key("f17") == b"\x1b[15;2~"  # shift+F5
    assert encode_key("f29") == b"\x1b[15;5~"  # ctrl+F5


@pytest.mark.parametrize(
    ("key", "character", "expected"),
    [
        ("a", "a", b"a"),
        ("A", "A", b"A"),
        ("exclamation_mark", "!", b"!"),
        ("space", " ", b" "),
        ("é", "é", "é".encode()),
        ("enter", "\r", b"\r"),
        ("tab", "\t", b"\t"),
        ("shift+tab", None, b"\x1b[Z"),
        ("backspace", "\x7f", b"\x7f"),
        ("ctrl+backspace", None, b"\x08"),
        ("escape", "\x1b", b"\x1b"),
    ],
)
def test_printable_and_basic_keys(key: str, character: str | None, expected: bytes) -> None:
    assert encode_key(key, character) == expected
    assert encode_key(key, character, app_cursor=True) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ctrl+a", b"\x01"),
        ("ctrl+c", b"\x03"),
        ("ctrl+z", b"\x1a"),
        ("ctrl+space", b"\x00"),
        ("ctrl+at", b"\x00"),
        ("ctrl+left_square_bracket", b"\x1b"),
        ("ctrl+backslash", b"\x1c"),
        ("ctrl+right_square_bracket", b"\x1d"),
        ("ctrl+circumflex_accent", b"\x1e"),
        ("ctrl+underscore", b"\x1f"),
        ("ctrl+shift+a", b"\x01"),
    ],
)
def test_ctrl_combinations(key: str, expected: bytes) -> None:
    assert encode_key(key, None) == expected


@pytest.mark.parametrize(
    ("key", "character", "expected"),
    [
        ("alt+x", "x", b"\x1bx"),
        ("alt+shift+x", "X", b"\x1bX"),
        ("alt+ctrl+x", None, b"\x1b\x18"),
        ("alt+enter", None, b"\x1b\r"),
        ("alt+backspace", None, b"\x1b\x7f"),
        ("alt+full_stop", ".", b"\x1b."),
    ],
)
def test_alt_combinations_send_escape_first(
    key: str, character: str | None, expected: bytes
) -> None:
    assert encode_key(key, character) == expected


def test_bare_modifier_sends_nothing() -> None:
    assert encode_key("shift", None) == b""


def test_paste_plain_and_bracketed() -> None:
    assert encode_paste("a\nb", bracketed=False) == b"a\rb"
    assert encode_paste("a\r\nb", bracketed=True) == PASTE_START + b"a\rb" + PASTE_END
    # a paste cannot close the bracket early
    sneaky = encode_paste("x\x1b[201~rm -rf /\n", bracketed=True)
    assert sneaky == PASTE_START + b"xrm -rf /\r" + PASTE_END


# -- the key table (tests/data/keytable.py) ---------------------------------------------------

from data.keytable import KEY_TABLE, KeyCase  # noqa: E402  (tests/ is on sys.path)

from vibebox_tui.terminal.input import Destination, HostInput  # noqa: E402


def test_the_key_table_has_at_least_100_key_events() -> None:
    assert len(KEY_TABLE) >= 100
    assert len({case.name for case in KEY_TABLE}) == len(KEY_TABLE)


def _character(key: str) -> str | None:
    name = key.rsplit("+", 1)[-1]
    return name if len(name) == 1 and "+" not in key.replace(name, "", 1)[:-1] else None


# LNM is the widget's (a typed CR goes as CR LF): tests/tui/test_terminal_pilot.py has it.
@pytest.mark.parametrize(
    "case", [c for c in KEY_TABLE if c.keys and c.group != "lnm"], ids=lambda c: c.name
)
def test_textual_key_events_encode_as_the_table_says(case: KeyCase) -> None:
    app_cursor = "app_cursor" in case.modes
    sent = b"".join(encode_key(key, _character(key), app_cursor=app_cursor) for key in case.keys)
    assert sent == case.guest


def _split(data: bytes, raw: bool = True) -> list[tuple[Destination, bytes]]:
    host = HostInput()
    chunks = host.feed(data, raw)
    return chunks + host.flush()


@pytest.mark.parametrize("case", KEY_TABLE, ids=lambda c: c.name)
def test_host_bytes_reach_the_terminal_unparsed(case: KeyCase) -> None:
    """In raw mode nothing typed goes to Textual's parser but ctrl+\\ (and pastes are cut
    out whole); typed bytes pass unchanged, ESC included, however they are cut into reads."""
    data = case.host_bytes
    whole = _split(data)
    if case.host_bytes == b"\x1c":
        assert whole == [("app", b"\x1c")]
        return
    assert all(destination in ("keys", "paste") for destination, _ in whole)
    keys = b"".join(chunk for destination, chunk in whole if destination == "keys")
    if b"\x1b[200~" not in data:
        assert keys == data
    # Byte by byte (a slow host terminal): the same split.
    host = HostInput()
    pieces: list[tuple[Destination, bytes]] = []
    for byte in data:  # faster than FLUSH_DELAY: nothing is flushed in between
        pieces += host.feed(bytes([byte]), True)
    pieces += host.flush()
    assert _join(pieces) == _join(whole)


def _join(chunks: list[tuple[Destination, bytes]]) -> list[tuple[Destination, bytes]]:
    out: list[tuple[Destination, bytes]] = []
    for destination, data in chunks:
        if out and out[-1][0] == destination == "keys":
            out[-1] = ("keys", out[-1][1] + data)
        else:
            out.append((destination, data))
    return out


def test_host_reports_go_to_textual_keys_around_them_to_the_guest() -> None:
    mouse, focus_in, focus_out = b"\x1b[<0;12;5M", b"\x1b[I", b"\x1b[O"
    report, resize = b"\x1b[?2026;2$y", b"\x1b[48;40;120;800;1200t"
    data = b"a" + mouse + b"\x1b" + focus_in + b"b" + report + resize + focus_out + b"\x1b[1;2R"
    assert _split(data) == [
        ("keys", b"a"),
        ("app", mouse),
        ("keys", b"\x1b"),  # the Escape key right before a report
        ("app", focus_in),
        ("focus", focus_in),  # for a guest that asked for focus reports
        ("keys", b"b"),
        ("app", report + resize + focus_out),
        ("focus", focus_out),
        ("keys", b"\x1b[1;2R"),  # shift+F3, not a cursor position report
    ]


def test_ctrl_backslash_gives_the_rest_of_the_read_to_textual() -> None:
    host = HostInput()
    assert host.feed(b"ab\x1cjk", True) == [("keys", b"ab"), ("app", b"\x1cjk")]
    assert host.left


def test_not_raw_everything_goes_to_textual() -> None:
    host = HostInput()
    assert host.feed(b"\x1b:wq\r", False) == [("app", b"\x1b:wq\r")]
    assert not host.left


def test_an_incomplete_sequence_waits_for_its_end_then_goes_as_keys() -> None:
    host = HostInput()
    assert host.feed(b"x\x1b[<0;1", True) == [("keys", b"x")]
    assert host.pending
    assert host.feed(b";1M", True) == [("app", b"\x1b[<0;1;1M")]
    assert host.feed(b"\x1b[", True) == []
    assert host.flush() == [("keys", b"\x1b[")]  # Escape then [ typed, nothing after
    assert not host.pending


def test_a_paste_split_across_reads_is_cut_out_whole() -> None:
    host = HostInput()
    assert host.feed(b"a\x1b[200~one\x1b", True) == [("keys", b"a")]
    assert host.feed(b"[31mtwo\x1b[20", True) == []
    assert host.feed(b"1~b", True) == [("paste", b"one\x1b[31mtwo"), ("keys", b"b")]


def test_a_paste_textual_began_stays_textual_s_until_its_end() -> None:
    host = HostInput()
    assert host.feed(b"\x1b[200~abc", False) == [("app", b"\x1b[200~abc")]
    # The terminal takes the keys now, but the paste belongs to Textual's parser.
    assert host.feed(b"de\x1b[201~f", True) == [("app", b"de\x1b[201~"), ("keys", b"f")]
    assert host.feed(b"\x1b[200~x\x1b[20", False) == [("app", b"\x1b[200~x\x1b[20")]
    assert host.feed(b"1~g", True) == [("app", b"1~"), ("keys", b"g")]


def test_a_paste_cannot_type_controls_or_escape_sequences() -> None:
    assert encode_paste("a\x1b[31mb\x03\x00c\x9bd\x7f\te", bracketed=False) == b"a[31mbcd\te"


def test_an_old_style_mouse_report_goes_to_textual_whole() -> None:
    host = HostInput()
    assert host.feed(b"a\x1b[M #", True) == [("keys", b"a")]
    assert host.feed(b"!b", True) == [("app", b"\x1b[M #!"), ("keys", b"b")]
