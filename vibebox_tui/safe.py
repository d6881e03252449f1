"""Guest-derived strings for widgets: escaped by :mod:`vibebox_core.sanitize`, never markup.

Every widget that shows a string the guest or the project file chose (a title, a path, a host
name, a diff line, a console line, an error that embeds one) goes through one of these. They
return :class:`rich.text.Text` or a plain string for a widget or notification made with
``markup=False``. Guest text is never put into markup: Textual's markup cannot be escaped
reliably (``textual.markup.escape`` leaves ``[$variable]`` and ``[ b]`` tags working).
"""

from __future__ import annotations

from rich.text import Text

from vibebox_core.sanitize import DEFAULT_LIMIT, clean, clean_lines

__all__ = ["clean", "guest_lines", "guest_text"]


def guest_text(value: object, style: str = "", *, limit: int | None = DEFAULT_LIMIT) -> Text:
    """One line of guest text as :class:`~rich.text.Text` (controls escaped, no markup)."""
    return Text(clean(value, limit), style=style)


def guest_lines(value: object, *, limit: int | None = DEFAULT_LIMIT, lines: int = 200) -> str:
    """Multi-line guest text: each line escaped, line breaks kept (a lone ``\\r`` shown)."""
    return "\n".join(clean_lines(value, limit=limit, lines=lines))
