"""One sanitiser for every guest-derived string on its way to a host terminal or a widget.

The guest has root and the project directory is writable from it (SECURITY.md), so host names in
the network log, window titles, the project's own path and name, mount paths, the values and
diff lines of ``vibebox.toml``, console-log tails and any error message that embeds one of these
are chosen by the adversary. Printed raw, such a string can move the host terminal's cursor,
erase the line before it (``\\r``, ``ESC [2K``), set the terminal's title or clipboard (OSC),
reorder what the eye reads (bidi overrides) or hide text (zero-width characters).

:func:`clean` makes every such character *visible* instead of dropping it, so nothing is hidden
and nothing is acted on: a control or format character becomes its escape (``\\x1b``,
``\\u202e``), a byte that was not UTF-8 (decoded with ``surrogateescape``) becomes ``\\xNN``, and
the result is bounded with an ellipsis. What remains is printable text only, safe for a host
terminal. Textual markup is a second language on top (``[bold]``, ``[/]``, ``[@click=...]``,
``[$variable]``): no escape function handles all of Textual's grammar (its own ``escape`` misses
``[$x]``, ``[ b]`` and capitalised tags), so the screens never parse guest text as markup at all:
they draw :class:`rich.text.Text` or pass ``markup=False`` (see ``vibebox_tui/safe.py``).

Pure: no Textual or Rich import (the core never imports a screen library).
"""

from __future__ import annotations

import unicodedata

__all__ = ["DEFAULT_LIMIT", "ELLIPSIS", "clean", "clean_lines", "is_clean"]

#: Longest result of :func:`clean` by default, in characters (escapes count as their length).
DEFAULT_LIMIT = 512
ELLIPSIS = "…"

#: Unicode categories shown escaped: controls, format characters (bidi overrides and isolates,
#: zero-width space/joiners, the BOM, soft hyphen, tag characters), surrogates (bytes that were
#: not UTF-8), line and paragraph separators, and code points with no assigned meaning.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
#: Printable but invisible or look-alike blanks that can pad text out of sight.
_ESCAPED_EXTRA = frozenset(
    {
        "\u115f",  # HANGUL CHOSEONG FILLER (renders as nothing)
        "\u1160",  # HANGUL JUNGSEONG FILLER
        "\u3164",  # HANGUL FILLER
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u2800",  # BRAILLE PATTERN BLANK
    }
)
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_CACHE: dict[str, str] = {}


def _escape_char(ch: str) -> str:
    cached = _CACHE.get(ch)
    if cached is not None:
        return cached
    code = ord(ch)
    if ch in _SHORT:
        out = _SHORT[ch]
    elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        out = f"\\x{code - 0xDC00:02x}"
    elif code <= 0xFF:
        out = f"\\x{code:02x}"
    elif code <= 0xFFFF:
        out = f"\\u{code:04x}"
    else:
        out = f"\\U{code:08x}"
    if len(_CACHE) < 4096:
        _CACHE[ch] = out
    return out


def _needs_escape(ch: str) -> bool:
    if " " <= ch <= "~":  # printable ASCII: the common case, decided without a table
        return False
    return unicodedata.category(ch) in _ESCAPED_CATEGORIES or ch in _ESCAPED_EXTRA


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else str(value)


def clean(value: object, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` as one line of printable text: every control, format or invalid character escaped.

    Args:
        value: a string, bytes (decoded as UTF-8, invalid bytes kept as ``\\xNN``) or anything
            with a ``str()``.
        limit: most characters in the result (the last one an ellipsis when cut); None for no
            bound. An escape is never cut in half.

    Returns:
        Text with no C0/C1 control, DEL, escape sequence, bidi override or isolate, zero-width
        or other format character, separator or lone surrogate left raw: each is written as
        its escape (``\\x1b``, ``\\r``, ``\\u202e``, ``\\U000e0041``).
    """
    text = _as_text(value)
    pieces = [_escape_char(ch) if _needs_escape(ch) else ch for ch in text]
    if limit is None or sum(map(len, pieces)) <= max(1, limit):
        return "".join(pieces)
    room = max(1, limit) - len(ELLIPSIS)
    out: list[str] = []
    for piece in pieces:
        if len(piece) > room:
            break
        out.append(piece)
        room -= len(piece)
    return "".join(out) + ELLIPSIS


def clean_lines(value: object, *, limit: int | None = DEFAULT_LIMIT, lines: int = 200) -> list[str]:
    """``value`` split at line ends (``\\n``, ``\\r\\n``), each line :func:`clean`.

    For multi-line guest text (a console tail, an error with a hint): a line break stays a line
    break, but a lone ``\\r`` (which would overwrite the line on a terminal) is shown as ``\\r``.
    At most ``lines`` lines are kept (the last ones).
    """
    text = _as_text(value).replace("\r\n", "\n")
    parts = text.split("\n")
    if len(parts) > lines:
        parts = parts[-lines:]
    return [clean(part, limit) for part in parts]


def is_clean(value: str) -> bool:
    """True when ``value`` holds no character :func:`clean` would escape."""
    return not any(_needs_escape(ch) for ch in value)
