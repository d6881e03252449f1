"""Cell widths exactly as the guest's C library counts them, and runs of known width.

Programs in the guest place the cursor by glibc's ``wcwidth`` (bash's readline, vim, less),
so the emulator takes its widths from the same table (``wcwidth_table``, generated from glibc
2.36 -- Debian 12's, the guest's -- by ``make_wcwidth_table``): a regional indicator is one
cell (a flag is two), an emoji ZWJ sequence is the sum of its emoji, VS16 and ZWJ are zero,
Indic spacing marks are one. Zero-width characters join the previous cell.

:func:`runs` splits text into narrow runs (every character one cell: slice assignment, as for
ASCII), wide runs (two cells each, no straddling the edge) and the rest (zero-width and
non-printable: per character).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from functools import lru_cache

from vibebox_tui.terminal.vt.wcwidth_table import NONPRINTING, WIDE, ZERO

# Sorted range starts with the width of each range; gaps between ranges are one cell wide.
_STARTS: list[int] = []
_ENDS: list[int] = []
_WIDTHS: list[int] = []
for _width, _table in ((0, ZERO), (2, WIDE), (1, NONPRINTING)):
    for _start, _end in _table:
        _STARTS.append(_start)
        _ENDS.append(_end)
        _WIDTHS.append(_width)
_ORDER = sorted(range(len(_STARTS)), key=_STARTS.__getitem__)
_STARTS = [_STARTS[i] for i in _ORDER]
_ENDS = [_ENDS[i] for i in _ORDER]
_WIDTHS = [_WIDTHS[i] for i in _ORDER]


def code_width(code: int) -> int:
    """Cells code point ``code`` advances the cursor by: 0 (joins the previous cell), 1 or 2.

    Non-printable code points (glibc's -1: unassigned, controls) take one cell, so that what
    a program sends is shown rather than lost.
    """
    i = bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _ENDS[i]:
        return _WIDTHS[i]
    return 1


@lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    """:func:`code_width` of the first code point of ``char``."""
    return code_width(ord(char[0])) if char else 0


def _class(table: tuple[tuple[int, int], ...]) -> str:
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in table
        if b >= 0x20
    )


@lru_cache(maxsize=1)
def runs() -> re.Pattern[str]:
    """The run splitter: groups ``narrow``, ``wide`` and ``other``."""
    special = _class(ZERO) + _class(NONPRINTING)
    wide = _class(WIDE)
    return re.compile(
        f"(?P<narrow>[^{special}{wide}]+)|(?P<wide>[{wide}]+)|(?P<other>[{special}]+)"
    )
