"""The host terminal's input, byte for byte, for the embedded terminal.

Textual's key parser loses information a guest program needs: it waits after ``ESC`` and drops
it before ``[`` or ``:``, reads ``ESC b`` as ctrl+left, reads ``ESC O A`` typed as three keys as
the up arrow. So while the :class:`~vibebox_tui.terminal.widget.TerminalView` has the focus,
:class:`VibeboxDriver` (Textual's Linux driver with its own input thread) reads the bytes the
host terminal sends and gives the terminal the ones that are keys, unparsed: the guest gets
exactly what the host terminal typed, as it would over ``ssh``. :class:`HostInput` splits them.

What still goes to Textual (the dashboard), even while the terminal has the focus:

* ``ctrl+\\`` (``0x1c``), which leaves the terminal -- and every byte after it in that read,
  until the terminal has the focus again (those keys were typed for the dashboard);
* the host terminal's own reports: mouse (``CSI < ... M/m``, ``CSI M`` and three bytes),
  focus in/out (``CSI I``, ``CSI O``), mode reports (``CSI ? ... $ y`` and other ``CSI ?``
  replies), in-band resize (``CSI 48 ; ... t``). Mouse events reach the terminal through
  Textual, encoded by :mod:`~vibebox_tui.terminal.mouse` for the guest's mouse mode; focus
  in/out also reach the guest when it asked for them (mode 1004), as xterm reports its
  window's focus.

The widget itself keeps ``shift+PgUp`` / ``shift+PgDn`` (``CSI 5;2~`` / ``CSI 6;2~``) on the
main screen, to page its scrollback, as xterm does.

A bracketed paste from the host (``CSI 200 ~`` ... ``CSI 201 ~``) is cut out whole and given
to the terminal as a paste, re-encoded for the guest (bracketed only if the guest asked).

Keys whose bytes depend on the guest's modes follow them because the driver mirrors the
guest's DECCKM (application cursor keys) and DECKPAM (application keypad) onto the host
terminal while the terminal has the focus (:meth:`VibeboxDriver.mirror_modes`): the host then
sends ``ESC O A`` for up, ``ESC O q`` for keypad 1, as xterm does for the guest's modes. The
kitty keyboard protocol Textual would ask the host for is left off, so keys come in xterm's
encoding. Without this driver (headless, Pilot, the web driver) keys arrive as Textual key
events and :func:`~vibebox_tui.terminal.keys.encode_key` encodes them.

The widget sends a typed CR as CR LF while the guest has LNM set, as xterm does. Not
followed (the guest gets the host's default): xterm's modifyOtherKeys and the kitty keyboard
protocol (the emulator does not announce them, so programs use xterm's keys) and DECBKM
(Backspace is DEL, ctrl+Backspace BS).
"""

from __future__ import annotations

import os
import re
import selectors
import threading
from codecs import getincrementaldecoder
from collections.abc import Callable
from typing import Literal, Protocol

from textual import constants
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

Destination = Literal["keys", "paste", "focus", "app"]
Chunk = tuple[Destination, bytes]

ESC = 0x1B
FOCUS_OUT_BYTE = 0x1C
"""``ctrl+\\``: the byte that leaves the terminal (see ``FOCUS_OUT_KEY`` in the widget)."""
FOCUS_REPORTS = (b"\x1b[I", b"\x1b[O")
"""The host window gained / lost the focus."""
X10_MOUSE = b"\x1b[M"
"""A mouse report in the old encoding (no key sends ``CSI M``)."""
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
MAX_CSI = 64
"""A CSI longer than this without a final byte is not the host's: its bytes are keys."""
FLUSH_DELAY = 0.03
"""How long an ``ESC`` or an incomplete ``ESC [ ...`` at the end of a read waits for the rest
(a host report cut by a read) before it goes to the guest as typed keys. Bytes are never
changed by the wait: ``ESC`` then ``:`` typed within it still reach the guest as ``ESC :``."""
READ_SIZE = 64 * 1024
_SPECIAL = re.compile(rb"[\x1b\x1c]")


def _is_host_report(seq: bytes) -> bool:
    """A complete CSI the host terminal sends about itself, not for a key."""
    body = seq[2:]
    if body in (b"I", b"O"):  # focus in / out
        return True
    if body[:1] in (b"<", b"?"):  # SGR mouse; mode, DA and kitty-flag replies
        return True
    if seq.endswith(b"$y"):  # DECRPM
        return True
    return seq.endswith(b"t") and body.startswith(b"48;")  # in-band resize


