"""Helpers for the CLI tests: run ``vibebox`` as a user would, check what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Only the local qemu:///system|session are accepted (and the host uses the approved URI, not
# the file's); these sessions have no VM, so every one is "shut off".
TEST_CONFIG = '[box]\nlibvirt_uri = "qemu:///system"\n'


#: A directory name a cloned repository could carry: erase the screen, set the title, move
#: the cursor back over the line, reverse the text that follows.
HOSTILE_DIR = "proj\x1b[2J\x1b]0;owned\x07\r\u202eevil"


def vibebox(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "vibebox_cli.main", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert lines[0].startswith("vibebox: error: ")
    assert lines[-1].startswith("hint: ")
    for fragment in fragments:
        assert fragment in result.stderr


def assert_no_raw_controls(*outputs: str) -> None:
    for out in outputs:
        raw = [ch for ch in out if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F]
        raw += [ch for ch in out if ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2069"]
        assert not raw, f"raw characters printed: {raw!r} in {out!r}"
