"""The key table: key events and the exact bytes the guest must receive for them.

Each :class:`KeyCase` says what a person types, what an xterm (the host terminal) sends for it,
and what the program in the guest must read -- the bytes xterm sends it for the modes the guest
set (its ``group``). Used by

* ``tests/tui/test_terminal_keys.py``: the host bytes through :class:`HostInput` and the
  terminal's raw-input path, and the Textual key names through ``encode_key``;
* ``tests/tui/test_terminal_pilot.py``: the same through a running dashboard (Pilot and raw);
* ``tests/e2e/test_keys_e2e.py``: the host bytes (or tmux key names, where the bytes depend on
  the modes the dashboard mirrors onto its host terminal) sent with ``tmux send-keys`` to the
  real dashboard, read back in a real guest in raw mode.

Reference: xterm's ctlseqs ("PC-Style Function Keys"), with xterm's defaults: metaSendsEscape
(Alt sends ESC first), Backspace sends DEL (DECBKM reset), Return sends CR (CR LF with LNM
set, as every CR xterm types), modifyOtherKeys off. Pastes: C0 controls other than TAB, CR
and LF are dropped (as xterm's ``allowPasteControls: false``), and so are DEL and C1
controls; LF becomes CR.
"""

from __future__ import annotations

from dataclasses import dataclass

# What the guest program switches on before it reads (sent to its terminal, in that order).
GROUPS: dict[str, str] = {
    "normal": "",
    "app_cursor": "\x1b[?1h",
    "app_keypad": "\x1b[?1h\x1b=",
    "bracketed_paste": "\x1b[?2004h",
    "alt_screen": "\x1b[?1049h",
    "lnm": "\x1b[20h",
}
GROUP_MODES: dict[str, frozenset[str]] = {
    "normal": frozenset(),
    "app_cursor": frozenset({"app_cursor"}),
    "app_keypad": frozenset({"app_cursor", "app_keypad"}),
    "bracketed_paste": frozenset({"bracketed_paste"}),
    "alt_screen": frozenset({"alt_screen"}),
    "lnm": frozenset({"lnm"}),
}


@dataclass(frozen=True)
class KeyCase:
    """One key event (or a few typed at once).

    Attributes:
        name: what is typed.
        guest: the bytes the guest must read; ``b""`` for a key the dashboard keeps.
        host: what xterm sends the dashboard (default: ``guest``).
        keys: the same as Textual key names (Pilot), ``()`` where Textual has no name for it
            (keypad keys) or it is no key (a paste).
        tmux: tmux key names to send instead of the host bytes, where tmux must encode the key
            for the modes the dashboard mirrored onto its pane (application cursor/keypad).
        group: the guest's modes (see :data:`GROUPS`).
        e2e: False for a key that would leave the terminal (ctrl+\\).
    """

    name: str
    guest: bytes
    host: bytes | None = None
    keys: tuple[str, ...] = ()
    tmux: tuple[str, ...] | None = None
    group: str = "normal"
    e2e: bool = True

    @property
    def host_bytes(self) -> bytes:
        return self.guest if self.host is None else self.host

    @property
    def modes(self) -> frozenset[str]:
        return GROUP_MODES[self.group]

    @property
    def dashboard(self) -> bool:
        """The dashboard keeps this key: the guest reads nothing."""
        return not self.guest


def _k(name: str, guest: bytes, *keys: str) -> KeyCase:
    return KeyCase(name, guest, keys=keys)


def _paste(text: bytes) -> bytes:
    return b"\x1b[200~" + text + b"\x1b[201~"


ESC = b"\x1b"
CSI = b"\x1b["
SS3 = b"\x1bO"

