"""Cell attributes: interned (fg, bg, flags) triples and the SGR interpreter.

Every cell stores a small int naming an interned :class:`Attr`; the screen's hot path only
copies ints, and SGR sequences are resolved once per (current attribute, parameter string)
pair and cached. Colours are ints: :data:`DEFAULT` (-1), a palette index 0..255, or
``TRUECOLOR | 0xRRGGBB``.

Every SGR form xterm accepts is handled: 16/256/truecolor in both ``;`` and ``:`` forms
(``38;5;n``, ``38;2;r;g;b``, ``38:2::r:g:b``, ``38:2:r:g:b``), underline styles (``4:3``),
underline colours (``58``, ignored). Unknown or malformed parameters are skipped one by one,
never ending the rest of the sequence.
"""

from __future__ import annotations

from typing import NamedTuple

DEFAULT = -1
TRUECOLOR = 1 << 24

BOLD = 1
DIM = 2
ITALIC = 4
UNDERLINE = 8
BLINK = 16
REVERSE = 32
CONCEAL = 64
STRIKE = 128
OVERLINE = 256


class Attr(NamedTuple):
    """One interned cell attribute."""

    fg: int = DEFAULT
    bg: int = DEFAULT
    flags: int = 0


_SET_FLAGS = {1: BOLD, 2: DIM, 3: ITALIC, 4: UNDERLINE, 5: BLINK, 6: BLINK, 7: REVERSE}
_SET_FLAGS.update({8: CONCEAL, 9: STRIKE, 21: UNDERLINE, 53: OVERLINE})
_CLEAR_FLAGS = {22: BOLD | DIM, 23: ITALIC, 24: UNDERLINE, 25: BLINK, 27: REVERSE}
_CLEAR_FLAGS.update({28: CONCEAL, 29: STRIKE, 55: OVERLINE})


class AttrTable:
    """Interns attributes to ints and caches SGR results.

    Id 0 is always the default attribute.
    """

    def __init__(self) -> None:
        self.attrs: list[Attr] = [Attr()]
        self._ids: dict[Attr, int] = {Attr(): 0}
        self._sgr_cache: dict[tuple[int, str], int] = {}
        self._bg_only: dict[int, int] = {0: 0}
        self.sequences: dict[tuple[int, str], int] = {}
        """:meth:`sgr`'s results by (attribute id, the whole ``CSI ... m`` as it came): the
        plain-output fast path looks them up without slicing the parameters out."""

    def intern(self, attr: Attr) -> int:
        """Return the id of ``attr``, adding it if new."""
        found = self._ids.get(attr)
        if found is None:
            found = len(self.attrs)
            self.attrs.append(attr)
            self._ids[attr] = found
        return found

    def bg_only(self, attr_id: int) -> int:
        """The attribute used to erase cells: the background of ``attr_id`` only (xterm BCE)."""
        found = self._bg_only.get(attr_id)
        if found is None:
            found = self.intern(Attr(bg=self.attrs[attr_id].bg))
            self._bg_only[attr_id] = found
        return found

    def sgr(self, attr_id: int, params: str) -> int:
        """Apply the SGR parameter string ``params`` (e.g. ``"1;38;5;208"``) to ``attr_id``."""
        key = (attr_id, params)
        found = self._sgr_cache.get(key)
        if found is None:
            if len(self._sgr_cache) > 65536:
                self._sgr_cache.clear()
            found = self.intern(apply_sgr(self.attrs[attr_id], params))
            self._sgr_cache[key] = found
        return found

    def sgr_sequence(self, attr_id: int, sequence: str) -> int:
        """:meth:`sgr` for a whole ``CSI params m`` sequence, remembered in :attr:`sequences`."""
        found = self.sgr(attr_id, sequence[2:-1])
        if len(self.sequences) > 65536:
            self.sequences.clear()
        self.sequences[attr_id, sequence] = found
        return found


def _num(text: str) -> int:
    return int(text) if text else 0


def _ext_color(parts: list[str], rest: list[list[str]]) -> int | None:
    """Decode an extended colour (after a 38/48/58) from colon sub-parameters or the following
    semicolon parameters (``rest`` is consumed). Returns None when malformed."""
    if len(parts) > 1:  # colon form: 38:5:n, 38:2::r:g:b or 38:2:r:g:b
        kind = _num(parts[1])
        if kind == 5 and len(parts) >= 3:
            return _num(parts[2]) & 0xFF
        if kind == 2:
            rgb = parts[3:6] if len(parts) >= 6 else parts[2:5]
            if len(rgb) == 3:
                r, g, b = (min(255, _num(c)) for c in rgb)
                return TRUECOLOR | (r << 16) | (g << 8) | b
        return None
    if not rest:
        return None
    kind = _num(rest.pop(0)[0])
    if kind == 5 and rest:
        return _num(rest.pop(0)[0]) & 0xFF
    if kind == 2 and len(rest) >= 3:
        r, g, b = (min(255, _num(rest.pop(0)[0])) for _ in range(3))
        return TRUECOLOR | (r << 16) | (g << 8) | b
    rest.clear()  # truncated colour: what follows cannot be told apart from its arguments
    return None


def apply_sgr(attr: Attr, params: str) -> Attr:
    """Return ``attr`` changed by one SGR parameter string (without the ``CSI`` and ``m``)."""
    fg, bg, flags = attr
    queue = [p.split(":") for p in params.split(";")]
    while queue:
        parts = queue.pop(0)
        try:
            code = _num(parts[0])
        except ValueError:
            continue
        try:
            if code == 0:
                fg, bg, flags = DEFAULT, DEFAULT, 0
            elif 30 <= code <= 37:
                fg = code - 30
            elif 40 <= code <= 47:
                bg = code - 40
            elif 90 <= code <= 97:
                fg = code - 82
            elif 100 <= code <= 107:
                bg = code - 92
            elif code == 39:
                fg = DEFAULT
            elif code == 49:
                bg = DEFAULT
            elif code == 4 and len(parts) > 1:
                style = _num(parts[1])
                flags = flags | UNDERLINE if style else flags & ~UNDERLINE
            elif code in _SET_FLAGS:
                flags |= _SET_FLAGS[code]
            elif code in _CLEAR_FLAGS:
                flags &= ~_CLEAR_FLAGS[code]
            elif code in (38, 48, 58):
                color = _ext_color(parts, queue)
                if color is not None and code == 38:
                    fg = color
                elif color is not None and code == 48:
                    bg = color
        except ValueError:
            continue
    return Attr(fg, bg, flags)
