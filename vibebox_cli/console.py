"""What every command prints and asks: progress lines, error lines, the y/N question.

Messages, progress details and prompts embed paths, names and guest output, so each one is
printed escaped (:mod:`vibebox_core.sanitize`): no control character or escape sequence
reaches the terminal raw. Progress and errors go to stderr, so a command's own output on
stdout stays exactly its own.
"""

from __future__ import annotations

import sys

from vibebox_core.errors import VibeboxError
from vibebox_core.progress import ProgressCallback, ProgressEvent
from vibebox_core.sanitize import clean, clean_lines

#: Characters of one output line a progress line shows (the log keeps it whole).
OUTPUT_LINE_LIMIT = 300


def print_error(error: VibeboxError) -> None:
    """Print a VibeboxError the way every command does: message, then the hint (escaped)."""
    message = "\n  ".join(clean_lines(error.message, limit=None))
    print(f"vibebox: error: {message}", file=sys.stderr)
    if error.hint:
        hint = "\n  ".join(clean_lines(error.hint, limit=None))
        print(f"hint: {hint}", file=sys.stderr)


def print_progress(event: ProgressEvent, *, mark_done: bool = False) -> None:
    """One progress line on stderr: ``[  12.3s] step: detail``.

    Args:
        event: the step to print.
        mark_done: end the last event of a step that has no detail with `` ✓`` (the image
            builder's steps).
    """
    if event.output:
        # A program's output under its step (provisioning): the guest chose it, so escaped.
        for line in event.output:
            print(f"          │ {clean(line, OUTPUT_LINE_LIMIT)}", file=sys.stderr)
        sys.stderr.flush()
        return
    detail = f": {clean(event.detail)}" if event.detail else ""
    mark = " ✓" if mark_done and event.done and not event.detail else ""
    mark = " ✗" if event.failed else mark
    print(f"[{event.elapsed:6.1f}s] {clean(event.step)}{detail}{mark}", file=sys.stderr, flush=True)


def print_notice(text: str) -> None:
    """A line worth knowing that is not an error (a failed provisioning step), on stderr."""
    print(f"vibebox: {clean(text, None)}", file=sys.stderr, flush=True)


def progress_on_terminal() -> ProgressCallback | None:
    """:func:`print_progress` when stderr is a terminal, else None (no progress lines)."""
    return print_progress if sys.stderr.isatty() else None


def ask_yes_no(prompt: str) -> bool:
    """Ask ``prompt`` (which ends in ``[y/N] ``); True only for y or yes. End of input is no."""
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
