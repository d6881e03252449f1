"""Mouse reports for programs that asked for them (xterm modes 9, 1000, 1002, 1003, 1006).

When a program enables mouse tracking (vim ``set mouse=a``, htop, ``less --mouse``), clicks,
drags and the wheel over the terminal are sent to it in xterm's encoding instead of being
used by the widget: SGR form ``CSI < b ; x ; y M/m`` when mode 1006 is on, otherwise the
legacy ``CSI M b x y`` bytes (coordinates past 223 cannot be encoded there and are dropped).
"""

from __future__ import annotations

from typing import Literal, Protocol

X10, NORMAL, BUTTON_MOTION, ANY_MOTION, SGR = 9, 1000, 1002, 1003, 1006
TRACKING = frozenset({X10, NORMAL, BUTTON_MOTION, ANY_MOTION})

MouseKind = Literal["press", "release", "motion", "wheel_up", "wheel_down"]

# Textual numbers buttons 1 (left), 2 (middle), 3 (right); xterm 0, 1, 2.
_XTERM_BUTTON = {1: 0, 2: 1, 3: 2}


def tracking(modes: set[int]) -> bool:
    """Does the program want mouse events at all?"""
    return not TRACKING.isdisjoint(modes)


def encode_mouse(
    modes: set[int],
    kind: MouseKind,
    button: int,
    x: int,
    y: int,
    *,
    shift: bool = False,
    meta: bool = False,
    ctrl: bool = False,
) -> bytes:
    """The report for one mouse event, or ``b""`` when the active modes do not ask for it.

    Args:
        modes: the mouse modes the program set.
        kind: what happened.
        button: Textual's button number (0 = none, 1 left, 2 middle, 3 right).
        x: 0-based column.
        y: 0-based row.
    """
    if not tracking(modes) or x < 0 or y < 0:
        return b""
    if kind == "motion" and ANY_MOTION not in modes and not (BUTTON_MOTION in modes and button):
        return b""
    if X10 in modes and not modes & {NORMAL, BUTTON_MOTION, ANY_MOTION} and kind != "press":
        return b""
    if kind == "wheel_up":
        code = 64
    elif kind == "wheel_down":
        code = 65
    else:
        code = _XTERM_BUTTON.get(button, 3)
        if kind == "motion":
            code += 32
    if X10 not in modes or modes & {NORMAL, BUTTON_MOTION, ANY_MOTION}:
        code += (4 if shift else 0) + (8 if meta else 0) + (16 if ctrl else 0)
    if SGR in modes:
        final = "m" if kind == "release" else "M"
        return f"\x1b[<{code};{x + 1};{y + 1}{final}".encode()
    if kind == "release":
        code = (code & ~3) | 3  # legacy releases do not say which button
    if x + 1 + 32 > 255 or y + 1 + 32 > 255:
        return b""
    return b"\x1b[M" + bytes([32 + code, 32 + x + 1, 32 + y + 1])


class PointerEvent(Protocol):
    """What :class:`MouseState` reads from a Textual mouse event."""

    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...

    button: int
    shift: bool
    meta: bool
    ctrl: bool


class MouseState:
    """Remembers the held button, which Textual does not repeat on motion and release."""

    def __init__(self) -> None:
        self.button = 0

    def report(self, modes: set[int], kind: MouseKind, event: PointerEvent) -> bytes | None:
        """The bytes for ``event``, or None when the program is not tracking the mouse."""
        if not tracking(modes):
            return None
        button = event.button
        if kind == "press":
            self.button = button
        elif kind == "release":
            button, self.button = self.button or button, 0
        elif kind == "motion" and not button:
            button = self.button
        mods = {"shift": event.shift, "meta": event.meta, "ctrl": event.ctrl}
        return encode_mouse(modes, kind, button, event.x, event.y, **mods)
