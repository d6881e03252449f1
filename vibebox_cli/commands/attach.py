"""Plain ``vibebox``: open the dashboard attached to the current directory's session.

Textual is imported only inside :func:`run`, so the rest of the CLI starts fast and works
without a terminal UI. :func:`run` starts attaching to the session *before* it imports Textual,
so the SSH connect overlaps the UI's start-up. ``vibebox attach [DIR]`` does the same for
another directory; ``--demo`` runs the dashboard on the in-memory fake backend (no VM).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``vibebox attach``."""
    parser = subparsers.add_parser(
        "attach",
        help="open the dashboard attached to a project's session (what plain `vibebox` does)",
        description="Open the dashboard attached to DIR's session, starting it if needed.",
    )
    parser.add_argument("directory", nargs="?", help="project directory (default: current)")
    parser.add_argument(
        "--browse", action="store_true", help="only show the session list, attach to nothing"
    )
    parser.add_argument("--demo", action="store_true", help="run on a fake backend (no VM)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the dashboard; returns the exit status (non-zero only for a fatal start-up error)."""
    directory = getattr(args, "directory", None)
    project = Path(directory or os.getcwd()).expanduser().absolute()
    if getattr(args, "browse", False):
        project_or_none: Path | None = None
    else:
        project_or_none = project
    # The dashboard's modules are imported here, not at the top: every other command (and
    # `vibebox --help`) imports this module, and must start without loading Textual.
    if getattr(args, "demo", False):
        from vibebox_tui.backend.demo import demo_sessions
        from vibebox_tui.backend.fake import FakeBackend

        sessions = demo_sessions()
        backend: Any = FakeBackend(
            sessions, project=sessions[0].directory if project_or_none else None
        )
    else:
        from vibebox_tui.backend.core import CoreBackend
        from vibebox_tui.layout import terminal_area

        backend = CoreBackend(project_or_none)
        # Connect while Textual loads: the PTY opens at the size the terminal area will have.
        size = shutil.get_terminal_size()
        backend.prestart(*terminal_area(size.columns, size.lines))
    # Textual itself, last: the session's SSH connect (prestart) overlaps its import.
    from vibebox_tui.app import VibeboxApp

    app = VibeboxApp(backend)
    # What start-up made (every module's functions, classes and tables: most of the heap)
    # lives as long as the process: kept out of the cycle collector's full passes, which a
    # flood's turnover of lines and strips triggers every few seconds and which walked all of
    # it each time (tens of milliseconds, in the middle of the flood).
    gc.freeze()
    app.run()
    return app.return_code or 0
