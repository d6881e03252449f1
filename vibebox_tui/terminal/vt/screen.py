"""The terminal screen: drawing text at the cursor, cursor movement, buffers and size.

Builds on :class:`~vibebox_tui.terminal.vt.grid.Grid` (cells, scrolling, editing). Runs of
one-cell characters (ASCII and most other BMP text) are drawn with slice assignment, runs of
two-cell characters (CJK) two cells at a time; the rest goes character by character with
glibc's ``wcwidth`` table (:meth:`Screen._draw_unicode`, the reference the fast paths must
match).
Wide characters take two cells and never straddle the right edge, and zero-width characters
(combining marks, VS16, ZWJ) join the previous cell instead of ending the run as they do in
pyte 0.8.
"""

from __future__ import annotations

from vibebox_tui.terminal.vt.grid import SCROLLBACK_LINES, AnyLine, Cursor, Grid, HistoryLine, Line
from vibebox_tui.terminal.vt.widths import char_width, runs

__all__ = [
    "SCROLLBACK_LINES",
    "AnyLine",
    "Cursor",
    "HistoryLine",
    "Line",
    "Screen",
    "char_width",
]


class Screen(Grid):
    """The grid plus cursor-driven drawing, movement, alternate buffer and resizing."""

    # -- drawing -------------------------------------------------------------------------

    def draw(self, text: str) -> None:
        """Draw printable text at the cursor, wrapping and scrolling as needed."""
        if text.isascii():
            self._draw_narrow(text)
        elif self.insert or not self.autowrap:
            self._draw_unicode(text)
        else:
            for match in runs().finditer(text):
                kind = match.lastgroup
                if kind == "narrow":
                    self._draw_narrow(match.group())
                elif kind == "wide":
                    self._draw_wide(match.group())
                else:
                    self._draw_unicode(match.group())

    def _wrap(self) -> None:
        cursor = self.cursor
        if self.autowrap:
            self.buffer[cursor.y].wrapped = True
            cursor.x = 0
            self.index()
        else:
            cursor.x = self.columns - 1

    def _draw_narrow(self, text: str) -> None:
        cursor = self.cursor
        columns = self.columns
        attr = cursor.attr
        x = cursor.x
        if x + len(text) < columns and not self.insert:
            # The common case of a flood (a run that ends inside this line): the loop below
            # taken once, without its slicing and wrap checks.
            end = x + len(text)
            line = self.buffer[cursor.y]
            chars = line.chars
            if x and chars[x] == "":
                chars[x - 1] = " "
                line.attrs[x - 1] = attr
            chars[x:end] = text
            line.attrs[x:end] = [attr] * len(text)
            if chars[end] == "":
                chars[end] = " "
                line.attrs[end] = attr
            line.cache = None
            self.dirty.add(cursor.y)
            cursor.x = end
            return
        pos = 0
        end = len(text)
        while pos < end:
            if cursor.x >= columns:
                self._wrap()
            x = cursor.x
            line = self.buffer[cursor.y]
            chars = line.chars
            count = min(columns - x, end - pos)
            if self.insert:
                self.insert_chars(count)  # IRM: shift the rest right, never halving a wide char
            if x and chars[x] == "":
                chars[x - 1] = " "  # overwrote the right half of a wide character
                line.attrs[x - 1] = attr
            chars[x : x + count] = text[pos : pos + count]
            line.attrs[x : x + count] = [attr] * count
            if x + count < columns and chars[x + count] == "":
                chars[x + count] = " "  # overwrote the left half of a wide character
                line.attrs[x + count] = attr
            line.cache = None
            self.dirty.add(cursor.y)
            cursor.x = x + count
            pos += count
            if not self.autowrap and cursor.x >= columns:
                # Without autowrap the rest of the run lands on the last column; last one wins.
                cursor.x = columns - 1
                chars[-1] = text[end - 1]
                pos = end
                cursor.x = columns

    def draw_run(self, text: str, attrs: list[int]) -> None:
        """Draw printable ASCII ``text`` whose cells take ``attrs`` (one id per character), as
        drawing each same-attribute piece in turn would (autowrap on, insert mode off): the
        fast path of plain output (:mod:`~vibebox_tui.terminal.vt.plain`), a line's pieces at once.
        """
        cursor = self.cursor
        columns = self.columns
        dirty = self.dirty
        pos = 0
        end = len(text)
        while pos < end:
            if cursor.x >= columns:
                # the blank line a wrap scrolls in takes the background of the character
                # that wrapped, as when that piece is drawn on its own
                attr, cursor.attr = cursor.attr, attrs[pos]
                self._wrap()
                cursor.attr = attr
            x = cursor.x
            line = self.buffer[cursor.y]
            chars = line.chars
            cells = line.attrs
            count = min(columns - x, end - pos)
            stop = x + count
            if x and chars[x] == "":
                chars[x - 1] = " "  # overwrote the right half of a wide character
                cells[x - 1] = attrs[pos]
            if count == end:
                chars[x:stop] = text
                cells[x:stop] = attrs
            else:
                chars[x:stop] = text[pos : pos + count]
                cells[x:stop] = attrs[pos : pos + count]
            pos += count
            if stop < columns and chars[stop] == "":
                chars[stop] = " "  # overwrote the left half of a wide character
                cells[stop] = attrs[pos - 1]
            line.cache = None
            dirty.add(cursor.y)
            cursor.x = stop

    def _draw_wide(self, text: str) -> None:
        """Draw characters that are all two cells wide (autowrap on, insert mode off)."""
        cursor = self.cursor
        columns = self.columns
        if columns < 2:
            self._draw_unicode(text)  # nothing wide fits: each character costs a blank line
            return
        attr = cursor.attr
        pos = 0
        end = len(text)
        while pos < end:
            if cursor.x + 2 > columns:
                if cursor.x < columns:
                    line = self.buffer[cursor.y]
                    line.chars[cursor.x] = " "  # never straddle the edge: a blank stays
                    line.attrs[cursor.x] = attr
                    cursor.x = columns
                self._wrap()
            x = cursor.x
            line = self.buffer[cursor.y]
            chars = line.chars
            count = min((columns - x) // 2, end - pos)
            if x and chars[x] == "":
                chars[x - 1] = " "
                line.attrs[x - 1] = attr
            chars[x : x + 2 * count] = [c for char in text[pos : pos + count] for c in (char, "")]
            line.attrs[x : x + 2 * count] = [attr] * (2 * count)
            if x + 2 * count < columns and chars[x + 2 * count] == "":
                chars[x + 2 * count] = " "
                line.attrs[x + 2 * count] = attr
            line.cache = None
            self.dirty.add(cursor.y)
            cursor.x = x + 2 * count
            pos += count

    def _draw_unicode(self, text: str) -> None:
        cursor = self.cursor
        columns = self.columns
        for char in text:
            width = char_width(char)
            if width == 0:
                self._join_previous(char)
                continue
            if cursor.x + width > columns:
                if cursor.x < columns and width == 2 and self.autowrap:
                    line = self.buffer[cursor.y]
                    line.chars[cursor.x] = " "  # a wide char never straddles the edge
                    line.attrs[cursor.x] = cursor.attr
                    cursor.x = columns
                self._wrap()
                if cursor.x + width > columns:
                    continue  # wider than the screen
            line = self.buffer[cursor.y]
            x = cursor.x
            chars = line.chars
            if self.insert:
                self.insert_chars(width)  # IRM: shift the rest right, never halving a wide char
            if x and chars[x] == "":
                chars[x - 1] = " "
                line.attrs[x - 1] = cursor.attr
            chars[x] = char
            line.attrs[x] = cursor.attr
            if width == 2:
                chars[x + 1] = ""
                line.attrs[x + 1] = cursor.attr
            if x + width < columns and chars[x + width] == "":
                chars[x + width] = " "
                line.attrs[x + width] = cursor.attr
            line.cache = None
            self.dirty.add(cursor.y)
            cursor.x = x + width
            if not self.autowrap and cursor.x >= columns:
                cursor.x = columns

    def _join_previous(self, char: str) -> None:
        """Attach a zero-width character to the cell before the cursor."""
        cursor = self.cursor
        x = min(cursor.x, self.columns) - 1
        line = self.buffer[cursor.y]
        if x < 0:
            return
        if line.chars[x] == "" and x > 0:
            x -= 1
        line.chars[x] += char
        line.cache = None
        self.dirty.add(cursor.y)

    # -- cursor movement ---------------------------------------------------------------

    def _limits(self) -> tuple[int, int]:
        return (self.top, self.bottom) if self.origin else (0, self.lines - 1)

    def move_to(self, x: int, y: int) -> None:
        """Absolute move (0-based), relative to the scroll region in origin mode."""
        top, bottom = self._limits()
        if self.origin:
            y += self.top
        self.cursor.x = max(0, min(x, self.columns - 1))
        self.cursor.y = max(top, min(y, bottom))

    def end_pending_wrap(self) -> None:
        """Drop a pending wrap, as xterm's ResetWrap: after EL 0, ED 0, ECH, ICH and DCH
        (util.c ClearRight, InsertChar, DeleteChar) the next character overwrites the last
        column instead of wrapping."""
        if self.cursor.x >= self.columns:
            self.cursor.x = self.columns - 1

    def move_x(self, x: int) -> None:
        self.cursor.x = max(0, min(x, self.columns - 1))

    def move_y(self, y: int) -> None:
        """VPA: row ``y`` (0-based), counted from the scroll region's top in origin mode."""
        self.move_to(self.cursor.x, y)

    def up(self, count: int) -> None:
        cursor = self.cursor
        top = self.top if cursor.y >= self.top else 0
        cursor.y = max(top, cursor.y - count)
        cursor.x = min(cursor.x, self.columns - 1)

    def down(self, count: int) -> None:
        cursor = self.cursor
        bottom = self.bottom if cursor.y <= self.bottom else self.lines - 1
        cursor.y = min(bottom, cursor.y + count)
        cursor.x = min(cursor.x, self.columns - 1)

    def forward(self, count: int) -> None:
        self.cursor.x = min(self.columns - 1, self.cursor.x + count)

    def back(self, count: int) -> None:
        self.cursor.x = max(0, min(self.cursor.x, self.columns - 1) - count)

    def carriage_return(self) -> None:
        self.cursor.x = 0

    def backspace(self) -> None:
        self.back(1)

    def tab(self, count: int = 1) -> None:
        x = self.cursor.x
        if x >= self.columns:
            return  # a pending wrap stays pending (xterm: TAB moves no further, keeps it)
        for _ in range(count):
            later = [t for t in self.tabstops if t > x]
            x = min(later) if later else self.columns - 1
        self.cursor.x = min(x, self.columns - 1)

    def back_tab(self, count: int = 1) -> None:
        x = self.cursor.x
        for _ in range(count):
            earlier = [t for t in self.tabstops if t < x]
            x = max(earlier) if earlier else 0
        self.cursor.x = x

    def set_margins(self, top: int, bottom: int) -> None:
        """DECSTBM with 0-based inclusive rows; an invalid region is ignored."""
        bottom = min(bottom, self.lines - 1)
        if top < bottom:
            self.top, self.bottom = top, bottom
            self.move_to(0, 0)

    # -- buffers and size --------------------------------------------------------------

    def use_alt(self, alt: bool, clear: bool) -> None:
        """Switch between main and alternate buffers; the alternate one never scrolls back."""
        target = self.alt if alt else self.main
        if clear and (alt or self.in_alt):
            self.alt[:] = [self.blank() for _ in range(self.lines)]  # in the background (BCE)
        self.buffer = target
        for line in self.buffer:
            line.cache = None
        self.touch_all()

    def resize(self, columns: int, lines: int) -> None:
        """Change the grid size; rows pushed off the top of the main screen go to scrollback."""
        columns, lines = max(1, columns), max(1, lines)
        if (columns, lines) == (self.columns, self.lines):
            return
        cursor = self.cursor
        for buffer in (self.main, self.alt):
            is_current = buffer is self.buffer
            while len(buffer) > lines:
                # Drop blank rows below the cursor first, then push rows above it away.
                if not is_current or cursor.y < len(buffer) - 1:
                    buffer.pop()
                else:
                    line = buffer.pop(0)
                    if buffer is self.main:
                        self.scrollback.append(HistoryLine(line))
                    if is_current:
                        cursor.y -= 1
            while len(buffer) < lines:
                buffer.append(Line(columns))
            for line in buffer:
                line.resize(columns)
        self.columns, self.lines = columns, lines
        self.top, self.bottom = 0, lines - 1
        self.tabstops = {t for t in self.tabstops if t < columns} | set(
            range(max(8, (min(self.columns, columns) // 8) * 8), columns, 8)
        )
        cursor.x = min(cursor.x, columns - 1)
        cursor.y = max(0, min(cursor.y, lines - 1))
        self.touch_all()

    def reset(self) -> None:
        self.__init__(self.columns, self.lines)  # type: ignore[misc]
