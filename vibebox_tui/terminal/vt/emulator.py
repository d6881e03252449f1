"""Bytes in, screen state out: the escape-sequence parser (the modes are in :mod:`.modes`).

pyte's ``ByteStream``/``Stream`` walks the input one character at a time through a generator;
that is its hot path and runs at well under 1 MB/s. This parser tokenises whole chunks with one
regular expression (runs of printable text, ``\\r\\n`` pairs, CSI/OSC/DCS/ESC sequences, single
controls), so text is drawn a run at a time. UTF-8 is decoded incrementally, and an escape
sequence cut at the end of a read is held until the next one.

Anything the parser does not understand is skipped as a whole sequence: private SGR forms
(``CSI ? ... m``, ``CSI > ... m``), unknown CSI finals, DCS strings. Queries the program makes
(DSR, CPR, DA, DECRQM, OSC 10/11 colours) are answered through :attr:`Emulator.replies`; window
titles and vibebox commands (OSC 7777) are collected in :attr:`Emulator.events`.
"""

from __future__ import annotations

import codecs
import re

from vibebox_tui.terminal.vt.modes import TerminalModes
from vibebox_tui.terminal.vt.plain import (
    FLOOD_TEXT,
    feed_block,
    feed_plain,
    find_flood,
)
from vibebox_tui.terminal.vt.screen import Screen
from vibebox_tui.terminal.vt.sequences import (
    C0_IN_CSI,
    C1,
    C1_TO_7BIT,
    CHARSETS,
    CSI_BODY,
    MAX_PENDING,
    NOT_PLAIN_CHAR,
    NOT_PLAIN_ESCAPE,
    PARTIAL,
    PLAIN_SPLIT,
    STRING_OPEN,
    TOKEN,
    VIBEBOX_COMMAND_PREFIX,
    VIBEBOX_OSC,
    BellEvent,
    CommandEvent,
    Event,
    TitleEvent,
    csi_ints,
)
from vibebox_tui.terminal.vt.widths import char_width

__all__ = ["BellEvent", "CommandEvent", "Emulator", "Event", "TitleEvent"]

PLAIN_STRETCH = 64
"""Characters of plain output between two other tokens worth the fast path: shorter ones (a
full-screen program's redraw) cost less token by token."""
PLAIN_CREDIT = 8
"""Other tokens a chunk may hold before its first long plain stretch, and one more for each
:data:`PLAIN_STRETCH` characters of plain output in it; past that the rest of the chunk is
parsed token by token (looking for stretches between a full-screen program's sequences would
cost more than it saves)."""


