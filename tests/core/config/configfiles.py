"""Helpers for the vibebox.toml tests: write a project's vibebox.toml, quote a TOML string."""

from __future__ import annotations

from vibebox_core.paths import ProjectPaths


def write(project: ProjectPaths, text: str) -> None:
    project.config.write_text(text)


def toml_str(text: str) -> str:
    return (
        '"'
        + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
        + '"'
    )
