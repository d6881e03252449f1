"""Textual key events to the bytes xterm sends for them.

The three keys the terminal widget keeps for itself are named here too: :data:`FOCUS_OUT_KEY`
and the scrollback keys never reach the guest.

Cursor keys follow DECCKM (``ESC [ A`` normally, ``ESC O A`` in application mode); a modified
key uses xterm's ``CSI 1 ; m X`` / ``CSI n ; m ~`` form where ``m = 1 + shift + 2*alt +
4*ctrl``. Alt (meta) on an ordinary key sends ESC first. Pasted text is wrapped in
``ESC [ 200 ~`` ... ``ESC [ 201 ~`` when the program enabled bracketed paste (mode 2004).
"""

from __future__ import annotations

from textual.keys import key_to_character

FOCUS_OUT_KEY = "ctrl+backslash"
"""The one key that never reaches the guest: it moves focus out of the terminal."""
SCROLLBACK_UP_KEY = "shift+pageup"
SCROLLBACK_DOWN_KEY = "shift+pagedown"

# Cursor-like keys: final byte; sent as CSI X (or SS3 X in application cursor mode).
_CURSOR_KEYS = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
# Editing keys: CSI n ~
_TILDE_KEYS = {"insert": 2, "delete": 3, "pageup": 5, "pagedown": 6}
# F1-F4 are SS3 P..S; F5-F12 are CSI n ~.
_FUNCTION_SS3 = {1: "P", 2: "Q", 3: "R", 4: "S"}
_FUNCTION_TILDE = {5: 15, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 23, 12: 24}
# Ctrl with punctuation (xterm's traditional control codes).
_CTRL_SYMBOLS = {
    "at": 0x00,
    "space": 0x00,
    "left_square_bracket": 0x1B,
    "backslash": 0x1C,
    "right_square_bracket": 0x1D,
    "circumflex_accent": 0x1E,
    "underscore": 0x1F,
    "question_mark": 0x7F,
    "2": 0x00,
    "3": 0x1B,
    "4": 0x1C,
    "5": 0x1D,
    "6": 0x1E,
    "7": 0x1F,
    "8": 0x7F,
    "slash": 0x1F,
    "minus": 0x1F,
}
_MODIFIERS = {"shift": 1, "alt": 2, "meta": 2, "ctrl": 4}

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


def _split(key: str) -> tuple[set[str], str]:
    parts = key.split("+")
    # "ctrl+plus" style names never contain "+" themselves, but a bare "+" key is "plus".
    return set(parts[:-1]), parts[-1]


def _modifier_param(modifiers: set[str]) -> int:
    return 1 + sum(_MODIFIERS.get(m, 0) for m in modifiers)


def _function_number(name: str) -> int | None:
    if name.startswith("f") and name[1:].isdigit():
        return int(name[1:])
    return None


def encode_key(key: str, character: str | None = None, *, app_cursor: bool = False) -> bytes:
    """Encode one Textual key event as xterm would send it.

    Args:
        key: Textual's key name, e.g. ``"a"``, ``"ctrl+left"``, ``"alt+shift+f5"``.
        character: the event's character, if any.
        app_cursor: DECCKM is set (application cursor keys).

    Returns:
        The bytes to send; ``b""`` for keys that produce nothing (bare modifiers).
    """
    modifiers, name = _split(key)
    modifiers.discard("super")
    modifiers.discard("hyper")
    param = _modifier_param(modifiers)
    if name in _CURSOR_KEYS:
        final = _CURSOR_KEYS[name]
        if param > 1:
            return f"\x1b[1;{param}{final}".encode()
        return f"\x1bO{final}".encode() if app_cursor else f"\x1b[{final}".encode()
    if name in _TILDE_KEYS:
        code = _TILDE_KEYS[name]
        return (f"\x1b[{code};{param}~" if param > 1 else f"\x1b[{code}~").encode()
    function = _function_number(name)
    if function is not None:
        return _encode_function(function, param)
    alt = "alt" in modifiers or "meta" in modifiers
    prefix = b"\x1b" if alt else b""
    ctrl = "ctrl" in modifiers
    shift = "shift" in modifiers
    if name == "enter":
        return prefix + b"\r"
    if name == "tab":
        return prefix + (b"\x1b[Z" if shift else b"\t")
    if name == "backspace":
        return prefix + (b"\x08" if ctrl else b"\x7f")
    if name == "escape":
        return prefix + b"\x1b"
    if ctrl:
        control = _ctrl_code(name, character)
        if control is not None:
            return prefix + bytes([control])
    text = _printable(name, character, shift)
    if text is None:
        return b""
    return prefix + text.encode()


def _encode_function(number: int, param: int) -> bytes:
    # xterm reports shifted/ctrl F-keys as F13-F48 on some keyboards; Textual names them so.
    if 13 <= number <= 48:
        group, number = divmod(number - 13, 12)
        number += 1
        param = max(param, 1) + (1, 4, 5)[group]
    if number in _FUNCTION_SS3:
        final = _FUNCTION_SS3[number]
        return (f"\x1b[1;{param}{final}" if param > 1 else f"\x1bO{final}").encode()
    if number in _FUNCTION_TILDE:
        code = _FUNCTION_TILDE[number]
        return (f"\x1b[{code};{param}~" if param > 1 else f"\x1b[{code}~").encode()
    return b""


def _ctrl_code(name: str, character: str | None) -> int | None:
    if len(name) == 1 and name.isalpha() and name.isascii():
        return ord(name.lower()) & 0x1F
    if name in _CTRL_SYMBOLS:
        return _CTRL_SYMBOLS[name]
    if character and len(character) == 1 and ord(character) < 0x20:
        return ord(character)
    return None


# Textual key names whose character key_to_character does not find.
_NAMED_CHARACTERS = {
    "space": " ",
    "plus": "+",
    "minus": "-",
    "slash": "/",
    "at": "@",
    "backslash": "\\",
    "underscore": "_",
}


def _printable(name: str, character: str | None, shift: bool) -> str | None:
    if character and character.isprintable():
        return character
    if len(name) == 1:
        return name.upper() if shift else name
    # A key event without its character (alt+full_stop from a binding, a Pilot press).
    text = _NAMED_CHARACTERS.get(name) or key_to_character(name)
    return text if text and text.isprintable() else None


def clean_paste(text: str) -> str:
    """Pasted text as xterm passes it on: line ends as CR (as a terminal types them), C0
    controls other than TAB, CR and LF dropped (xterm's ``allowPasteControls: false``, its
    default), and DEL and the C1 controls too -- so a paste can type no escape sequence,
    and cannot end a bracketed paste early (a bracket marker inside goes whole)."""
    text = text.replace("\x1b[201~", "").replace("\x1b[200~", "")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.translate(_PASTE_DROP)


_PASTE_DROP = {c: None for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 13)}


def encode_paste(text: str, *, bracketed: bool) -> bytes:
    """Encode pasted text (see :func:`clean_paste`), bracketed if the program asked."""
    data = clean_paste(text).encode()
    return PASTE_START + data + PASTE_END if bracketed else data
