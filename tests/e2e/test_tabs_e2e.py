"""The dashboard's tabs on the real stack: two tabs are two shells in one VM, and the dashboard
is attached once.

`vibebox` runs in tmux (its own server socket, inside the lab namespace), one VM for the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.dashboard_tmux import (
    BOOT_TIMEOUT,
    PROMPT,
    Tmux,
    dashboard_command,
    dashboard_env,
    wait_for_file,
)
from e2e.livesession import delete_session, run_cli, session_id_of

from vibebox_core.config.load import load_config
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.e2e

#: ``ctrl+\`` as the host terminal sends it: the terminal lets go of the keyboard.
LEAVE_TERMINAL = ("-H", "1c")
#: The tab bar, shown from the second tab on: `` 1  title   2  title ``.
TAB_BAR = re.compile(r" 1  \S.* 2  \S")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux(f"vbx-tabs-e2e-{os.getpid()}")
    yield server
    server.kill()


def attached_count(project: Path, session_id: str) -> int:
    """What `vibebox list --json` says about the session's attached count."""
    listed = run_cli(project, "list", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    row = next(s for s in json.loads(listed.stdout) if s["id"] == session_id)
    return int(row["attached"])


def test_two_tabs_are_two_shells_of_one_vm_attached_once(
    e2e_home: Path, e2e_project: Path, tmux: Tmux, tmp_path: Path
) -> None:
    project = ProjectPaths.for_directory(e2e_project)
    load_config(project)
    status_file = tmp_path / "status"
    tmux.start(dashboard_command(dashboard_env(), status_file), e2e_project)
    mark = f"tabs-e2e-{os.getpid()}"
    try:
        tmux.wait_screen(lambda s: PROMPT.search(s), BOOT_TIMEOUT, "the guest prompt in tab 1")
        session_id = project.session_id.read_text().strip()
        assert attached_count(e2e_project, session_id) == 1

        # Tab 2: ctrl+\ then o. Its own login shell, with the keyboard.
        tmux.keys(*LEAVE_TERMINAL)
        tmux.keys("o")
        tmux.wait_screen(lambda s: TAB_BAR.search(s) and PROMPT.search(s), 60, "tab 2's prompt")
        # Written in tab 2, in the guest's /tmp (not a share: the same VM, not the same host).
        tmux.type(f'tty > /tmp/{mark}.tty; echo "from-tab2-$((6*7))" > /tmp/{mark}')
        tmux.keys("Enter")
        tmux.type(f"echo {mark}-written-$((2*3))")
        tmux.keys("Enter")
        tmux.wait_screen(lambda s: f"{mark}-written-6" in s, 30, "tab 2's echo")

        # One vibebox, two terminals: still attached once.
        assert attached_count(e2e_project, session_id) == 1

        # Back to tab 1 (ctrl+\ then 1): it reads what tab 2 wrote, from another PTY.
        tmux.keys(*LEAVE_TERMINAL)
        tmux.keys("1")
        tmux.wait_screen(lambda s: f"{mark}-written-6" not in s, 20, "tab 1 on screen")
        tmux.type(
            f'cat /tmp/{mark}; [ "$(tty)" != "$(cat /tmp/{mark}.tty)" ] && echo other-pty-$((4*4))'
        )
        tmux.keys("Enter")
        screen = tmux.wait_screen(
            lambda s: "from-tab2-42" in s and "other-pty-16" in s, 30, "tab 2's file in tab 1"
        )
        assert "from-tab2-42" in screen

        # The second tab's shell ends: its tab closes, tab 1 stays and the count stays 1.
        tmux.keys(*LEAVE_TERMINAL)
        tmux.keys("2")
        tmux.wait_screen(lambda s: f"{mark}-written-6" in s, 20, "tab 2 on screen")
        tmux.type("exit")
        tmux.keys("Enter")
        tmux.wait_screen(lambda s: "Tab 2 closed" in s, 30, "tab 2 closing")
        assert attached_count(e2e_project, session_id) == 1

        tmux.type(":exit")
        tmux.keys("Enter")
        wait_for_file(status_file, 30)
        assert status_file.read_text().strip() == "0", tmux.screen()
    finally:
        tmux.kill()
        if project.session_id.exists():
            delete_session(session_id_of(e2e_project))
