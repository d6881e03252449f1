"""Rows of plain output as cells, and scrollback rows kept as the output that drew them.

:func:`build_rows` turns complete lines of plain output (printable ASCII, SGRs, line ends;
:mod:`~vibebox_tui.terminal.vt.plain`) into rows: a string of one character a cell, an array
of attribute ids, and whether the row wrapped.

A flood scrolls hundreds of complete lines off the screen within one chunk, before any frame
shows them. Building each as cells was most of the parser's time during a ``cat``
(``tests/bench/bench_flood.py`` under py-spy), for rows that are read again only if the view
is scrolled back to them. Those rows are kept instead as a :class:`HistoryBlock`: the output
that drew them and the attribute they started with, one :class:`BlockRow` per row in the
scrollback. A block's cells are built once, the first time one of its rows is read -- by
:func:`build_rows`, from the same output and the same attribute table, so cell for cell what
building them at once would have given.
"""

from __future__ import annotations

from array import array

from vibebox_tui.terminal.vt.attrs import AttrTable
from vibebox_tui.terminal.vt.sequences import PLAIN_SPLIT

Row = tuple[str, "array[int]", bool]
"""A row's cells (one character each, ``columns`` of them), their attributes, wrapped."""


def build_rows(
    table: AttrTable,
    parts: list[str],
    at: int,
    end: int,
    attr: int,
    bg: int,
    columns: int,
    newline_mode: bool,
) -> tuple[list[Row], int, int]:
    """The complete lines of ``parts[at:end]`` (split by ``PLAIN_SPLIT``; ``parts[at]`` a
    text) as rows of ``columns`` cells, as drawing each from column 0 of a blank row and
    ending it with a line feed leaves them.

    Lines are taken up to the first that holds a lone CR (it overwrites), that ends in a bare
    LF after text (the next line would not start at column 0), or that the chunk cuts short.

    Args:
        table: the screen's attribute table (SGRs are resolved through it).
        parts: the chunk, split.
        at: where the first line starts in ``parts``.
        end: where to stop looking (the chunk's last, unterminated text is not a line).
        attr: the attribute in effect at ``parts[at]``.
        bg: the attribute of the blank row the first line is drawn on.
        columns: the screen's width.
        newline_mode: LNM is set (a bare LF also returns the carriage).

    Returns:
        The rows, where the last complete line taken ends in ``parts``, and the attribute in
        effect there.
    """
    known = table.sequences
    sgr = table.sgr_sequence
    bg_only = table.bg_only
    # Attributes go into arrays as they are collected (repeating and joining arrays is
    # copying memory), two bytes a cell unless this chunk could make ids past 16 bits: each
    # piece makes at most two (its SGR's result and that one's background).
    typecode = "H" if len(table.attrs) + (end - at) + 2 < 1 << 16 else "I"
    units: dict[int, array[int]] = {}  # one cell of each attribute
    unit = units[attr] = array(typecode, (attr,))
    rows: list[Row] = []
    attrs = array(typecode)
    taken, taken_attr = at, attr  # the end of the last complete line
    while at < end:
        text = parts[at]
        delimiter = parts[at + 1]
        at += 2
        if text:
            attrs += unit * len(text)
        if delimiter[0] == "\x1b":
            found = known.get((attr, delimiter))
            attr = sgr(attr, delimiter) if found is None else found
            found_unit = units.get(attr)
            if found_unit is None:
                found_unit = units[attr] = array(typecode, (attr,))
            unit = found_unit
            continue
        if delimiter[-1] != "\n" or not (newline_mode or delimiter[0] == "\r" or not attrs):
            break
        row = "".join(parts[taken:at:2])  # the line's texts, without its delimiters
        width = len(row)
        if width <= columns:
            pad = columns - width
            rows.append((row + " " * pad, attrs + array(typecode, (bg,)) * pad, False))
        else:
            for start in range(0, width, columns):
                stop = start + columns
                piece = row[start:stop]
                pad = columns - len(piece)
                if start:
                    bg = bg_only(attrs[start])  # a wrap scrolls in the wrapping cell's background
                cells = attrs[start:stop] + array(typecode, (bg,)) * pad
                rows.append((piece + " " * pad, cells, stop < width))
        attrs = array(typecode)
        bg = bg_only(attr)  # the line feed's new row
        taken, taken_attr = at, attr
    return rows, taken, taken_attr


class HistoryBlock:
    """Complete lines of plain output that scrolled off unseen, kept as that output.

    Args:
        text: the lines as they came (texts, SGRs, line ends), each ending in a line end.
        attr: the attribute in effect where they start.
        bg: the attribute of the blank row the first one was drawn on.
        columns: the screen's width then.
        table: the attribute table their SGRs resolve through.

    Every line ends in CR LF, so LNM makes no difference to them.
    """

    __slots__ = ("_attr", "_bg", "_columns", "_rows", "_table", "_text")

    def __init__(self, text: str, attr: int, bg: int, columns: int, table: AttrTable) -> None:
        self._text = text
        self._attr = attr
        self._bg = bg
        self._columns = columns
        self._table = table
        self._rows: list[Row] | None = None

    def rows(self) -> list[Row]:
        """The block's rows as cells (built on the first call)."""
        rows = self._rows
        if rows is None:
            parts = PLAIN_SPLIT.split(self._text)
            rows, _, _ = build_rows(
                self._table,
                parts,
                0,
                len(parts) - 1,
                self._attr,
                self._bg,
                self._columns,
                False,
            )
            self._rows = rows
            self._text = ""
        return rows


class BlockRow:
    """One row of a :class:`HistoryBlock` in the scrollback; reads like a
    :class:`~vibebox_tui.terminal.vt.grid.HistoryLine`."""

    __slots__ = ("_block", "_index", "cache")

    def __init__(self, block: HistoryBlock, index: int) -> None:
        self._block = block
        self._index = index
        self.cache: object | None = None  # the renderer's strip for this row

    @property
    def chars(self) -> str:
        return self._block.rows()[self._index][0]

    @property
    def attrs(self) -> array[int]:
        return self._block.rows()[self._index][1]

    @property
    def wrapped(self) -> bool:
        return self._block.rows()[self._index][2]

    @property
    def text(self) -> str:
        return self.chars
