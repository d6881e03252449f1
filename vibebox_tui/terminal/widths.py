"""Runs of characters whose cell width is known in advance, for drawing text a run at a time.

``wcwidth`` is exact but costs a call per character. Scanning the Basic Multilingual Plane
once (about 50 ms, on the first non-ASCII text) gives two character classes -- every BMP
character ``wcwidth`` calls 1 cell wide, and every one it calls 2 -- so the screen can split
text into narrow runs (slice assignment, as for ASCII), wide runs (two cells per character,
no straddling the edge) and the rest (zero-width, astral plane: per character).
"""

from __future__ import annotations

import re
from functools import lru_cache

from wcwidth import wcwidth


def _ranges(codes: list[int]) -> str:
    out: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        out.append(f"\\u{start:04x}" if start == prev else f"\\u{start:04x}-\\u{prev:04x}")
        start = prev = code
    return "".join(out)


@lru_cache(maxsize=1)
def runs() -> re.Pattern[str]:
    """The run splitter: groups ``narrow``, ``wide`` and ``other``."""
    narrow: list[int] = []
    wide: list[int] = []
    for code in range(0x20, 0x10000):
        if 0xD800 <= code < 0xE000 or 0x7F <= code < 0xA0:
            continue
        width = wcwidth(chr(code))
        if width == 1:
            narrow.append(code)
        elif width == 2:
            wide.append(code)
    n, w = _ranges(narrow), _ranges(wide)
    return re.compile(f"(?P<narrow>[{n}]+)|(?P<wide>[{w}]+)|(?P<other>[^{n}{w}]+)")
