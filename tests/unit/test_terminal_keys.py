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
