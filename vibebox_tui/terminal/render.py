"""Screen lines to Textual strips, cached per line and per attribute.

A line's strip is built once after the line changes and kept on the line itself
(:attr:`Line.cache`); rich ``Style`` objects are built once per attribute id. During a flood
only the lines that scrolled into view are rendered again.

The app's line filters (Textual's ANSI-to-truecolor mapping of the theme, ``NO_COLOR``, the
dimming of a screen behind a dialog) change each segment's style and nothing else, so when
the widget hands the strips to Textual itself (:meth:`Renderer.set_filters`) they are applied
once per attribute here instead of once per line per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.color import Color as TextualColor
from textual.filter import LineFilter
from textual.strip import Strip

from vibebox_tui.terminal.vt.attrs import (
    BLINK,
    BOLD,
    CONCEAL,
    DEFAULT,
    DIM,
    ITALIC,
    OVERLINE,
    REVERSE,
    STRIKE,
    TRUECOLOR,
    UNDERLINE,
    AttrTable,
)
from vibebox_tui.terminal.vt.screen import AnyLine

# Zero-width joiners and emoji presentation selectors are kept in the model (so text can be
# copied intact) but not sent to the outer terminal: there they could merge cells or widen a
# glyph and push the rest of the line out of place.
_HIDDEN = str.maketrans({"\u200d": None, "\ufe0f": None})


def _color(value: int) -> Color | None:
    if value == DEFAULT:
        return None
    if value & TRUECOLOR:
        return Color.from_rgb((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)
    return Color.from_ansi(value)


class Renderer:
    """Builds (and caches) strips for lines of one screen."""

    def __init__(self, table: AttrTable, base: Style | None = None) -> None:
        self.table = table
        self.base = base or Style()
        self._styles: dict[int, Style] = {}
        self._extras: dict[Style | None, Style] = {}
        self._filters: tuple[LineFilter, ...] = ()
        self._background: TextualColor | None = None
        self.generation = 0

    def _changed(self) -> None:
        self._styles.clear()
        self._extras.clear()
        self.generation += 1

    def set_table(self, table: AttrTable) -> None:
        if table is not self.table:
            self.table = table
            self._changed()

    def set_base(self, base: Style) -> None:
        """Use ``base`` (the widget's colours) under every cell; drops the caches if it changed."""
        if base != self.base:
            self.base = base
            self._changed()

    def set_filters(self, filters: Sequence[LineFilter], background: TextualColor) -> None:
        """Apply ``filters`` (on ``background``) to every style from now on; none: Textual
        applies them itself. Drops the caches if they changed."""
        key = tuple(filters)
        if key != self._filters or (key and background != self._background):
            self._filters, self._background = key, background
            self._changed()

    def _filtered(self, style: Style) -> Style:
        background = self._background
        for line_filter in self._filters:
            assert background is not None
            style = line_filter.apply([Segment(" ", style)], background)[0].style or style
        return style

    def styled(self, extra: Style | None = None) -> Style:
        """The widget's colours (plus ``extra``), filtered: for blank cells and labels."""
        found = self._extras.get(extra)
        if found is None:
            found = self._filtered(self.base + extra if extra is not None else self.base)
            self._extras[extra] = found
        return found

    def style(self, attr_id: int) -> Style:
        found = self._styles.get(attr_id)
        if found is None:
            fg, bg, flags = self.table.attrs[attr_id]
            found = self.base + Style(
                color=_color(fg),
                bgcolor=_color(bg),
                bold=bool(flags & BOLD) or None,
                dim=bool(flags & DIM) or None,
                italic=bool(flags & ITALIC) or None,
                underline=bool(flags & UNDERLINE) or None,
                blink=bool(flags & BLINK) or None,
                reverse=bool(flags & REVERSE) or None,
                conceal=bool(flags & CONCEAL) or None,
                strike=bool(flags & STRIKE) or None,
                overline=bool(flags & OVERLINE) or None,
            )
            found = self._filtered(found)
            self._styles[attr_id] = found
        return found

    def line(self, line: AnyLine, width: int) -> Strip:
        """The strip for ``line``, exactly ``width`` cells wide."""
        cached = line.cache
        if (
            isinstance(cached, tuple)
            and cached[0] == self.generation
            and cached[1] == width
            and isinstance(cached[2], Strip)
        ):
            return cached[2]
        strip = self._build(line, width)
        line.cache = (self.generation, width, strip)
        return strip

    def _build(self, line: AnyLine, width: int) -> Strip:
        chars = line.chars
        segments: list[Segment] = []
        append = segments.append
        x = 0
        style = self.style
        for attr, run in groupby(line.attrs[:width]):
            end = x + len(list(run))
            cells = chars[x:end]
            text = cells if isinstance(cells, str) else "".join(cells)
            if not text.isascii():
                text = _fit(list(cells))
            append(Segment(text, style(attr)))
            x = end
        if x < width:
            append(Segment(" " * (width - x), self.styled()))
        return Strip(segments, width)

    def cursor_strip(self, strip: Strip, line: AnyLine, x: int) -> Strip:
        """``strip`` with the cell at ``x`` drawn as a block cursor (reversed)."""
        if not 0 <= x < len(line.chars):
            return strip
        cell = line.chars[x] or " "
        span = 2 if x + 1 < len(line.chars) and line.chars[x + 1] == "" else 1
        cursor_style = self.style(line.attrs[x]) + Style(reverse=True)
        text = _fit([cell] + [""] * (span - 1)) if not cell.isascii() else cell
        return Strip.join(
            [
                strip.crop(0, x),
                Strip([Segment(text, cursor_style)], span),
                strip.crop(x + span, strip.cell_length),
            ]
        )


def _fit(cells: list[str]) -> str:
    """Join cells so the result is exactly one column per cell, whatever Rich thinks of
    emoji widths: a cell Rich finds narrower is padded, one it finds wider becomes ``?``."""
    out: list[str] = []
    index = 0
    count = len(cells)
    while index < count:
        cell = cells[index].translate(_HIDDEN)
        if cell == "":
            index += 1
            continue  # right half of a wide character: drawn by its left half
        span = 2 if index + 1 < count and cells[index + 1] == "" else 1
        width = cell_len(cell)
        if width < span:
            cell += " " * (span - width)  # e.g. a regional indicator: keep it, pad it
        elif width > span:
            cell = "?" + " " * (span - 1)
        out.append(cell)
        index += 1
    return "".join(out)