class HostInput:
    """Splits the host terminal's bytes between the guest (``keys``, ``paste``) and Textual
    (``app``). Keeps state across reads: a sequence cut by a read, a paste in progress."""

    def __init__(self) -> None:
        self._pending = b""
        self._paste: bytearray | None = None  # a paste we cut out, still open
        self._app_paste = False  # Textual's parser is inside a paste: it gets all until the end
        self._tail = b""  # the last bytes given to Textual while it is inside a paste
        self.left = False
        """Set when ``ctrl+\\`` was seen in raw mode (the caller clears it)."""

    @property
    def pending(self) -> bool:
        """Bytes wait for the rest of a sequence (call :meth:`flush` after a short pause)."""
        return bool(self._pending)

    def feed(self, data: bytes, raw: bool) -> list[Chunk]:
        """Split ``data``; ``raw`` says whether the terminal takes keys right now."""
        out: list[Chunk] = []
        data, self._pending = self._pending + data, b""
        if self._paste is not None:
            data = self._continue_paste(data, out)
        elif self._app_paste:
            data = self._continue_app_paste(data, out)
        if not data:
            return out
        if not raw:
            self._give_app(data, out)
            return out
        self._split(data, out)
        return out

    def flush(self) -> list[Chunk]:
        """The read timed out: an incomplete sequence was typed keys after all."""
        data, self._pending = self._pending, b""
        return [("keys", data)] if data else []

    # -- internals -----------------------------------------------------------------------

    def _give_app(self, data: bytes, out: list[Chunk]) -> None:
        """All of ``data`` goes to Textual; follow its paste state so raw mode never starts
        inside a paste Textual's parser has begun."""
        _append(out, "app", data)
        scan = self._tail + data
        start, end = scan.rfind(PASTE_START), scan.rfind(PASTE_END)
        if start > end:
            self._app_paste = True
        elif end > start:
            self._app_paste = False
        self._tail = scan[-(len(PASTE_END) - 1) :]

    def _continue_app_paste(self, data: bytes, out: list[Chunk]) -> bytes:
        scan = self._tail + data
        end = scan.find(PASTE_END)
        if end < 0:
            _append(out, "app", data)
            self._tail = scan[-(len(PASTE_END) - 1) :]
            return b""
        cut = end + len(PASTE_END) - len(self._tail)
        _append(out, "app", data[:cut])
        self._app_paste, self._tail = False, b""
        return data[cut:]

    def _continue_paste(self, data: bytes, out: list[Chunk]) -> bytes:
        paste = self._paste
        assert paste is not None
        look_from = max(0, len(paste) - len(PASTE_END) + 1)
        paste += data
        end = paste.find(PASTE_END, look_from)
        if end < 0:
            return b""
        rest = bytes(paste[end + len(PASTE_END) :])
        out.append(("paste", bytes(paste[:end])))
        self._paste = None
        return rest

    def _split(self, data: bytes, out: list[Chunk]) -> None:
        keys = bytearray()
        i, size = 0, len(data)
        while i < size:
            special = _SPECIAL.search(data, i)  # plain text in one go (a long unbracketed paste)
            if special is None:
                keys += data[i:]
                break
            keys += data[i : special.start()]
            i = special.start()
            byte = data[i]
            if byte == FOCUS_OUT_BYTE:
                _append(out, "keys", bytes(keys))
                self.left = True
                self._give_app(data[i:], out)
                return
            if byte == ESC and i + 1 == size:
                self._pending = data[i:]  # ESC [ ... cut by a read, or the Escape key
                break
            if byte != ESC or data[i + 1] != 0x5B:  # not "ESC ["
                keys.append(byte)
                i += 1
                continue
            j = i + 2
            while j < size and 0x30 <= data[j] <= 0x3F:
                j += 1
            while j < size and 0x20 <= data[j] <= 0x2F:
                j += 1
            if j == size:
                if j - i <= MAX_CSI:
                    self._pending = data[i:]  # the rest of the sequence is on its way
                    break
                keys += data[i:j]
                i = j
                continue
            if not 0x40 <= data[j] <= 0x7E:  # not a sequence: typed keys, like the rest
                keys += data[i:j]
                i = j
                continue
            seq = data[i : j + 1]
            i = j + 1
            if seq == X10_MOUSE:  # a host without SGR mouse: three bytes of report follow
                if i + 3 > size:
                    self._pending = data[i - len(seq) :]
                    break
                seq, i = data[i - len(seq) : i + 3], i + 3
                _append(out, "keys", bytes(keys))
                keys.clear()
                _append(out, "app", seq)
            elif seq == PASTE_START:
                _append(out, "keys", bytes(keys))
                keys.clear()
                self._paste = bytearray()
                rest = self._continue_paste(data[i:], out)
                if self._paste is not None:
                    return
                data, i, size = rest, 0, len(rest)
            elif _is_host_report(seq):
                _append(out, "keys", bytes(keys))
                keys.clear()
                _append(out, "app", seq)
                if seq in FOCUS_REPORTS:  # the guest's too, if it asked (mode 1004)
                    out.append(("focus", seq))
            else:
                keys += seq
        _append(out, "keys", bytes(keys))


def _append(out: list[Chunk], destination: Destination, data: bytes) -> None:
    if not data:
        return
    if out and out[-1][0] == destination and destination != "paste":
        out[-1] = (destination, out[-1][1] + data)
    else:
        out.append((destination, data))


