"""The dashboard in tmux on the real stack: a tmux server of its own, the dashboard's command
line, the guest's prompt, the domain's state as the dashboard tests check it.

Shared by test_dashboard_e2e.py, test_hostile_output.py and test_keys_e2e.py. tmux gets its own
server socket, so the server (and vibebox under it) starts inside the lab namespace too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from e2e.livesession import REPO

BOOT_TIMEOUT = 300.0  # TCG boot is 30-40 s here; room for a loaded machine and an image check
#: The guest's prompt in the terminal (the window title "vibecoder@vibebox: ~/x" differs).
PROMPT = re.compile(r"vibecoder@vibebox:~\S*\$")


class Tmux:
    """One tmux server (own socket) running one window of ``cols`` x ``rows``."""

    def __init__(self, name: str, cols: int = 140, rows: int = 40) -> None:
        self.socket = name
        self.cols, self.rows = cols, rows

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        if out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: str, cwd: Path) -> None:
        self.run(
            "new-session", "-d", "-s", "main", "-x", str(self.cols), "-y", str(self.rows),
            "-c", str(cwd), command,
        )  # fmt: skip
        self.run("set-option", "-t", "main", "remain-on-exit", "on")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "main")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "main", "-l", text)

    def wait_screen(self, check: Callable[[str], object], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)

    def dashboard_pid(self) -> int:
        """The dashboard's process: the window's shell's child that runs ``vibebox_cli``."""
        shell = self.run("display-message", "-p", "-t", "main", "#{pane_pid}").strip()
        for entry in Path("/proc").iterdir():
            try:
                parent = (entry / "stat").read_text().rpartition(")")[2].split()[1]
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if b"vibebox_cli" in cmdline and shell in (parent, entry.name):
                return int(entry.name)
        raise AssertionError(f"no dashboard process under the window's shell {shell}")


def domain_state(session_id: str) -> str:
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "domstate", session_id], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else f"error: {out.stderr.strip()}"


def dashboard_env() -> dict[str, str]:
    """What the dashboard under tmux needs from the test: this checkout, its VIBEBOX_HOME and
    accel, an xterm-256color terminal."""
    return {
        "PYTHONPATH": str(REPO),
        "VIBEBOX_HOME": os.environ["VIBEBOX_HOME"],
        "VIBEBOX_ACCEL": os.environ.get("VIBEBOX_ACCEL", "tcg"),
        "TERM": "xterm-256color",
    }


def dashboard_command(env: dict[str, str], status_file: Path) -> str:
    """The shell command tmux runs: the dashboard, then its exit status into ``status_file``."""
    names = ("PYTHONPATH", "VIBEBOX_HOME", "VIBEBOX_ACCEL", "TERM")
    exported = " ".join(f"{k}={shlex.quote(env[k])}" for k in names)
    vibebox = shlex.join(
        [sys.executable, "-c", "from vibebox_cli.main import main; raise SystemExit(main())"]
    )
    status = shlex.quote(str(status_file))
    return f"env -u COLUMNS -u LINES {exported} {vibebox}; echo $? > {status}"


def wait_for_file(path: Path, timeout: float) -> None:
    """Wait at most ``timeout`` seconds for ``path`` (the dashboard's exit status, written when
    it ends)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
