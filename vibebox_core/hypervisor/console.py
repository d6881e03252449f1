"""The serial console log of a domain, read back as printable text.

virtlogd writes the guest's serial console to ``.vibebox/`` (as root); what the guest printed
there is shown in boot-timeout errors and the dashboard, so escape sequences and control
characters are dropped here.
"""

from __future__ import annotations

import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def read_console_tail(path: Path, max_lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """Return the last ``max_lines`` printable lines of a console log, or ``""``."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = _ANSI.sub("", data.decode("utf-8", "replace").replace("\r\n", "\n"))
    lines = [
        "".join(ch for ch in line if ch.isprintable() or ch == "\t").rstrip()
        for line in text.replace("\r", "\n").split("\n")
    ]
    lines = [line for line in lines if line]
    return "\n".join(lines[-max_lines:])
