"""The dashboard's geometry, without importing Textual.

``vibebox`` starts connecting to the guest before Textual is even imported, and opens the PTY
at the size the terminal area will have, so the shell's first prompt is drawn for the right
width. These numbers are the ones ``app.tcss`` uses (a Pilot test checks they agree).
"""

from __future__ import annotations

#: (minimum screen width, breakpoint class, session browser width), widest first.
BREAKPOINTS: tuple[tuple[int, str, int], ...] = (
    (110, "-wide", 36),
    (90, "-narrow", 32),
    (0, "-tiny", 26),
)
#: Rows taken by the header and the footer.
CHROME_ROWS = 2


def browser_width(screen_cols: int) -> int:
    """Width of the session browser on a screen ``screen_cols`` wide."""
    return next(width for least, _, width in BREAKPOINTS if screen_cols >= least)


def terminal_area(screen_cols: int, screen_rows: int) -> tuple[int, int]:
    """Columns and rows of the terminal widget on a screen of that size (inspector hidden)."""
    return (
        max(20, screen_cols - browser_width(screen_cols)),
        max(5, screen_rows - CHROME_ROWS),
    )
