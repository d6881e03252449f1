"""Lint, format and strict typing over the three packages and the tests, run with the suite.

The tests are typed like the code; pyproject.toml's ``[tool.mypy]`` makes tests/ their import
root (``mypy_path``, ``explicit_package_bases``), as it is at run time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ["vibebox_core", "vibebox_tui", "vibebox_cli", "tests"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *CHECKED],
        ["ruff", "format", "--check", *CHECKED],
        ["mypy", "--strict", *CHECKED],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