class Emulator(TerminalModes):
    """Feed it program output; read :attr:`screen`, :attr:`replies` and :attr:`events`."""

    def __init__(self, columns: int = 80, lines: int = 24) -> None:
        self.screen = Screen(columns, lines)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.replies: list[bytes] = []
        self.events: list[Event] = []
        self.title = ""
        self.flooded = False
        """The last chunk fed held a flood's lines, taken by the flood path (plain.py)."""
        self._reset_modes()

    # -- feeding -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse a chunk of program output (any size; may end mid-character or mid-sequence)."""
        text = self._decoder.decode(data)
        if C1.search(text):
            text = text.translate(C1_TO_7BIT)  # UTF-8-encoded C1 controls act, as in xterm
        if self._pending:
            text = self._pending + text
            self._pending = ""
        cut = text.rfind("\x1b")
        if cut >= 0 and PARTIAL.match(text, cut):
            # The last escape sequence is cut short: keep it for the next read -- from the
            # string it may terminate, when the cut fell inside an OSC/DCS's ESC \\.
            before = text.rfind("\x1b", 0, cut)
            if before >= 0 and STRING_OPEN.match(text, before, cut):
                cut = before
            tail = text[cut:]
            self._pending = tail if len(tail) < MAX_PENDING else ""
            text = text[:cut]
        self.feed_text(text)

    def feed_text(self, text: str) -> None:
        """Parse already-decoded text that holds no cut sequence at its end.

        A chunk of plain output takes the fast path (plain.py) whole; a long one that scrolls
        many lines by (a ``cat``) scrolls most of them into the scrollback as the output
        itself (:func:`~vibebox_tui.terminal.vt.plain.find_flood`). Any other chunk is parsed
        token by token, except that its long stretches of plain output still take the fast
        path, a stretch long enough to be a flood's the flood path too: a flood with a status
        line drawn now and then (a cursor move, an erase; a build's progress line, the echo
        of ``bench_flood.py``) is mostly such stretches. Every stretch and token starts where
        one of the general parser's own would, so the cells are the same either way.
        """
        self.flooded = False
        # An escape that is no CSI (DECSC, DECRC: a status line drawn in place) makes the chunk
        # no flood's whole. Two counts tell it for far less than find_flood's own checks; a
        # regular expression that finds every escape but an SGR costs a pure flood a tenth of
        # its parse (an SGR every 20-odd characters).
        if text.count("\x1b") != text.count("\x1b[") or not self._feed_flood(text):
            self._feed_text(text)

    def _feed_flood(self, text: str) -> bool:
        """Take ``text`` by the flood path when it is a flood's (see :meth:`feed_text`);
        False (nothing done) when it is not."""
        if len(text) < FLOOD_TEXT:
            return False
        taken = False
        for _ in range(2):  # a head that changes the screen: the rest measured on the new one
            if not self._plain_modes() or self.newline_mode:
                break
            flood = find_flood(self.screen, text)
            if flood is None:
                break
            # A flood's chunk: its first lines as any output, then the rest scrolled in at
            # once, most of it kept as the output itself (plain.py, history.py).
            self._feed_text(text[: flood.head])
            taken = True
            if self._plain_modes() and feed_block(self.screen, text, flood):
                self._last = ""
                self.flooded = True
                self._feed_text(text[flood.last :])
                return True
            text = text[flood.head :]
        if taken:
            self._feed_text(text)
        return taken

    def _plain_modes(self) -> bool:
        """The modes plain.py models: insert off, autowrap on, the ASCII character set."""
        screen = self.screen
        return not screen.insert and screen.autowrap and self._g[self._shift] == "B"

    def _feed_text(self, text: str) -> None:
        """:meth:`feed_text` without the look for a flood."""
        screen = self.screen
        pos = 0
        end = len(text)
        credit = PLAIN_CREDIT
        char = escape = -1  # where the next of each stops plain output (end: nowhere), once found
        while pos < end:
            if credit <= 0 or screen.insert or not screen.autowrap or self._g[self._shift] != "B":
                # few plain stretches, or a mode the fast path does not model: token by token
                self._parse(text, pos, end)
                return
            if char < pos:
                found = NOT_PLAIN_CHAR.search(text, pos)
                char = end if found is None else found.start()
            if escape < pos:
                found = NOT_PLAIN_ESCAPE.search(text, pos)
                escape = end if found is None else found.start()
            stop = min(char, escape)
            if stop == end and pos == 0:  # plain output, all of it: the fast path, however short
                self._last = feed_plain(screen, PLAIN_SPLIT.split(text), self.newline_mode)
                return
            if stop - pos >= PLAIN_STRETCH:
                stretch = text[pos:stop]
                if not self._feed_flood(stretch):
                    self._last = feed_plain(screen, PLAIN_SPLIT.split(stretch), self.newline_mode)
                credit += (stop - pos) // PLAIN_STRETCH
            elif stop > pos:
                self._parse(text, pos, stop)
            if stop == end:
                return
            credit -= 1
            match = TOKEN.match(text, stop)
            assert match is not None  # the last alternative takes any character
            if match.lastgroup == "text":
                self._draw(match.group("text"))
            else:
                self._sequence(match)
            pos = match.end()

    def _parse(self, text: str, pos: int, end: int) -> None:
        """The general parser on ``text[pos:end]``, token by token."""
        draw = self._draw
        sequence = self._sequence
        for match in TOKEN.finditer(text, pos, end):
            if match.lastgroup == "text":
                draw(match.group("text"))
            else:
                sequence(match)

    def _sequence(self, match: re.Match[str]) -> None:
        """Act on a token that is not text: a control, an escape sequence, a string."""
        screen = self.screen
        kind = match.lastgroup
        if kind == "crlf":
            screen.cursor.x = 0
            screen.index()
        elif kind == "csi":
            self._csi(match.group("cp"), match.group("ci"), match.group("csi"))
        elif kind == "ctl":
            self._control(match.group(kind))
        elif kind == "esc":
            self._esc(match.group("ei"), match.group("esc"))
        elif kind == "osc":
            self._osc(match.group(kind))
        elif kind == "cxf":
            self._csi_with_controls(match.group("cx"), match.group("cxf"))
        elif kind == "abort" and match.group(kind)[1:2] == "[":
            for char in C0_IN_CSI.findall(match.group(kind)):
                self._control(char)  # the C0 controls of a cancelled CSI still happen
        # dcs: swallowed whole
        self._last = ""

    def _draw(self, text: str) -> None:
        self._last = text[-1]
        charset = self._g[self._shift]
        if charset != "B":
            text = text.translate(CHARSETS.get(charset, {}))
        self.screen.draw(text)

    # -- C0 controls ---------------------------------------------------------------------

    def _control(self, char: str) -> None:
        screen = self.screen
        if char == "\n" or char == "\x0b" or char == "\x0c":
            if self.newline_mode:
                screen.cursor.x = 0
            screen.index()
        elif char == "\r":
            screen.carriage_return()
        elif char == "\x08":
            screen.backspace()
        elif char == "\t":
            screen.tab()
        elif char == "\x07":
            self.events.append(BellEvent())
        elif char == "\x0e":
            self._shift = 1
        elif char == "\x0f":
            self._shift = 0
        elif char == "\x1a":
            # SUB cancels a sequence and shows the error character (xterm as VT220 and later:
            # U+2426); CAN cancels silently
            self.screen.draw("\u2426")
        # everything else (NUL, a stray ESC, C1 controls) is ignored

    # -- ESC sequences -------------------------------------------------------------------

    def _esc(self, inter: str, final: str) -> None:
        screen = self.screen
        if inter in ("(", ")"):
            self._g[0 if inter == "(" else 1] = final
        elif inter == "#":
            if final == "8":
                screen.alignment_test()
                self.screen.cursor.attr = 0
        elif inter:
            return
        elif final == "7":
            self._save_cursor()
        elif final == "8":
            self._restore_cursor()
        elif final == "D":
            screen.index()
        elif final == "E":
            screen.cursor.x = 0
            screen.index()
        elif final == "M":
            screen.reverse_index()
        elif final == "H":
            screen.tabstops.add(screen.cursor.x)
        elif final == "c":
            # RIS: the same screen object (the caller's loop holds it), every mode reset;
            # replies and events still to deliver are kept
            screen.reset()
            self._reset_modes()
        elif final == "=":
            self.app_keypad = True
        elif final == ">":
            self.app_keypad = False

    # -- OSC -----------------------------------------------------------------------------

    def _osc(self, body: str) -> None:
        code, _, arg = body.partition(";")
        if code in ("0", "2"):
            self.title = arg
            self.events.append(TitleEvent(arg))
        elif code == VIBEBOX_OSC:
            if arg.startswith(VIBEBOX_COMMAND_PREFIX):
                name, _, token = arg[len(VIBEBOX_COMMAND_PREFIX) :].partition(";")
                self.events.append(CommandEvent(name, token))
        elif code in ("10", "11") and arg == "?":
            rgb = "ffff/ffff/ffff" if code == "10" else "0000/0000/0000"
            self.replies.append(f"\x1b]{code};rgb:{rgb}\x1b\\".encode())

    # -- CSI -----------------------------------------------------------------------------

    def _csi_with_controls(self, body: str, final: str) -> None:
        """A CSI with C0 controls inside: they run first, then the CSI (as in xterm). One
        whose parameters follow its intermediates is malformed and swallowed."""
        for char in C0_IN_CSI.findall(body):
            self._control(char)
        match = CSI_BODY.fullmatch(C0_IN_CSI.sub("", body))
        if match is not None:
            self._csi(match.group("cp"), match.group("ci"), final)

    def _csi(self, params: str, inter: str, final: str) -> None:
        screen = self.screen
        if final == "m":
            if not inter and (not params or params[0] not in "<=>?"):
                screen.cursor.attr = screen.table.sgr(screen.cursor.attr, params)
            return
        private = params[:1] if params[:1] in ("?", ">", "<", "=") else ""
        if private:
            params = params[1:]
        if inter:
            self._csi_intermediate(private, params, inter, final)
            return
        if private and final not in "hlnc":
            return
        try:
            args = csi_ints(params)
        except ValueError:
            return
        first = args[0]
        count = max(1, first)
        if final == "H" or final == "f":
            row = args[0] if args[0] else 1
            col = args[1] if len(args) > 1 and args[1] else 1
            screen.move_to(col - 1, row - 1)
        elif final == "A":
            screen.up(count)
        elif final == "B" or final == "e":
            screen.down(count)
        elif final == "C" or final == "a":
            screen.forward(count)
        elif final == "D":
            screen.back(count)
        elif final == "E":
            screen.down(count)
            screen.cursor.x = 0
        elif final == "F":
            screen.up(count)
            screen.cursor.x = 0
        elif final == "G" or final == "`":
            screen.move_x(count - 1)
        elif final == "d":
            screen.move_y(count - 1)
        elif final == "K":
            screen.erase_in_line(first)
            if first == 0 and screen.cursor.x >= screen.columns:
                screen.end_pending_wrap()
        elif final == "J":
            screen.erase_in_display(first)
            if first == 0:
                screen.end_pending_wrap()
        elif final == "h" or final == "l":
            self._set_modes(private, args, final == "h")
        elif final == "r":
            bottom = args[1] if len(args) > 1 and args[1] else screen.lines
            screen.set_margins(count - 1, bottom - 1)
        elif final == "L":
            screen.insert_lines(count)
        elif final == "M":
            screen.delete_lines(count)
        elif final == "P":
            screen.delete_chars(count)
            screen.end_pending_wrap()
        elif final == "@":
            screen.insert_chars(count)
            screen.end_pending_wrap()
        elif final == "X":
            screen.erase_chars(count)
            screen.end_pending_wrap()
        elif final == "S":
            screen.scroll_up(count)
        elif final == "T" and len(args) == 1:
            screen.scroll_down(count)
        elif final == "I":
            screen.tab(count)
        elif final == "Z":
            screen.back_tab(count)
        elif final == "g":
            if first == 0:
                screen.tabstops.discard(screen.cursor.x)
            elif first == 3:
                screen.tabstops.clear()
        elif final == "b":
            self._repeat(count)
        elif final == "s":
            self._save_cursor()
        elif final == "u":
            self._restore_cursor()
        elif final == "n":
            self._status_report(private, first)
        elif final == "c":
            self._device_attributes(private, first)
        elif final == "t" and first == 18:
            self.replies.append(f"\x1b[8;{screen.lines};{screen.columns}t".encode())

    def _csi_intermediate(self, private: str, params: str, inter: str, final: str) -> None:
        if inter == "!" and final == "p":  # DECSTR soft reset, as xterm's ReallyReset
            s = self.screen
            s.origin, s.autowrap, s.insert = False, True, False
            s.top, s.bottom = 0, s.lines - 1
            s.cursor.attr = 0
            self._g, self._shift = ["B", "B"], 0
            self.app_cursor = self.app_keypad = False
            self.cursor_visible = True
            self._saved[s.in_alt] = (0, 0, 0, False, False, ("B", "B"), 0)
        elif inter == "$" and final == "p":  # DECRQM: report a mode's state
            mode = int(params) if params.isdigit() else 0
            state = self._mode_state(private, mode)
            self.replies.append(f"\x1b[{private}{mode};{state}$y".encode())

    def _repeat(self, count: int) -> None:
        """REP: the graphic character drawn right before, again (xterm: only when nothing
        but this CSI came in between, and never a zero-width one)."""
        char = self._last
        if char and char_width(char) > 0:
            self._draw(char * min(count, 65535))

    # -- size ----------------------------------------------------------------------------

    def resize(self, columns: int, lines: int) -> None:
        self.screen.resize(columns, lines)

    def take_replies(self) -> bytes:
        data = b"".join(self.replies)
        self.replies.clear()
        return data

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events
