"""Finding the line of a table, key or array item in ``vibebox.toml``, for error messages.

Every refusal names the file and, where it can be found, the line (``vibebox.toml, line 7:
box.cpus: ...``), so the user goes straight to it.
"""

from __future__ import annotations

import re
from pathlib import Path

from vibebox_core.errors import ConfigError


class FileLines:
    """The lines of ``vibebox.toml``, to point an error message at the value it is about."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None = None) -> int | None:
        """Find the line of ``[table]`` or of ``key = ...`` inside it (1-based)."""
        current: str | None = None
        header = re.compile(r"^\s*\[\s*([A-Za-z0-9_\-\"']+)\s*\]")
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        dotted = re.compile(rf"^\s*{re.escape(table)}\s*\.\s*{re.escape(key or '')}\s*=")
        for number, line in enumerate(self.lines, start=1):
            match = header.match(line)
            if match:
                current = match.group(1).strip("\"'")
                if key is None and current == table:
                    return number
                continue
            if key is None:
                continue
            if current == table and key_re is not None and key_re.match(line):
                return number
            if current is None and dotted.match(line):
                return number
        return None

    def line_of_item(self, table: str, key: str, needle: str) -> int | None:
        """Find the line, at or after ``key``, that holds the array element ``needle``."""
        start = self.line_of(table, key)
        if start is None:
            return None
        for number in range(start, len(self.lines) + 1):
            if needle in self.lines[number - 1]:
                return number
        return start

    def error(
        self,
        table: str,
        key: str | None,
        problem: str,
        *,
        hint: str = "",
        line: int | None = None,
    ) -> ConfigError:
        where = f"[{table}]" if key is None else f"{table}.{key}"
        if line is None:
            line = self.line_of(table, key)
        at = f", line {line}" if line else ""
        if not hint:
            hint = f"fix {where} in {self.path.name}; the README's Configuration section lists "
            hint += "every key with an example"
        return ConfigError(f"{self.path}{at}: {where}: {problem}", hint=hint)


def at_line(line: int | None) -> str:
    """``", line N"`` for an error message, or nothing when the line is not known."""
    return f", line {line}" if line else ""


def top_level_line(lines: FileLines, key: str) -> int | None:
    """The line of a top-level ``key = ...`` (before the first table), if there is one."""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[=.]")
    for number, line in enumerate(lines.lines, start=1):
        if line.lstrip().startswith("["):
            return None
        if pattern.match(line):
            return number
    return None


def duplicate_line(text: str, key: str) -> int | None:
    """The line where ``key`` is given the second time (a key or a table header)."""
    name = re.escape(key)
    pattern = re.compile(rf"(^|[{{,.\s\[])[\"']?{name}[\"']?\s*(=|\])", re.MULTILINE)
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0]
        hits = len(pattern.findall(stripped))
        if hits and seen + hits >= 2:
            return number
        seen += hits
    return None
