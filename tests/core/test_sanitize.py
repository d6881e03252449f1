"""The one sanitiser for guest-derived text (vibebox_core.sanitize)."""

from __future__ import annotations

import pytest

from vibebox_core.sanitize import ELLIPSIS, clean, clean_lines, is_clean

HOSTILE = [
    "\x1b[2K\rall good",  # erase the line, then overwrite it
    "\x1b]0;pwned\x07",  # set the terminal's title
    "\x1b]52;c;aGk=\x07",  # write the clipboard
    "\x9b31m",  # C1 CSI
    "\x00\x07\x08\x7f",
    "safe\u202eexe.txt",  # right-to-left override
    "a\u2066b\u2069c\u202a\u202c",
    "hid\u200bden\u200d\ufeff\u00ad\u2060",
    "line\u2028sep\u2029",
    "tag\U000e0041\U000e007f",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_every_control_and_format_character_is_escaped_visibly(value: str) -> None:
    out = clean(value, None)
    assert is_clean(out)
    assert all(ch >= " " or ch in "…" for ch in out)
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    # Nothing is dropped: every escaped character shows as a backslash escape.
    assert out.count("\\") >= sum(1 for ch in value if not is_clean(ch))


def test_escapes_are_the_familiar_forms() -> None:
    assert clean("a\x1b[2Kb\rc\td\ne") == "a\\x1b[2Kb\\rc\\td\\ne"
    assert clean("x\u202ey\u200bz") == "x\\u202ey\\u200bz"
    assert clean("\x9b\x7f\x00") == "\\x9b\\x7f\\x00"
    assert clean("\U000e0041") == "\\U000e0041"


def test_invalid_utf8_shows_its_bytes() -> None:
    assert clean(b"ok\xff\xfe\xc3") == "ok\\xff\\xfe\\xc3"
    assert clean("ok\udcff") == "ok\\xff"
    assert clean("\ud800") == "\\ud800"  # a lone surrogate that was not a byte


def test_ordinary_text_is_unchanged() -> None:
    for value in ("api.github.com", "/home/me/src/projekt-ü", "日本語 テキスト", "naïve café ✓"):
        assert clean(value) == value
        assert is_clean(value)


def test_length_is_bounded_with_an_ellipsis_and_escapes_are_not_cut() -> None:
    assert clean("x" * 600) == "x" * 511 + ELLIPSIS
    assert clean("abcdef", 6) == "abcdef"
    assert clean("abcdefg", 6) == "abcde" + ELLIPSIS
    cut = clean("ab\x1bcdef", 5)
    assert cut == "ab" + ELLIPSIS  # "\x1b" (4 characters) did not fit whole
    assert len(clean("\x1b" * 1000, 100)) <= 100


def test_non_strings_are_shown_as_text() -> None:
    from pathlib import Path

    assert clean(Path("/tmp/a\nb")) == "/tmp/a\\nb"
    assert clean(42) == "42"


def test_clean_lines_keeps_line_breaks_but_not_carriage_returns() -> None:
    assert clean_lines("one\r\ntwo\rTWO\n\x1b[2Kthree") == ["one", "two\\rTWO", "\\x1b[2Kthree"]
    assert clean_lines("\n".join(str(i) for i in range(10)), lines=3) == ["7", "8", "9"]
