"""How a session state looks: one symbol and one colour each, shared by every widget."""

from __future__ import annotations

_STYLES: dict[str, tuple[str, str]] = {
    "running": ("●", "green"),
    "starting": ("◐", "yellow"),
    "stopping": ("◑", "yellow"),
    "shut off": ("○", "bright_black"),
    "missing": ("○", "bright_black"),
    "broken": ("✖", "red"),
}


def state_symbol(state: str | None) -> str:
    return _STYLES.get(state or "", ("?", "magenta"))[0]


def state_style(state: str | None) -> str:
    return _STYLES.get(state or "", ("?", "magenta"))[1]
