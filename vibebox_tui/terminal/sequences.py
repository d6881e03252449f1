"""What the parser recognises: the token grammar, mode numbers, and the events it reports.

One regular expression splits a chunk into runs of printable text, ``\\r\\n`` pairs, complete
CSI / OSC / DCS / ESC sequences and single controls; a second one recognises a sequence cut
short at the end of a chunk, which the emulator keeps for the next read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyte.charsets import VT100_MAP

VIBEBOX_OSC = "7777"
VIBEBOX_COMMAND_PREFIX = "vibebox-command="
MAX_PENDING = 1 << 16  # an unterminated OSC/DCS longer than this is dropped

TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?P<crlf>\r\n)"
    r"|\x1b\[(?P<cp>[\x30-\x3f]*)(?P<ci>[\x20-\x2f]*)(?P<csi>[\x40-\x7e])"
    r"|\x1b\](?P<osc>[^\x07\x1b]*)(?:\x07|\x1b\\)"
    r"|\x1b[P^_X](?P<dcs>[^\x1b]*)\x1b\\"
    # a sequence cut short by ESC, CAN or SUB is dropped (as xterm does), not drawn as text
    r"|(?P<abort>\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|\][^\x07\x1b]*|[P^_X][^\x1b]*)(?=[\x1b\x18\x1a]))"
    r"|\x1b(?P<ei>[\x20-\x2f]*)(?P<esc>[\x30-\x7e])"
    r"|(?P<ctl>[\s\S])"
)
# A tail that may still become a complete sequence with more input.
PARTIAL = re.compile(
    r"\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|\][^\x07\x1b]*\x1b?|[P^_X][^\x1b]*|[\x20-\x2f]*)\Z"
)
# An OSC/DCS string still open at the end of a chunk (its ESC \\ terminator not yet seen).
STRING_OPEN = re.compile(r"\x1b(?:[P^_X][^\x1b]*|\][^\x07\x1b]*)\Z")
DEC_GRAPHICS = {i: c for i, c in enumerate(VT100_MAP) if chr(i) != c}  # as pyte

# xterm's private modes we track (DECSET/DECRST); the rest are acknowledged and ignored.
DECCKM, DECOM, DECAWM, DECTCEM = 1, 6, 7, 25
ALT_47, ALT_1047, SAVE_1048, ALT_1049 = 47, 1047, 1048, 1049
BRACKETED_PASTE, FOCUS_EVENTS, SYNC_OUTPUT = 2004, 1004, 2026
MOUSE_MODES = (9, 1000, 1002, 1003, 1005, 1006, 1015)


@dataclass(frozen=True)
class TitleEvent:
    title: str


@dataclass(frozen=True)
class CommandEvent:
    name: str


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
