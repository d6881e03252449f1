"""The parser's fast path for plain output: printable ASCII, colours and line ends.

A flood is mostly a coloured log: printable ASCII, SGR sequences, CRs and LFs. The general
parser (:mod:`~vibebox_tui.terminal.vt.emulator`) takes it a token at a time -- a regular
expression match, a dispatch and a draw call for every coloured word. Here a chunk is split at
its SGRs and line ends by one ``re.split`` (C code), the SGRs are resolved through the
attribute table's cache, and each line's pieces are drawn by one
:meth:`~vibebox_tui.terminal.vt.screen.Screen.draw_run` with their attributes side by side --
the same cells, cursor and scrollback as drawing the pieces one by one.

Most of a flood's lines never meet the eye: a chunk of a few hundred lines scrolls all but
the last screenful off before the next frame. Once a line feed leaves the cursor on a fresh
bottom row, the complete lines after it are built as compact rows (a string and an attribute
array) and handed to :meth:`~vibebox_tui.terminal.vt.grid.Grid.scroll_in` at once: those that
scroll off go straight into the scrollback, and only the rows left on the screen become rows
of cells. The result is cell for cell what drawing and scrolling them one by one gives (the
tests compare both against the general parser).

A chunk holding anything else (another control or escape sequence, non-ASCII text) takes the
general path but for its long stretches of plain output, and every chunk does while the
screen is in a mode this path does not model (insert mode, autowrap off, a non-ASCII
character set); the emulator checks those (:meth:`Emulator.feed_text
<vibebox_tui.terminal.vt.emulator.Emulator.feed_text>`).
"""

from __future__ import annotations

from array import array

from vibebox_tui.terminal.vt.screen import Screen
from vibebox_tui.terminal.vt.sequences import PLAIN_SPLIT


def plain_parts(text: str) -> list[str] | None:
    """``text`` split as ``[text, delimiter, text, ...]`` if it is plain output, else None."""
    if not text.isascii():
        return None  # checked first: it costs far less than the split
    parts = PLAIN_SPLIT.split(text)
    texts = "".join(parts[::2])
    if texts.isprintable():
        return parts
    return None


def feed_plain(screen: Screen, parts: list[str], newline_mode: bool = False) -> str:
    """Draw the pieces of a plain chunk (:func:`plain_parts`) on ``screen``.

    Args:
        screen: the screen to draw on (insert mode off, autowrap on).
        parts: the chunk, split by :func:`plain_parts`.
        newline_mode: LNM is set (a lone LF also returns the carriage).

    Returns:
        The last character drawn when the chunk ends in text, else ``""`` (what REP repeats).
    """
    cursor = screen.cursor
    known = screen.table.sequences
    sgr = screen.table.sgr_sequence
    index = screen.index
    draw_run = screen.draw_run
    attr = cursor.attr
    texts: list[str] = []
    attrs: list[int] = []
    at = 0
    end = len(parts) - 1  # the last text is left over
    while at < end:
        text = parts[at]
        delimiter = parts[at + 1]
        at += 2
        if text:
            texts.append(text)
            attrs += [attr] * len(text)
        if delimiter[0] == "\x1b":
            found = known.get((attr, delimiter))
            attr = sgr(attr, delimiter) if found is None else found
            continue
        cursor.attr = attr  # a scroll fills the new line with its background (BCE)
        if texts:
            draw_run("".join(texts), attrs)
            texts = []
            attrs = []
        if delimiter[-1] == "\n":
            if newline_mode or delimiter[0] == "\r":
                cursor.x = 0
            index()
            if cursor.y == screen.bottom and not cursor.x and at < end:
                at, attr = _scroll_in(screen, parts, at, attr, newline_mode)
        else:
            cursor.x = 0
    text = parts[-1]
    if text:
        texts.append(text)
        attrs += [attr] * len(text)
    cursor.attr = attr
    if texts:
        draw_run("".join(texts), attrs)
    return text[-1] if text else ""


def _scroll_in(
    screen: Screen, parts: list[str], at: int, attr: int, newline_mode: bool
) -> tuple[int, int]:
    """Take the complete lines from ``parts[at]`` on as rows for
    :meth:`~vibebox_tui.terminal.vt.grid.Grid.scroll_in`, the cursor at column 0 of a blank
    bottom row of the scroll region: most of a flood's rows scroll off before any frame shows
    them, and so cost a string and an attribute array instead of a row of cells scrolled up.

    Only lines drawn from column 0 onto blank rows are taken: up to the first that holds a
    lone CR (it overwrites), that ends in a bare LF after text (the next line would not start
    at column 0), or that the chunk cuts short; the caller draws the rest.

    Returns:
        Where the caller goes on in ``parts``, and the attribute in effect there.
    """
    line = screen.buffer[screen.cursor.y]
    bg = line.attrs[0]
    blank = line.chars.count(" ") == len(line.chars) and line.attrs.count(bg) == len(line.attrs)
    if line.wrapped or not blank:
        return at, attr  # the line feed moved onto a row with content, not a fresh one
    columns = screen.columns
    table = screen.table
    known = table.sequences
    sgr = table.sgr_sequence
    bg_only = table.bg_only
    # Attributes go into arrays as they are collected (repeating and joining arrays is
    # copying memory), two bytes a cell unless this chunk could make ids past 16 bits: each
    # piece makes at most two (its SGR's result and that one's background).
    typecode = "H" if len(table.attrs) + len(parts) + 2 < 1 << 16 else "I"
    units: dict[int, array[int]] = {}  # one cell of each attribute
    unit = units[attr] = array(typecode, (attr,))
    rows: list[tuple[str, array[int], bool]] = []
    attrs = array(typecode)
    taken, taken_attr = at, attr  # the end of the last complete line
    end = len(parts) - 1
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
    if rows:
        screen.scroll_in(rows, taken_attr)
    return taken, taken_attr
