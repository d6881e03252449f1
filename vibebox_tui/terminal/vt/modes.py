"""The terminal's modes: their power-on state, DECSET/DECRST and SM/RM, the mode and status
reports a program asks for (DECRQM, DSR, CPR, DA), and the cursor DECSC saves.

:class:`TerminalModes` is the state half of :class:`~vibebox_tui.terminal.vt.emulator.Emulator`
(which parses and dispatches); it acts on the emulator's :attr:`screen` and answers into its
:attr:`replies`.
"""

from __future__ import annotations

from vibebox_tui.terminal.vt.screen import Screen
from vibebox_tui.terminal.vt.sequences import (
    ALLOW_DECCOLM,
    ALT_47,
    ALT_1047,
    ALT_1049,
    BRACKETED_PASTE,
    DECAWM,
    DECCKM,
    DECCOLM,
    DECOM,
    DECTCEM,
    FOCUS_EVENTS,
    IRM,
    LNM,
    MOUSE_MODES,
    SAVE_1048,
    SYNC_OUTPUT,
)


class TerminalModes:
    """The modes a program sets and queries, over one :class:`Screen`."""

    screen: Screen
    replies: list[bytes]

    def _reset_modes(self) -> None:
        """Every mode at its power-on state (also RIS, which keeps the screen object)."""
        self.app_cursor = False
        self.app_keypad = False
        self.bracketed_paste = False
        self.cursor_visible = True
        self.focus_events = False
        self.synchronized = False  # mode 2026: the program is mid-frame, hold the repaint
        self.newline_mode = False  # LNM (CSI 20 h): LF, VT and FF also return the carriage
        self.allow_deccolm = False  # mode 40: xterm ignores DECCOLM unless it is set
        self.mouse_modes: set[int] = set()
        self._g = ["B", "B"]  # designated G0/G1 charsets ("0" = DEC special graphics)
        self._shift = 0
        self._last = ""  # the graphic character just drawn, for REP; "" after anything else
        # DECSC per buffer: x, y, attr, origin, wrap pending, (G0, G1), shift
        self._saved: dict[bool, tuple[int, int, int, bool, bool, tuple[str, str], int]] = {}

    def _save_cursor(self) -> None:
        """DECSC, as xterm: position, SGR, origin mode, the pending-wrap flag, the charsets
        and the shift -- not autowrap (xterm's cursor.c keeps DECAWM out of it)."""
        s = self.screen
        c = s.cursor
        wrap = c.x >= s.columns
        g = (self._g[0], self._g[1])
        self._saved[s.in_alt] = (c.x, c.y, c.attr, s.origin, wrap, g, self._shift)

    def _restore_cursor(self) -> None:
        s = self.screen
        saved = self._saved.get(s.in_alt)
        if saved is None:  # never saved: home, default attributes, charsets reset
            s.origin = False
            s.move_to(0, 0)
            s.cursor.attr = 0
            self._g, self._shift = ["B", "B"], 0
            return
        x, y, attr, s.origin, wrap, charsets, self._shift = saved
        self._g = list(charsets)
        s.cursor.attr = attr
        s.cursor.x = s.columns if wrap else min(x, s.columns - 1)
        s.cursor.y = min(y, s.lines - 1)

    def _mode_state(self, private: str, mode: int) -> int:
        s = self.screen
        if not private:
            ansi = {IRM: s.insert, LNM: self.newline_mode}
            return (1 if ansi[mode] else 2) if mode in ansi else 0
        states = {
            DECCKM: self.app_cursor,
            DECOM: s.origin,
            DECAWM: s.autowrap,
            DECTCEM: self.cursor_visible,
            ALT_1049: s.in_alt,
            ALT_1047: s.in_alt,
            ALT_47: s.in_alt,
            BRACKETED_PASTE: self.bracketed_paste,
            FOCUS_EVENTS: self.focus_events,
            SYNC_OUTPUT: self.synchronized,
        }
        if mode in states:
            return 1 if states[mode] else 2
        if mode in MOUSE_MODES:
            return 1 if mode in self.mouse_modes else 2
        return 0

    def _status_report(self, private: str, what: int) -> None:
        screen = self.screen
        if what == 5 and not private:
            self.replies.append(b"\x1b[0n")
        elif what == 6:
            y = screen.cursor.y - (screen.top if screen.origin else 0)
            x = min(screen.cursor.x, screen.columns - 1)
            self.replies.append(f"\x1b[{private}{y + 1};{x + 1}R".encode())

    def _device_attributes(self, private: str, what: int) -> None:
        if what != 0:
            return
        if not private:
            self.replies.append(b"\x1b[?62;22c")  # VT220 with ANSI colour
        elif private == ">":
            self.replies.append(b"\x1b[>1;10;0c")

    def _set_modes(self, private: str, modes: list[int], on: bool) -> None:
        screen = self.screen
        if not private:
            for mode in modes:
                if mode == IRM:
                    screen.insert = on
                elif mode == LNM:
                    self.newline_mode = on
            return
        if private != "?":
            return
        for mode in modes:
            if mode == DECCKM:
                self.app_cursor = on
            elif mode == DECOM:
                screen.origin = on
                screen.move_to(0, 0)
            elif mode == DECAWM:
                screen.autowrap = on
            elif mode == DECTCEM:
                self.cursor_visible = on
            elif mode == ALT_1049:
                # as xterm: save (in the current buffer's slot), switch, clear; leaving
                # restores the main buffer's cursor even when already on it
                if on:
                    self._save_cursor()
                    screen.use_alt(True, clear=True)
                else:
                    if screen.in_alt:
                        screen.use_alt(False, clear=False)
                    self._restore_cursor()
            elif mode in (ALT_47, ALT_1047):
                if on != screen.in_alt:
                    screen.use_alt(on, clear=mode == ALT_1047 and not on)
            elif mode == SAVE_1048:
                if on:
                    self._save_cursor()
                else:
                    self._restore_cursor()
            elif mode == BRACKETED_PASTE:
                self.bracketed_paste = on
            elif mode == FOCUS_EVENTS:
                self.focus_events = on
            elif mode == SYNC_OUTPUT:
                self.synchronized = on
            elif mode in MOUSE_MODES:
                if on:
                    self.mouse_modes.add(mode)
                else:
                    self.mouse_modes.discard(mode)
            elif mode == ALLOW_DECCOLM:
                self.allow_deccolm = on
            elif mode == DECCOLM and self.allow_deccolm:
                # xterm ignores DECCOLM unless mode 40 allows it (resource c132, off by
                # default); allowed, it clears, resets the margins and homes, and the size
                # stays the widget's
                screen.top, screen.bottom = 0, screen.lines - 1
                screen.erase_in_display(2)
                screen.origin = False
                screen.move_to(0, 0)