_NORMAL = [
    # Printable keys, shifted keys, UTF-8.
    _k("a", b"a", "a"),
    _k("z", b"z", "z"),
    _k("shift+a", b"A", "A"),
    _k("shift+z", b"Z", "Z"),
    _k("0", b"0", "0"),
    _k("9", b"9", "9"),
    _k("space", b" ", "space"),
    _k("colon", b":", "colon"),
    _k("left bracket", b"[", "left_square_bracket"),
    _k("tilde", b"~", "tilde"),
    _k("exclamation mark", b"!", "exclamation_mark"),
    _k("slash", b"/", "slash"),
    _k("e acute", "é".encode(), "é"),
    _k("u umlaut", "ü".encode(), "ü"),
    _k("sharp s", "ß".encode(), "ß"),
    _k("cyrillic zhe", "ж".encode(), "ж"),
    _k("CJK zhong", "中".encode(), "中"),
    _k("emoji", "😀".encode(), "😀"),
    _k("a word typed at once", b"ls -la\r", "l", "s", "space", "minus", "l", "a", "enter"),
    # Enter, Tab, Backspace, Escape.
    _k("enter (LNM off)", b"\r", "enter"),
    _k("tab", b"\t", "tab"),
    _k("shift+tab", CSI + b"Z", "shift+tab"),
    _k("backspace (DEL)", b"\x7f", "backspace"),
    _k("ctrl+backspace (BS)", b"\x08", "ctrl+backspace"),
    _k("alt+backspace", ESC + b"\x7f", "alt+backspace"),
    _k("alt+enter", ESC + b"\r", "alt+enter"),
    _k("escape", ESC, "escape"),
    _k("escape escape", ESC + ESC, "escape", "escape"),
    _k("escape then colon", ESC + b":", "escape", "colon"),
    _k("escape then [", ESC + b"[", "escape", "left_square_bracket"),
    _k("escape then O", ESC + b"O", "escape", "O"),
    _k("escape O A typed as three keys", ESC + b"OA", "escape", "O", "A"),
    _k("escape [ 1 typed as three keys", ESC + b"[1", "escape", "left_square_bracket", "1"),
    _k("escape : w q enter (vim)", ESC + b":wq\r", "escape", "colon", "w", "q", "enter"),
    _k("escape x", ESC + b"x", "escape", "x"),
    # Ctrl+letters and the control punctuation.
    *(_k(f"ctrl+{c}", bytes([ord(c) & 0x1F]), f"ctrl+{c}") for c in "abcdefhklnopqrstuvwxyz"),
    _k("ctrl+space (NUL)", b"\x00", "ctrl+space"),
    _k("ctrl+@ (NUL)", b"\x00", "ctrl+at"),
    _k("ctrl+[ (ESC)", ESC, "ctrl+left_square_bracket"),
    _k("ctrl+] (GS)", b"\x1d", "ctrl+right_square_bracket"),
    _k("ctrl+^ (RS)", b"\x1e", "ctrl+circumflex_accent"),
    _k("ctrl+_ (US)", b"\x1f", "ctrl+underscore"),
    KeyCase("ctrl+\\ leaves the terminal", b"", host=b"\x1c", e2e=False),
    # Alt (meta) sends ESC first.
    *(_k(f"alt+{c}", ESC + c.encode(), f"alt+{c}") for c in "abdfux"),
    _k("alt+shift+b", ESC + b"B", "alt+shift+b"),
    _k("alt+full stop", ESC + b".", "alt+full_stop"),
    _k("alt+ctrl+a", ESC + b"\x01", "ctrl+alt+a"),
    # Cursor keys, normal mode; modified ones.
    _k("up", CSI + b"A", "up"),
    _k("down", CSI + b"B", "down"),
    _k("right", CSI + b"C", "right"),
    _k("left", CSI + b"D", "left"),
    _k("home", CSI + b"H", "home"),
    _k("end", CSI + b"F", "end"),
    _k("shift+up", CSI + b"1;2A", "shift+up"),
    _k("alt+up", CSI + b"1;3A", "alt+up"),
    _k("ctrl+left", CSI + b"1;5D", "ctrl+left"),
    _k("ctrl+right", CSI + b"1;5C", "ctrl+right"),
    _k("ctrl+shift+down", CSI + b"1;6B", "ctrl+shift+down"),
    _k("ctrl+home", CSI + b"1;5H", "ctrl+home"),
    _k("shift+end", CSI + b"1;2F", "shift+end"),
    # Editing keys.
    _k("insert", CSI + b"2~", "insert"),
    _k("delete", CSI + b"3~", "delete"),
    _k("page up", CSI + b"5~", "pageup"),
    _k("page down", CSI + b"6~", "pagedown"),
    _k("ctrl+delete", CSI + b"3;5~", "ctrl+delete"),
    _k("shift+delete", CSI + b"3;2~", "shift+delete"),
    _k("alt+page up", CSI + b"5;3~", "alt+pageup"),
    _k("ctrl+page down", CSI + b"6;5~", "ctrl+pagedown"),
    KeyCase("shift+page up pages the scrollback", b"", host=CSI + b"5;2~"),
    KeyCase("shift+page down pages the scrollback", b"", host=CSI + b"6;2~"),
    # Function keys.
    _k("F1", SS3 + b"P", "f1"),
    _k("F2", SS3 + b"Q", "f2"),
    _k("F3", SS3 + b"R", "f3"),
    _k("F4", SS3 + b"S", "f4"),
    _k("F5", CSI + b"15~", "f5"),
    _k("F6", CSI + b"17~", "f6"),
    _k("F7", CSI + b"18~", "f7"),
    _k("F8", CSI + b"19~", "f8"),
    _k("F9", CSI + b"20~", "f9"),
    _k("F10", CSI + b"21~", "f10"),
    _k("F11", CSI + b"23~", "f11"),
    _k("F12", CSI + b"24~", "f12"),
    _k("shift+F1", CSI + b"1;2P", "shift+f1"),
    _k("ctrl+F2", CSI + b"1;5Q", "ctrl+f2"),
    _k("shift+F3 (not a cursor report)", CSI + b"1;2R", "shift+f3"),
    _k("alt+F4", CSI + b"1;3S", "alt+f4"),
    _k("shift+F5", CSI + b"15;2~", "shift+f5"),
    _k("ctrl+F5", CSI + b"15;5~", "ctrl+f5"),
    _k("alt+F10", CSI + b"21;3~", "alt+f10"),
    _k("ctrl+shift+F12", CSI + b"24;6~", "ctrl+shift+f12"),
    # The keypad in normal (numeric) mode: what it shows.
    KeyCase("keypad 1 (numeric)", b"1", tmux=("KP1",)),
    KeyCase("keypad / (numeric)", b"/", tmux=("KP/",)),
    # Pastes: the host brackets them (the dashboard asked it to); the guest did not.
    KeyCase("paste, not bracketed", b"hello", host=_paste(b"hello")),
    KeyCase("paste with CR", b"one\rtwo", host=_paste(b"one\rtwo")),
    KeyCase("paste with LF becomes CR", b"one\rtwo", host=_paste(b"one\ntwo")),
]

