"""What the parser recognises: the token grammar, mode numbers, and the events it reports.

One regular expression splits a chunk into runs of printable text, ``\\r\\n`` pairs, complete
CSI / OSC / DCS / ESC sequences and single controls; a second one recognises a sequence cut
short at the end of a chunk, which the emulator keeps for the next read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VIBEBOX_OSC = "7777"
VIBEBOX_COMMAND_PREFIX = "vibebox-command="
MAX_PENDING = 1 << 16  # an unterminated OSC/DCS longer than this is dropped

# C0 controls that may sit inside a CSI (executed there, the CSI goes on); ESC, CAN and SUB
# end it instead.
_CSI_C0 = r"\x00-\x17\x19\x1c-\x1f\x7f"
TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?P<crlf>\r\n)"
    r"|\x1b\[(?P<cp>[\x30-\x3f]*)(?P<ci>[\x20-\x2f]*)(?P<csi>[\x40-\x7e])"
    # a CSI with C0 controls inside it, or malformed (parameters after intermediates)
    rf"|\x1b\[(?P<cx>[{_CSI_C0}\x20-\x3f]*)(?P<cxf>[\x40-\x7e])"
    r"|\x1b\](?P<osc>[^\x07\x18\x1a\x1b]*)(?:\x07|\x1b\\)"
    r"|\x1b[P^_X](?P<dcs>[^\x18\x1a\x1b]*)\x1b\\"
    # a sequence cut short by ESC, CAN or SUB is dropped (as xterm does), not drawn as text
    r"|(?P<abort>\x1b(?:\[[\x00-\x17\x19\x1c-\x3f\x7f]*|\][^\x07\x18\x1a\x1b]*"
    r"|[P^_X][^\x18\x1a\x1b]*|[\x20-\x2f]*)(?=[\x1b\x18\x1a]))"
    r"|\x1b(?P<ei>[\x20-\x2f]*)(?P<esc>[\x30-\x7e])"
    r"|(?P<ctl>[\s\S])"
)
# A tail that may still become a complete sequence with more input.
PARTIAL = re.compile(
    r"\x1b(?:\[[\x00-\x17\x19\x1c-\x3f\x7f]*|\][^\x07\x18\x1a\x1b]*\x1b?"
    r"|[P^_X][^\x18\x1a\x1b]*\x1b?|[\x20-\x2f]*)\Z"
)
# An OSC/DCS string still open at the end of a chunk (its ESC \\ terminator not yet seen).
STRING_OPEN = re.compile(r"\x1b(?:[P^_X][^\x18\x1a\x1b]*|\][^\x07\x18\x1a\x1b]*)\Z")
# Plain output -- printable ASCII, SGR sequences, CRs and LFs, what a coloured log or a `cat`
# of one is made of (through a PTY: "\r\r\n" for each "\r\n" of the file) -- splits at its
# SGRs and line ends into [text, delimiter, text, ...] (see plain.py); a chunk is plain when
# its texts hold printable ASCII only.
PLAIN_SPLIT = re.compile(r"(\x1b\[[0-9;]*m|\r+\n?|\n)")
# Where plain output stops: any other character, or an escape that does not start an SGR.
# Looked for as two patterns: their union, one pattern, is scanned three times slower (re
# tries both alternatives at every character; each alone is a character class, or has a
# literal start).
NOT_PLAIN_CHAR = re.compile(r"[^\x20-\x7e\r\n\x1b]")
NOT_PLAIN_ESCAPE = re.compile(r"\x1b(?!\[[0-9;]*m)")
# The parameters and intermediates of a well-formed CSI, once C0 controls are taken out.
CSI_BODY = re.compile(r"(?P<cp>[\x30-\x3f]*)(?P<ci>[\x20-\x2f]*)")
C0_IN_CSI = re.compile(f"[{_CSI_C0}]")

# DEC special graphics (ESC ( 0) exactly as xterm maps it in UTF-8 mode (fontutils.c
# dec2ucs): ``_`` is a blank and ``\x60``..``~`` are the line-drawing set; nothing else
# changes (``+,-.0`` stay themselves, unlike the Linux console's map).
DEC_GRAPHICS = {0x5F: " "} | {
    0x60 + i: c
    for i, c in enumerate(
        "\u25c6\u2592\u2409\u240c\u240d\u240a\u00b0\u00b1"
        "\u2424\u240b\u2518\u2510\u250c\u2514\u253c\u23ba\u23bb\u2500\u23bc\u23bd\u251c"
        "\u2524\u2534\u252c\u2502\u2264\u2265\u03c0\u2260\u00a3\u00b7"
    )
}
# The 94-character sets a G0/G1 designation (ESC ( F, ESC ) F) can pick, by final byte;
# "B" (ASCII) and any set not listed draw the text unchanged.
CHARSETS: dict[str, dict[int, str]] = {"0": DEC_GRAPHICS, "A": {0x23: "\u00a3"}}
# C1 controls that arrive UTF-8 encoded (U+0080..U+009F) act as their 7-bit ESC forms.
C1 = re.compile("[\x80-\x9f]")
C1_TO_7BIT = {code: "\x1b" + chr(code - 0x40) for code in range(0x80, 0xA0)}

# xterm's private modes we track (DECSET/DECRST); the rest are acknowledged and ignored.
DECCKM, DECOM, DECAWM, DECTCEM = 1, 6, 7, 25
ALT_47, ALT_1047, SAVE_1048, ALT_1049 = 47, 1047, 1048, 1049
BRACKETED_PASTE, FOCUS_EVENTS, SYNC_OUTPUT = 2004, 1004, 2026
MOUSE_MODES = (9, 1000, 1002, 1003, 1005, 1006, 1015)
ALLOW_DECCOLM, DECCOLM = 40, 3
LNM, IRM = 20, 4


@dataclass(frozen=True)
class TitleEvent:
    title: str


@dataclass(frozen=True)
class CommandEvent:
    """OSC 7777 ``vibebox-command=NAME;TOKEN``; the widget acts only when TOKEN is its PTY's."""

    name: str
    token: str = ""


@dataclass(frozen=True)
class BellEvent:
    pass


Event = TitleEvent | CommandEvent | BellEvent


def csi_ints(params: str, default: int = 0) -> list[int]:
    """CSI parameters as ints; empty ones get ``default``; sub-parameters are dropped."""
    out = []
    for part in params.split(";"):
        head = part.split(":", 1)[0]
        out.append(int(head) if head.isdigit() else default)
    return out
