"""The dashboard on the real stack: `vibebox` in tmux, a guest prompt, `:explain`, `:exit`.

Runs inside the lab namespace (the fixtures skip or fail otherwise). tmux gets its own server
socket, so the server (and vibebox under it) starts inside the namespace too.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.dashboard_tmux import (
    BOOT_TIMEOUT,
    PROMPT,
    Tmux,
    dashboard_command,
    dashboard_env,
    domain_state,
    wait_for_file,
)
from e2e.livesession import delete_session, session_id_of

from vibebox_core.config.load import load_config
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.e2e

GRACE_MS = 4000


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux(f"vbx-dash-e2e-{os.getpid()}")
    yield server
    server.kill()


def test_dashboard_on_a_real_session(
    e2e_home: Path, e2e_project: Path, tmux: Tmux, tmp_path: Path
) -> None:
    project = ProjectPaths.for_directory(e2e_project)
    load_config(project)  # the defaults, then a short grace so the shutdown is quick to see
    text = project.config.read_text()
    project.config.write_text(
        re.sub(r"auto_shutdown_ms = \d+", f"auto_shutdown_ms = {GRACE_MS}", text)
    )
    status_file = tmp_path / "status"
    # COLUMNS/LINES inherited from the test run would pin the app's size: drop them.
    tmux.start(dashboard_command(dashboard_env(), status_file), e2e_project)
    try:
        # Progress first, then the guest's prompt in the terminal.
        tmux.wait_screen(lambda s: "vibebox" in s and "project" in s, 20, "the first paint")
        tmux.wait_screen(
            lambda s: PROMPT.search(s), BOOT_TIMEOUT, "the guest prompt in the terminal"
        )
        session_id = project.session_id.read_text().strip()
        assert domain_state(session_id) == "running"
        # It made the keys and booted the VM, and its supervisor waited for the guest's SSH:
        # the dashboard holds no SSH connection and loaded no SSH library (asyncssh would have
        # brought cryptography's native module, about 15 MB of its memory with it).
        maps = Path(f"/proc/{tmux.dashboard_pid()}/maps").read_text()
        assert "cryptography" not in maps

        marker = f"dash-e2e-{os.getpid()}"
        tmux.type(f"echo {marker}-$((6*7))")
        tmux.keys("Enter")
        tmux.wait_screen(lambda s: f"{marker}-42" in s, 30, "the echo output")

        tmux.type(":explain")
        tmux.keys("Enter")
        screen = tmux.wait_screen(
            lambda s: "Inspector" in s and "Mounts" in s, 20, "the inspector after :explain"
        )
        flat = re.sub(r"[\s│]+", "", screen)  # the guest path may wrap in the panel
        assert f"/home/vibecoder/{e2e_project.name}".replace("/", "") in flat.replace("/", "")
        assert "rw default" in screen and "running" in screen

        # Live: a saved edit of vibebox.toml shows without a restart.
        text = project.config.read_text()
        project.config.write_text(
            text.replace("entries = []", 'entries = ["live-edit.example"]', 1)
        )
        edited = time.monotonic()
        tmux.wait_screen(lambda s: "live-edit.example" in s, 10, "the edit in the inspector")
        assert time.monotonic() - edited < 3.0

        # The terminal kept the keyboard after :explain: :exit goes straight to the guest.
        tmux.type(":exit")
        tmux.keys("Enter")
        wait_for_file(status_file, 30)
        assert status_file.read_text().strip() == "0", tmux.screen()

        # Nobody is attached any more: the VM shuts off after the grace period.
        deadline = time.monotonic() + GRACE_MS / 1000 + 120
        while domain_state(session_id) != "shut off" and time.monotonic() < deadline:
            time.sleep(1)
        assert domain_state(session_id) == "shut off"
    finally:
        tmux.kill()
        if project.session_id.exists():
            delete_session(session_id_of(e2e_project))


def test_new_recreates_the_session_and_reattaches(
    e2e_home: Path, e2e_project: Path, tmux: Tmux, tmp_path: Path
) -> None:
    project = ProjectPaths.for_directory(e2e_project)
    load_config(project)
    status_file = tmp_path / "status"
    tmux.start(dashboard_command(dashboard_env(), status_file), e2e_project)
    try:
        tmux.wait_screen(lambda s: PROMPT.search(s), BOOT_TIMEOUT, "the guest prompt")
        old_id = project.session_id.read_text().strip()
        (e2e_project / "notes.txt").write_text("mine\n")
        tmux.type(":new")
        tmux.keys("Enter")
        # "Recreate (y)" shows once the dialog takes the answer (it ignores keys typed ahead).
        tmux.wait_screen(lambda s: "Recreate (y)" in s, 20, "the :new confirmation")
        tmux.keys("y")

        def new_prompt(screen: str) -> bool:
            try:
                current = project.session_id.read_text().strip()
            except OSError:
                return False
            return current != old_id and current[:8] in screen and bool(PROMPT.search(screen))

        tmux.wait_screen(new_prompt, BOOT_TIMEOUT, "a fresh session's prompt")
        new_id = project.session_id.read_text().strip()
        assert domain_state(old_id).startswith("error")  # the old domain is gone
        assert domain_state(new_id) == "running"
        # The project's files stay.
        assert (e2e_project / "notes.txt").read_text() == "mine\n" and project.config.exists()

        tmux.type(":exit")
        tmux.keys("Enter")
        wait_for_file(status_file, 30)
        assert status_file.read_text().strip() == "0", tmux.screen()
    finally:
        tmux.kill()
        if project.session_id.exists():
            delete_session(session_id_of(e2e_project))
