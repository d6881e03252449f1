"""Lint, format and strict typing over both packages (everyone's code), run with the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["vibebox_core", "vibebox_tui", "vibebox_cli"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *PACKAGES],
        ["ruff", "format", "--check", *PACKAGES],
        ["mypy", "--strict", *PACKAGES],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
