"""The key table end to end: tmux types each key into the real dashboard, a real guest reads it.

tmux plays the host terminal: ``send-keys -H`` sends the bytes an xterm sends for the key (or,
where those depend on the guest's modes, tmux's own key names, which tmux encodes for the modes
the dashboard mirrored onto its pane). In the guest, ``key_reader.py`` sets the modes of the
key's group, reads in raw mode and writes the bytes of every key, which the test compares with
the table (``tests/data/keytable.py``). Keys follow each other as fast as tmux sends them.

``test_key_table_on_a_local_pty`` does the same with a terminal on a local PTY (no VM, a few
seconds); ``test_keys_on_a_real_guest`` through ``vibebox`` itself, then a fast ``<Esc>:wq`` in
the guest's vi, then ``:explain`` and ``:exit`` typed at once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from data.keytable import GROUPS, KEY_TABLE, KeyCase
from e2e.dashboard_tmux import (
    BOOT_TIMEOUT,
    PROMPT,
    Tmux,
    dashboard_command,
    dashboard_env,
    wait_for_file,
)
from e2e.livesession import REPO, delete_session, session_id_of

from vibebox_core.config.load import load_config
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.e2e

READER = Path(__file__).with_name("key_reader.py")
LOCAL_TERMINAL = Path(__file__).with_name("local_terminal.py")
SEPARATOR, END = "§", "¤"
# What each group's reader undoes when it ends.
RESETS = {
    "normal": "",
    "app_cursor": "\x1b[?1l",
    "app_keypad": "\x1b[?1l\x1b>",
    "bracketed_paste": "\x1b[?2004l",
    "alt_screen": "\x1b[?1049l",
    "lnm": "\x1b[20l",
}
GROUP_TIMEOUT = 120.0
STEP_TIMEOUT = 90.0  # a TCG guest on a loaded machine; each wait ends as soon as it holds


def _send(tmux: Tmux, case: KeyCase) -> None:
    if case.tmux is not None:
        tmux.keys(*case.tmux)
    else:
        tmux.run("send-keys", "-t", "main", "-H", *(f"{b:02x}" for b in case.host_bytes))
    tmux.type(SEPARATOR)


def _showing(text: str) -> Callable[[str], bool]:
    """A screen check: ``text`` is on the screen."""
    return lambda screen: text in screen


def _wait_file_lines(path: Path, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            lines = []
        if len(lines) >= count:
            return lines
        time.sleep(0.2)
    return lines


# The reader's command line: (output file, setup hex, reset hex, tag) -> shell command.
ReaderCommand = Callable[[str, str, str, str], str]


def run_key_table(tmux: Tmux, reader_command: ReaderCommand, outputs: Path) -> None:
    """Type every e2e key of the table; fail with every key the guest read differently."""
    failures: list[str] = []
    passed = 0
    for group, setup in GROUPS.items():
        cases = [c for c in KEY_TABLE if c.group == group and c.e2e]
        tag = f"keys-{group}-{os.getpid()}"
        out = outputs / f"{tag}.txt"
        tmux.type(
            reader_command(f"{tag}.txt", setup.encode().hex(), RESETS[group].encode().hex(), tag)
        )
        tmux.keys("Enter")
        tmux.wait_screen(_showing(f"READY {tag}"), STEP_TIMEOUT, f"the reader ({group})")
        for case in cases:
            _send(tmux, case)
        tmux.type(END)
        lines = _wait_file_lines(out, len(cases), GROUP_TIMEOUT)
        tmux.wait_screen(_showing(f"DONE {tag}"), STEP_TIMEOUT, f"the reader's end ({group})")
        if len(lines) != len(cases):
            failures.append(f"{group}: {len(lines)} keys read for {len(cases)} typed")
        for index, case in enumerate(cases):
            got = bytes.fromhex(lines[index]) if index < len(lines) else None
            if got == case.guest:
                passed += 1
            else:
                failures.append(f"{group}: {case.name}: expected {case.guest!r}, read {got!r}")
    print(f"key table end to end: {passed} of {passed + len(failures)} key events passed")
    assert not failures, "\n".join(failures)


def _command(python: str, reader: str, out: str, setup: str, reset: str, tag: str) -> str:
    # An empty hex argument must stay an argument.
    return f"{python} {reader} {out} '{setup}' '{reset}' {tag}"


# -- a terminal on a local PTY (fast) ------------------------------------------------------------


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux(f"vbx-keys-e2e-{os.getpid()}", cols=120, rows=30)
    yield server
    server.kill()


def test_key_table_on_a_local_pty(tmux: Tmux, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is not installed (run .ci/setup)")
        pytest.skip("tmux is not installed")
    app = shlex.join([sys.executable, str(LOCAL_TERMINAL), "bash", "--norc", "--noprofile"])
    tmux.start(f"env -u COLUMNS -u LINES TERM=xterm-256color PYTHONPATH={REPO} {app}", tmp_path)
    tmux.wait_screen(lambda s: "$" in s or "#" in s, 20, "the local shell")
    python = shlex.quote(sys.executable)
    reader = shlex.quote(str(READER))
    run_key_table(
        tmux,
        lambda out, setup, reset, tag: _command(
            python, reader, shlex.quote(str(tmp_path / out)), setup, reset, tag
        ),
        tmp_path,
    )


# -- the real dashboard on a real guest ----------------------------------------------------------


def test_keys_on_a_real_guest(
    e2e_home: Path, e2e_project: Path, tmux: Tmux, tmp_path: Path
) -> None:
    project = ProjectPaths.for_directory(e2e_project)
    load_config(project)
    (e2e_project / "key_reader.py").write_text(READER.read_text())
    os.chown(e2e_project, 1000, 1000)  # the guest user writes its records here
    for path in e2e_project.rglob("*"):
        os.lchown(path, 1000, 1000)
    status_file = tmp_path / "status"
    tmux.start(dashboard_command(dashboard_env(), status_file), e2e_project)
    try:
        tmux.wait_screen(lambda s: PROMPT.search(s), BOOT_TIMEOUT, "the guest prompt")
        run_key_table(
            tmux,
            lambda out, setup, reset, tag: _command(
                "python3", "key_reader.py", out, setup, reset, tag
            ),
            e2e_project,
        )

        # A fast <Esc>:wq in vi writes the file (the Escape right before ':' is not lost).
        tmux.type("clear; vi notes.txt")
        tmux.keys("Enter")
        tmux.wait_screen(lambda s: "notes.txt" in s, STEP_TIMEOUT, "vi")
        tmux.type("ihello from vi")
        tmux.run("send-keys", "-t", "main", "-H", *(f"{b:02x}" for b in b"\x1b:wq\r"))
        notes = e2e_project / "notes.txt"
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline and not notes.exists():
            time.sleep(0.2)
        assert notes.exists(), tmux.screen()
        assert notes.read_text() == "hello from vi\n"
        # vi has left (its screen, showing the text, is gone) and the prompt is back.
        tmux.wait_screen(
            lambda s: "hello from vi" not in s and PROMPT.search(s),
            STEP_TIMEOUT,
            "the prompt after vi",
        )

        # :explain then :exit, typed at once: the inspector opens and the keys stay the guest's.
        tmux.type(":explain\r:exit\r")
        wait_for_file(status_file, STEP_TIMEOUT)
        assert status_file.exists(), tmux.screen()
        assert status_file.read_text().strip() == "0", tmux.screen()
    finally:
        tmux.kill()
        if project.session_id.exists():
            delete_session(session_id_of(e2e_project))
