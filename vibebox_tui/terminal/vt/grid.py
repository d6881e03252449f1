"""Cell storage for the terminal: lines of cells, scrolling, erasing and editing.

This replaces ``pyte.Screen``'s buffer (a dict of ``Char`` namedtuples per line, rebuilt cell
by cell) with two flat lists per line -- cell texts and attribute ids -- so a run of text is
drawn with two C-level slice assignments and a scroll is a list pop/insert. The behaviour
follows pyte/xterm; the tests check the display against ``pyte.Screen`` on recorded streams.

A cell holds the character drawn there plus any zero-width characters that followed it
(combining marks, variation selectors, ZWJ); the right half of a wide character holds ``""``.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence

from vibebox_tui.terminal.vt.attrs import AttrTable
from vibebox_tui.terminal.vt.history import BlockRow, HistoryBlock, Row
from vibebox_tui.terminal.vt.widths import char_width

SCROLLBACK_LINES = 5000


class Line:
    """One row of cells."""

    __slots__ = ("attrs", "cache", "chars", "wrapped")

    def __init__(self, columns: int, attr: int = 0) -> None:
        self.chars: list[str] = [" "] * columns
        self.attrs: list[int] = [attr] * columns
        self.wrapped = False
        self.cache: object | None = None  # the renderer's strip for this content

    @classmethod
    def of(cls, chars: str, attrs: Sequence[int], wrapped: bool) -> Line:
        """A row holding ``chars`` (one character a cell) with ``attrs``."""
        line = cls.__new__(cls)
        line.chars = list(chars)
        line.attrs = list(attrs)
        line.wrapped = wrapped
        line.cache = None
        return line

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def resize(self, columns: int) -> None:
        have = len(self.chars)
        if columns < have:
            del self.chars[columns:]
            del self.attrs[columns:]
            if columns and self.chars[-1] and char_width(self.chars[-1]) == 2:
                self.chars[-1] = " "  # half a wide character cannot stay
        elif columns > have:
            self.chars.extend([" "] * (columns - have))
            self.attrs.extend([0] * (columns - have))
        self.cache = None


class HistoryLine:
    """A row that scrolled off the top, kept compactly: nothing edits it any more.

    Its cells as one string when each holds one character (else a tuple), its attribute ids
    as an array of 16-bit ints (32-bit past 65535 attributes): under a third of a
    :class:`Line`'s memory, and nothing in it the cycle collector has to visit -- a flood
    turns thousands of rows a second into scrollback, which as lists of cells kept every
    collection busy walking them.
    """

    __slots__ = ("attrs", "cache", "chars", "wrapped")

    def __init__(self, line: Line) -> None:
        text = "".join(line.chars)
        self.chars: str | tuple[str, ...] = (
            text if len(text) == len(line.chars) else tuple(line.chars)
        )
        try:
            self.attrs = array("H", line.attrs)  # two bytes a cell: ids below 65536
        except OverflowError:
            self.attrs = array("I", line.attrs)  # a stream that made more attributes
        self.wrapped = line.wrapped
        self.cache: object | None = None

    @classmethod
    def of(cls, chars: str, attrs: array[int], wrapped: bool) -> HistoryLine:
        """A row built straight from ``chars`` (one character a cell) and ``attrs``, never a
        :class:`Line` first (rows of a flood that scroll off unseen, :meth:`Grid.scroll_in`)."""
        line = cls.__new__(cls)
        line.chars = chars
        line.attrs = attrs
        line.wrapped = wrapped
        line.cache = None
        return line

    @property
    def text(self) -> str:
        chars = self.chars
        return chars if isinstance(chars, str) else "".join(chars)


AnyLine = Line | HistoryLine | BlockRow
"""A row on the screen or in the scrollback (what the renderer draws)."""


class Cursor:
    __slots__ = ("attr", "x", "y")

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.attr = 0


class Grid:
    """A grid of ``columns`` x ``lines`` cells with xterm's editing operations.

    ``x == columns`` means the cursor sits past the last column with a wrap pending (as in
    pyte); the next printable character wraps first when autowrap is on.
    """

    def __init__(self, columns: int, lines: int) -> None:
        self.columns = columns
        self.lines = lines
        self.table = AttrTable()
        self.cursor = Cursor()
        self.main = [Line(columns) for _ in range(lines)]
        self.alt = [Line(columns) for _ in range(lines)]
        self.buffer = self.main
        self.scrollback: deque[HistoryLine | BlockRow] = deque(maxlen=SCROLLBACK_LINES)
        self.top = 0
        self.bottom = lines - 1
        self.autowrap = True
        self.origin = False
        self.insert = False
        self.tabstops = set(range(8, columns, 8))
        self.dirty: set[int] = set(range(lines))
        # The scroll region (top, bottom) whose rows a line feed already put in ``dirty``: the
        # next ones need not again (a flood scrolls tens of thousands of times between two
        # looks). Only :meth:`clean` empties ``dirty``, and it forgets this.
        self._dirty_region: tuple[int, int] | None = None
        self._redrawn = False  # every row was touched at once since clean (touch_all)
        self._streamed = 0  # rows line feeds scrolled through a region since clean
        self.scrolled = 0  # lines scrolled into scrollback since the renderer last looked

    # -- helpers -----------------------------------------------------------------------

    @property
    def in_alt(self) -> bool:
        return self.buffer is self.alt

    def blank(self) -> Line:
        return Line(self.columns, self.table.bg_only(self.cursor.attr))

    def touch(self, y: int) -> None:
        self.buffer[y].cache = None
        self.dirty.add(y)

    def touch_all(self) -> None:
        self.dirty.update(range(self.lines))
        self._redrawn = True  # a new picture (the other buffer, a resize): drawn in place

    def clean(self) -> None:
        """The renderer has seen every row in :attr:`dirty`: start collecting anew."""
        self.dirty.clear()
        self._dirty_region = None
        self._redrawn = False
        self._streamed = 0

    def changed_in_place(self) -> bool:
        """Rows changed since :meth:`clean`, and not only by a flood streaming through the
        scroll region (a screenful or more of text written at its bottom and scrolled up by
        line feeds): a row outside the region that scrolled, or any row when less than a
        screenful scrolled -- what a program draws in answer to a key (an echo, a status
        line, a redraw, a scroll by a line or a page)."""
        if not self.dirty:
            return False
        region = self.streamed_region()
        if region is None:
            return True
        top, bottom = region
        return any(y < top or y > bottom for y in self.dirty)

    def streamed_region(self) -> tuple[int, int] | None:
        """The scroll region (top, bottom) a flood streamed through since :meth:`clean` (a
        screenful or more of line feeds), or None; see :meth:`changed_in_place`."""
        if self._redrawn or self._streamed < self.lines:
            return None
        return self._dirty_region

    def seen(self, rows: set[int]) -> None:
        """The renderer has seen ``rows`` ahead of the others (an echo outside a flood's
        region, painted before the flood's frame): the rest stay in :attr:`dirty`."""
        self.dirty.difference_update(rows)

    @property
    def display(self) -> list[str]:
        """The visible text, one string per row (wide-char right halves omitted)."""
        return [line.text for line in self.buffer]

    # -- scrolling ---------------------------------------------------------------------

    def index(self) -> None:
        """Line feed without carriage return: down one row, scrolling at the region bottom.

        Like every vertical move in xterm (cursor.c CursorDown), it ends a pending wrap."""
        cursor = self.cursor
        if cursor.x >= self.columns:
            cursor.x = self.columns - 1
        if cursor.y != self.bottom:
            if cursor.y < self.lines - 1:
                cursor.y += 1
            return
        # scroll_up(1), spelled out: a flood scrolls tens of thousands of times a second
        top, bottom, buffer = self.top, self.bottom, self.buffer
        line = buffer.pop(top)
        buffer.insert(bottom, Line(self.columns, self.table.bg_only(cursor.attr)))
        if top == 0 and buffer is self.main:
            self.scrollback.append(HistoryLine(line))
            self.scrolled += 1
        self._streamed += 1
        if self._dirty_region != (top, bottom):
            self.dirty.update(range(top, bottom + 1))
            self._dirty_region = (top, bottom)

    def scroll_in(
        self,
        rows: list[Row],
        attr: int,
        block: HistoryBlock | None = None,
        block_rows: int = 0,
    ) -> None:
        """Put ``rows`` on the fresh bottom row of the scroll region and below it, as drawing
        each from column 0 and ending it with a line feed would, the cursor at the region
        bottom throughout: the rows above scroll up, those that leave the top of the main
        screen go to scrollback, and a blank row of ``attr``'s background comes in last.

        A row is its cells' characters (``columns`` of them), their attributes, and whether
        it wrapped. Rows that scroll off become :class:`HistoryLine` rows at once (no
        :class:`Line` is built and scrolled for them); only those left on the screen become
        :class:`Line` rows. The cursor stays where it is, on the new blank row.

        ``block_rows`` rows come before ``rows``, all of which scroll off (``rows`` holds at
        least a screenful then): the rows of ``block`` (:mod:`.history`), kept in the
        scrollback as :class:`BlockRow` rows, or dropped when ``block`` is None.
        """
        top, bottom, buffer = self.top, self.bottom, self.buffer
        count = block_rows + len(rows)
        # S = the rows above the fresh one, then the block's, then the new rows, then the
        # last blank one; S[:count] scroll off.
        above = buffer[top:bottom]
        if top == 0 and buffer is self.main:
            scrollback = self.scrollback
            limit = scrollback.maxlen
            # only the rows the scrollback can still hold are worth building
            skip = 0 if limit is None else max(0, count - limit)
            scrollback.extend(HistoryLine(line) for line in above[skip:count])
            skip -= len(above)
            if block is not None:
                stop = min(block_rows, count - len(above))
                scrollback.extend(BlockRow(block, i) for i in range(max(skip, 0), stop))
            skip -= block_rows
            first = max(skip, 0)
            last = count - len(above) - block_rows
            if last > first:
                scrollback.extend(HistoryLine.of(*row) for row in rows[first:last])
            self.scrolled += count
        kept = above[count:]
        new = [Line.of(*row) for row in rows[max(0, len(rows) - (len(above) - len(kept))) :]]
        buffer[top : bottom + 1] = [*kept, *new, Line(self.columns, self.table.bg_only(attr))]
        self._streamed += count
        if self._dirty_region != (top, bottom):
            self.dirty.update(range(top, bottom + 1))
            self._dirty_region = (top, bottom)

    def reverse_index(self) -> None:
        cursor = self.cursor
        if cursor.x >= self.columns:
            cursor.x = self.columns - 1
        if cursor.y == self.top:
            self.scroll_down(1)
        elif cursor.y > 0:
            cursor.y -= 1

    def scroll_up(self, count: int) -> None:
        """Scroll the region up; lines leaving the top of the main screen go to scrollback."""
        top, bottom = self.top, self.bottom
        count = min(count, bottom - top + 1)
        buffer = self.buffer
        keep = top == 0 and buffer is self.main
        for _ in range(count):
            line = buffer.pop(top)
            buffer.insert(bottom, self.blank())
            if keep:
                self.scrollback.append(HistoryLine(line))
                self.scrolled += 1
        self.dirty.update(range(top, bottom + 1))

    def scroll_down(self, count: int) -> None:
        top, bottom = self.top, self.bottom
        count = min(count, bottom - top + 1)
        for _ in range(count):
            self.buffer.pop(bottom)
            self.buffer.insert(top, self.blank())
        self.dirty.update(range(top, bottom + 1))

    # -- erasing and editing -----------------------------------------------------------

    def _clear(self, y: int, start: int, end: int) -> None:
        line = self.buffer[y]
        end = min(end, self.columns)
        if start >= end:
            return
        blank = self.table.bg_only(self.cursor.attr)
        # a wide character cut by the span is erased whole (both halves, as xterm.js)
        if start and line.chars[start] == "":
            start -= 1
        if end < self.columns and line.chars[end] == "":
            end += 1
        line.chars[start:end] = [" "] * (end - start)
        line.attrs[start:end] = [blank] * (end - start)
        line.cache = None
        self.dirty.add(y)

    def erase_in_line(self, how: int) -> None:
        x = min(self.cursor.x, self.columns - 1) if how else self.cursor.x
        y = self.cursor.y
        if how == 0:
            self._clear(y, x, self.columns)
        elif how == 1:
            self._clear(y, 0, x + 1)
        elif how == 2:
            self._clear(y, 0, self.columns)
        if how != 1:
            self.buffer[y].wrapped = False

    def erase_in_display(self, how: int) -> None:
        y = self.cursor.y
        if how == 0:
            self.erase_in_line(0)
            rows = range(y + 1, self.lines)
        elif how == 1:
            self.erase_in_line(1)
            rows = range(y)
        elif how == 2:
            rows = range(self.lines)
        elif how == 3:
            self.scrollback.clear()
            return
        else:
            return
        for row in rows:
            self._clear(row, 0, self.columns)
            self.buffer[row].wrapped = False

    def erase_chars(self, count: int) -> None:
        x = min(self.cursor.x, self.columns - 1)
        self._clear(self.cursor.y, x, x + max(1, count))

    def delete_chars(self, count: int) -> None:
        """DCH; a wide character cut by the deleted span is blanked whole, never halved."""
        x = min(self.cursor.x, self.columns - 1)
        line = self.buffer[self.cursor.y]
        chars = line.chars
        count = min(max(1, count), self.columns - x)
        if x and chars[x] == "":
            chars[x - 1] = " "  # deleting from a right half: its left half goes too
        del chars[x : x + count]
        del line.attrs[x : x + count]
        chars.extend([" "] * count)
        line.attrs.extend([self.table.bg_only(self.cursor.attr)] * count)
        if chars[x] == "":
            chars[x] = " "
        self.touch(self.cursor.y)

    def insert_chars(self, count: int) -> None:
        """ICH; a wide character split by the insertion or pushed half off the edge is
        blanked whole."""
        x = min(self.cursor.x, self.columns - 1)
        line = self.buffer[self.cursor.y]
        chars = line.chars
        count = min(max(1, count), self.columns - x)
        if x and chars[x] == "":
            chars[x - 1] = chars[x] = " "
            line.attrs[x - 1] = line.attrs[x] = self.cursor.attr
        chars[x:x] = [" "] * count
        line.attrs[x:x] = [self.table.bg_only(self.cursor.attr)] * count
        del chars[self.columns :]
        del line.attrs[self.columns :]
        if chars[-1] and char_width(chars[-1]) == 2:
            chars[-1] = " "  # its right half fell off the edge
        self.touch(self.cursor.y)

    def insert_lines(self, count: int) -> None:
        y = self.cursor.y
        if not self.top <= y <= self.bottom:
            return
        count = min(max(1, count), self.bottom - y + 1)
        for _ in range(count):
            self.buffer.pop(self.bottom)
            self.buffer.insert(y, self.blank())
        self.dirty.update(range(y, self.bottom + 1))
        self.cursor.x = 0

    def delete_lines(self, count: int) -> None:
        y = self.cursor.y
        if not self.top <= y <= self.bottom:
            return
        count = min(max(1, count), self.bottom - y + 1)
        for _ in range(count):
            self.buffer.pop(y)
            self.buffer.insert(self.bottom, self.blank())
        self.dirty.update(range(y, self.bottom + 1))
        self.cursor.x = 0

    def alignment_test(self) -> None:
        """DECALN, as xterm: margins and origin mode reset, the cursor home, the screen
        filled with ``E`` in default attributes."""
        self.top, self.bottom = 0, self.lines - 1
        self.origin = False
        self.cursor.x = self.cursor.y = 0
        for y, line in enumerate(self.buffer):
            line.chars[:] = ["E"] * self.columns
            line.attrs[:] = [0] * self.columns
            line.wrapped = False
            self.touch(y)