_APP_CURSOR = [
    KeyCase("up (DECCKM)", SS3 + b"A", keys=("up",), tmux=("Up",), group="app_cursor"),
    KeyCase("down (DECCKM)", SS3 + b"B", keys=("down",), tmux=("Down",), group="app_cursor"),
    KeyCase("right (DECCKM)", SS3 + b"C", keys=("right",), tmux=("Right",), group="app_cursor"),
    KeyCase("left (DECCKM)", SS3 + b"D", keys=("left",), tmux=("Left",), group="app_cursor"),
    KeyCase("home (DECCKM)", SS3 + b"H", keys=("home",), group="app_cursor"),
    KeyCase("end (DECCKM)", SS3 + b"F", keys=("end",), group="app_cursor"),
    KeyCase(
        "ctrl+up (DECCKM)", CSI + b"1;5A", keys=("ctrl+up",), tmux=("C-Up",), group="app_cursor"
    ),
    KeyCase(
        "shift+left (DECCKM)",
        CSI + b"1;2D",
        keys=("shift+left",),
        tmux=("S-Left",),
        group="app_cursor",
    ),
    KeyCase("delete (DECCKM)", CSI + b"3~", keys=("delete",), group="app_cursor"),
    KeyCase("F1 (DECCKM)", SS3 + b"P", keys=("f1",), group="app_cursor"),
    KeyCase(
        "escape O A typed (DECCKM)", ESC + b"OA", keys=("escape", "O", "A"), group="app_cursor"
    ),
    KeyCase("escape [ A typed (DECCKM)", CSI + b"A", group="app_cursor"),
]