class RawInput(Message, bubble=False):
    """Bytes from the host terminal for the terminal widget (posted by the input thread).

    Attributes:
        chunks: ``("keys", bytes)`` typed keys, ``("paste", bytes)`` a paste's text (UTF-8),
            ``("focus", bytes)`` the host window's focus report.
    """

    def __init__(self, chunks: list[Chunk], done: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.chunks = chunks
        self._done = done

    def handled(self) -> None:
        """The terminal has sent what it had to (the driver may send the next keys itself)."""
        done, self._done = self._done, None
        if done is not None:
            done()


class RawInputTarget(Protocol):
    """What the driver gives raw keys to (the terminal widget)."""

    def accepts_raw_input(self) -> bool:
        """True while keys typed now are the guest's (called from the input thread)."""
        ...

    def send_keys_now(self, data: bytes) -> bool:
        """Send typed ``data`` to the guest from the input thread, without waiting for the
        app's loop (busy painting a flood, it would keep the key for a frame); False if these
        keys need the app (the widget's own keys, a scrolled-back view, a mode that changes
        them), which then gets them as a :class:`RawInput`."""
        ...

    def post_message(self, message: Message) -> bool: ...


class VibeboxDriver(LinuxDriver):
    """Textual's Linux driver, with the terminal's keys taken before Textual parses them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Keys in xterm's encoding, which the guest wants, rather than the kitty protocol.
        setattr(constants, "DISABLE_KITTY_KEY", True)  # noqa: B010 (a Final in textual)
        self.host_input = HostInput()
        self.raw_target: RawInputTarget | None = None
        self._left = False  # ctrl+\ was typed: no raw keys until the terminal is focused again
        self._host_modes = (False, False)
        # RawInput messages posted and not yet handled, and to whom: while there are any, keys
        # go the same way, behind them, never past them (send_keys_now).
        self._posted = 0
        self._posted_to: RawInputTarget | None = None
        self._posted_lock = threading.Lock()

    def resume_raw_input(self) -> None:
        """The terminal has the focus (again): keys typed from now on are the guest's."""
        self._left = False

    def mirror_modes(self, app_cursor: bool, app_keypad: bool) -> None:
        """Put the host terminal in the guest's cursor/keypad modes (both False: normal)."""
        modes = (app_cursor, app_keypad)
        if modes == self._host_modes or self._writer_thread is None:
            return
        self._host_modes = modes
        self.write(
            ("\x1b[?1h" if app_cursor else "\x1b[?1l") + ("\x1b=" if app_keypad else "\x1b>")
        )
        self.flush()

    def stop_application_mode(self) -> None:
        self.mirror_modes(False, False)
        super().stop_application_mode()

    def _raw_now(self) -> bool:
        target = self.raw_target
        if target is None or self._left:
            return False
        try:
            return target.accepts_raw_input()
        except Exception:  # the app is shutting down
            return False

    def run_input_thread(self) -> None:
        """Read the host terminal; raw keys to the terminal, the rest to Textual's parser."""
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")(errors="replace").decode
        host = self.host_input
        selector = selectors.DefaultSelector()
        selector.register(self.fileno, selectors.EVENT_READ)

        def dispatch(chunks: list[Chunk]) -> None:
            raw: list[Chunk] = []
            for destination, data in chunks:
                if destination == "app":
                    if raw:
                        self._give_raw(raw)
                        raw = []
                    for event in parser.feed(decode(data)):
                        self.process_message(event)
                else:
                    raw.append((destination, data))
            if raw:
                self._give_raw(raw)
            if host.left:
                host.left = False
                self._left = True

        try:
            while not self.exit_event.is_set():
                ready = selector.select(FLUSH_DELAY if host.pending else 0.1)
                if ready:
                    data = os.read(self.fileno, READ_SIZE)
                    if not data:
                        break
                    dispatch(host.feed(data, self._raw_now()))
                elif host.pending:
                    dispatch(host.flush())
                for event in parser.tick():
                    self.process_message(event)
        finally:
            selector.close()

    def _give_raw(self, chunks: list[Chunk]) -> None:
        """Typed keys straight to the guest when the terminal can take them so, the rest (and
        anything behind a message not yet handled) as a :class:`RawInput` message."""
        target = self.raw_target
        if target is None:
            return
        with self._posted_lock:
            if self._posted_to is not target:
                self._posted_to, self._posted = target, 0
            if (
                not self._posted
                and all(destination == "keys" for destination, _ in chunks)
                and target.send_keys_now(b"".join(data for _, data in chunks))
            ):
                return
            self._posted += 1
        target.post_message(RawInput(chunks, done=lambda: self._handled(target)))

    def _handled(self, target: RawInputTarget) -> None:
        with self._posted_lock:
            if self._posted_to is target and self._posted:
                self._posted -= 1


def dashboard_driver(default: type[Driver]) -> type[Driver]:
    """The driver the dashboard runs on: ours in place of Textual's Linux driver."""
    return VibeboxDriver if default is LinuxDriver else default
