"""The parser's fast path for plain output: printable ASCII, colours and line ends.

A flood is mostly a coloured log: printable ASCII, SGR sequences, CRs and LFs. The general
parser (:mod:`~vibebox_tui.terminal.vt.emulator`) takes it a token at a time -- a regular
expression match, a dispatch and a draw call for every coloured word. Here a chunk is split at
its SGRs and line ends by one ``re.split`` (C code), the SGRs are resolved through the
attribute table's cache, and each line's pieces are drawn by one
:meth:`~vibebox_tui.terminal.vt.screen.Screen.draw_run` with their attributes side by side --
the same cells, cursor and scrollback as drawing the pieces one by one.

A chunk holding anything else (another control or escape sequence, non-ASCII text) takes the
general path, and so does every chunk while the screen is in a mode this path does not model
(insert mode, autowrap off, a non-ASCII character set); the emulator checks those.
"""

from __future__ import annotations

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
    pairs = iter(parts)
    for text, delimiter in zip(pairs, pairs, strict=False):  # the last text is left over
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