_KEYPAD = {
    "KP0": b"p",
    "KP1": b"q",
    "KP2": b"r",
    "KP3": b"s",
    "KP4": b"t",
    "KP5": b"u",
    "KP6": b"v",
    "KP7": b"w",
    "KP8": b"x",
    "KP9": b"y",
    "KP/": b"o",
    "KP*": b"j",
    "KP-": b"m",
    "KP+": b"k",
    "KP.": b"n",
    "KPEnter": b"M",
}
_APP_KEYPAD = [
    *(
        KeyCase(f"keypad {name[2:]} (DECKPAM)", SS3 + final, tmux=(name,), group="app_keypad")
        for name, final in _KEYPAD.items()
    ),
    KeyCase("up (DECCKM with DECKPAM)", SS3 + b"A", keys=("up",), tmux=("Up",), group="app_keypad"),
    KeyCase("digit 1 is no keypad key", b"1", keys=("1",), group="app_keypad"),
]

_BRACKETED = [
    KeyCase("paste, bracketed", _paste(b"hello"), host=_paste(b"hello"), group="bracketed_paste"),
    KeyCase(
        "paste with newlines, bracketed",
        _paste(b"a\rb\rc"),
        host=_paste(b"a\nb\rc"),
        group="bracketed_paste",
    ),
    KeyCase(
        "paste with an escape sequence: ESC dropped",
        _paste(b"x[31my"),
        host=_paste(b"x\x1b[31my"),
        group="bracketed_paste",
    ),
    KeyCase(
        "paste with controls: TAB kept, others dropped",
        _paste(b"a\tbcd"),
        host=_paste(b"a\tb\x03c\x07\x00d"),
        group="bracketed_paste",
    ),
    KeyCase(
        "paste of UTF-8",
        _paste("naïve 中文".encode()),
        host=_paste("naïve 中文".encode()),
        group="bracketed_paste",
    ),
    KeyCase(
        "typed keys around a paste",
        b"a" + _paste(b"p") + b"b",
        host=b"a" + _paste(b"p") + b"b",
        group="bracketed_paste",
    ),
    KeyCase("enter after paste mode", b"\r", keys=("enter",), group="bracketed_paste"),
]

_ALT_SCREEN = [
    KeyCase(
        "shift+page up in a full-screen program",
        CSI + b"5;2~",
        keys=("shift+pageup",),
        group="alt_screen",
    ),
    KeyCase(
        "shift+page down in a full-screen program",
        CSI + b"6;2~",
        keys=("shift+pagedown",),
        group="alt_screen",
    ),
    KeyCase("q in a full-screen program", b"q", keys=("q",), group="alt_screen"),
]

# LNM (CSI 20 h): xterm sends every CR it types as CR LF (not a paste's).
_LNM = [
    KeyCase("enter (LNM on)", b"\r\n", host=b"\r", keys=("enter",), group="lnm"),
    KeyCase("ctrl+m (LNM on)", b"\r\n", host=b"\r", keys=("ctrl+m",), group="lnm"),
    KeyCase(
        "a line typed at once (LNM on)",
        b"ls\r\n",
        host=b"ls\r",
        keys=("l", "s", "enter"),
        group="lnm",
    ),
    KeyCase("a paste keeps its CR (LNM on)", b"one\rtwo", host=_paste(b"one\rtwo"), group="lnm"),
    KeyCase("ctrl+j (LNM on)", b"\n", keys=("ctrl+j",), group="lnm"),
]

KEY_TABLE: list[KeyCase] = [
    *_NORMAL,
    *_APP_CURSOR,
    *_APP_KEYPAD,
    *_BRACKETED,
    *_ALT_SCREEN,
    *_LNM,
]
