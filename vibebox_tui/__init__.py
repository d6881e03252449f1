"""vibebox's dashboard (Textual); all VM logic lives in ``vibebox_core``."""

import os

TEXTUAL_FPS = 240
"""Textual's frame rate (its ``TEXTUAL_FPS``), set here, before Textual is imported, unless the
user set it. Textual paints what was refreshed at its next tick, on a fixed grid of
``1 / TEXTUAL_FPS``: at its default of 60 an echo painted "at once" waited 8 ms on average
(up to 17) for its tick. The terminal paces its own frames
(:mod:`vibebox_tui.terminal.frames`), so the grid only adds delay: at 240 a tick is at most
about 4 ms away."""

os.environ.setdefault("TEXTUAL_FPS", str(TEXTUAL_FPS))
