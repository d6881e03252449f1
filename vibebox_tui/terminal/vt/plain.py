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

A long chunk of such lines, every one ending in CR LF (a ``cat``, or a flood under a status
line a program keeps above its scroll region), is not even split: :func:`find_flood` checks it
with a few C-level string operations and counts its rows, and :func:`feed_block` draws its
first lines and builds only the rows left in the scroll region; the lines between go to the
scrollback as the output itself (:class:`~vibebox_tui.terminal.vt.history.HistoryBlock`),
built into cells if the view is ever scrolled back to them, or nowhere when rows scrolled off
the region are dropped (a region below the top, the alternate screen).
``tests/bench/bench_terminal.py``'s stream: 38 against 19 MB/s.

A chunk holding anything else (another control or escape sequence, non-ASCII text) takes the
general path but for its long stretches of plain output, and every chunk does while the
screen is in a mode this path does not model (insert mode, autowrap off, a non-ASCII
character set); the emulator checks those (:meth:`Emulator.feed_text
<vibebox_tui.terminal.vt.emulator.Emulator.feed_text>`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from vibebox_tui.terminal.vt.history import HistoryBlock, build_rows
from vibebox_tui.terminal.vt.screen import Screen
from vibebox_tui.terminal.vt.sequences import PLAIN_SPLIT

LAZY_ROWS = 64
"""Lines a chunk of a flood must hold, besides the first and the last screenful, and rows
they must make, before they are kept as a
:class:`~vibebox_tui.terminal.vt.history.HistoryBlock` (fewer cost less built at once than
looked through twice)."""
FLOOD_TEXT = 4096
"""Characters a chunk must hold to be looked at as a flood (:func:`find_flood`)."""
# An SGR (it takes no cell); a pattern with a literal start, which re finds fast.
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_NOT_SGR = re.compile(rb"\x1b(?!\[[0-9;]*m)")  # an escape that does not begin an SGR
# What a read may end in that the next one completes: an escape sequence begun, a CR (its LF).
_CUT = re.compile(rb"(?:\x1b(?:\[[0-9;]*)?|\r)\Z")
CUT_LONGEST = 32
"""Most bytes :func:`plain_flow` looks back for a cut SGR (a longer one is not plain output)."""
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\r\n\x1b"


def plain_flow(data: bytes, held: bytes = b"") -> tuple[bool, bytes]:
    """Whether output read as ``data`` (not yet decoded), after ``held``, is plain output as a
    flood streams it: printable ASCII and SGRs, every CR followed by an LF and every LF
    preceded by a CR. Drawn, it changes nothing in place but the rows the lines land on: no
    cursor movement, no lone CR going back over a line, no erase, no other control. The
    terminal holds such output for a flood's frame even just after a key (``TerminalView``):
    it is not that key's echo drawn in place.

    Reads end anywhere, so the check is carried from one to the next: the second value is
    what to pass as ``held`` with the next read (an escape sequence or a CR LF the read cut).
    """
    text = held + data if held else data
    cut = _CUT.search(text, max(0, len(text) - CUT_LONGEST))
    if cut is not None:
        text, held = text[: cut.start()], text[cut.start() :]
    else:
        held = b""
    if text.translate(None, _PLAIN_BYTES):
        return False, held  # another control, or not ASCII
    ends = text.count(b"\r\n")
    if text.count(b"\r") != ends or text.count(b"\n") != ends:
        return False, held
    return _NOT_SGR.search(text) is None, held


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
    if not _on_fresh_row(screen):
        return at, attr  # the line feed moved onto a row with content, not a fresh one
    bg = screen.buffer[screen.cursor.y].attrs[0]
    rows, taken, taken_attr = build_rows(
        screen.table, parts, at, len(parts) - 1, attr, bg, screen.columns, newline_mode
    )
    if rows:
        screen.scroll_in(rows, taken_attr)
    return taken, taken_attr


def _on_fresh_row(screen: Screen) -> bool:
    """The cursor is at column 0 of a blank row that did not wrap (a line feed's new row)."""
    line = screen.buffer[screen.cursor.y]
    bg = line.attrs[0]
    return (
        screen.cursor.x == 0
        and not line.wrapped
        and line.chars.count(" ") == len(line.chars)
        and line.attrs.count(bg) == len(line.attrs)
    )


# -- a flood's chunk: most of its rows kept as the output itself -------------------------


class Flood(NamedTuple):
    """Where a chunk of a flood divides (offsets in its text): the lines that bring the
    cursor onto a fresh bottom row, the lines that scroll off unseen, the last screenful."""

    head: int
    """End of the first lines: drawn as any output is, they leave the cursor at the bottom."""
    tail: int
    """End of the lines kept as a block; the last screenful of lines follows."""
    last: int
    """End of the last complete line (what follows is drawn as any output is)."""
    block: str
    """The lines between ``head`` and ``tail`` (every line end a CR LF)."""
    block_rows: int
    """Rows the block's lines make."""
    shape: tuple[int, int, int, bool]
    """The screen the rows were counted for: its columns, its scroll region's top and bottom,
    and whether it is the alternate screen."""


def find_flood(screen: Screen, text: str) -> Flood | None:
    """Where ``text`` divides as a :class:`Flood`, when it is plain output (printable ASCII,
    SGRs, every line ending in CR LF) whose lines make more than :data:`LAZY_ROWS` rows
    besides the region's worth left on the screen, drawn with the cursor in the scroll
    region; else None. The caller checks the other modes (plain.py's, no LNM).
    """
    cursor, top, bottom = screen.cursor, screen.top, screen.bottom
    if not top <= cursor.y <= bottom or not text.isascii():
        return None
    head = 0
    for _ in range(bottom - cursor.y + 1):  # enough line feeds to reach the bottom and scroll
        head = text.find("\r\n", head) + 2
        if head == 1:
            return None
    last = text.rfind("\r\n") + 2
    tail = last - 2
    for _ in range(bottom - top):  # the region's last rows: a line a row at least
        tail = text.rfind("\r\n", head, tail)
        if tail < 0:
            return None
    tail += 2
    block = text[head:tail]
    if "\r\r" in block:  # CR CR LF: a file with CR LF line ends through a PTY that adds a CR
        block = block.replace("\r\r\n", "\r\n")  # the same line end to the parser
    line_ends = block.count("\r\n")
    if line_ends <= LAZY_ROWS or block.count("\r") != line_ends or block.count("\n") != line_ends:
        return None  # short, or a lone CR or LF (it overwrites or moves without returning)
    # Every CR is one of the CR LFs counted: without them and the SGRs, what takes cells.
    visible, sgrs = _SGR.subn("", block.replace("\r\n", "\n"))
    if sgrs != block.count("\x1b"):
        return None  # an escape sequence other than an SGR
    lines = visible.split("\n")
    lines.pop()  # the block ends with a line end: nothing after it
    if not "".join(lines).isprintable():
        return None
    columns = screen.columns
    block_rows = sum(1 if width <= columns else -(-width // columns) for width in map(len, lines))
    if block_rows <= LAZY_ROWS:
        return None
    return Flood(head, tail, last, block, block_rows, (columns, top, bottom, screen.in_alt))


def feed_block(screen: Screen, text: str, flood: Flood) -> bool:
    """Scroll ``text[flood.head:flood.last]`` in, the lines before ``flood.tail`` as a
    :class:`~vibebox_tui.terminal.vt.history.HistoryBlock`, after the head was drawn. Where
    rows scrolled off go nowhere (a scroll region below the top, the alternate screen), the
    grid drops the block unbuilt.

    Returns:
        False (nothing done) unless the screen is still the one :func:`find_flood` measured,
        the cursor is at column 0 of its fresh bottom row and the last screenful of lines is
        plain output too: the caller draws the rest then.
    """
    cursor = screen.cursor
    if (screen.columns, screen.top, screen.bottom, screen.in_alt) != flood.shape:
        return False  # the head changed the screen the flood was measured for
    if cursor.y != screen.bottom or not _on_fresh_row(screen):
        return False
    parts = plain_parts(text[flood.tail : flood.last])
    if parts is None or any(_overwrites(end) for end in parts[1::2]):
        return False  # the last screenful holds another control, a lone CR or LF
    table = screen.table
    block = flood.block
    # The attribute after the block: only its SGRs after the last full reset count.
    reset = max(block.rfind("\x1b[0m"), block.rfind("\x1b[m"))
    attr = cursor.attr
    for delimiter in PLAIN_SPLIT.split(block[max(reset, 0) :])[1::2]:
        if delimiter[0] == "\x1b":
            attr = table.sgr_sequence(attr, delimiter)
    bg = screen.buffer[cursor.y].attrs[0]
    columns = screen.columns
    rows, _, taken_attr = build_rows(
        table, parts, 0, len(parts) - 1, attr, table.bg_only(attr), columns, False
    )
    history = HistoryBlock(block, cursor.attr, bg, columns, table)
    screen.scroll_in(rows, taken_attr, history, flood.block_rows)
    cursor.attr = taken_attr
    return True


def _overwrites(delimiter: str) -> bool:
    """A delimiter of plain output that is a lone CR or LF, not an SGR or CR(s) LF."""
    return delimiter[0] != "\x1b" and (delimiter[0] != "\r" or delimiter[-1] != "\n")
