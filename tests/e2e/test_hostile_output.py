"""A hostile guest (root) against the host's terminals: the real dashboard in tmux, the CLI.

What the guest prints, names and plants must never act on the host or hide from the user:
``cat`` of a file holding the vibebox command sequence (OSC 7777) fires nothing, a window
title with markup and controls shows escaped in the header, a DNS name with escape bytes shows
escaped in ``vibebox explain``, ``vibebox shell`` ignores a hostile ``~/.ssh/config``, and
``:new`` with a typed-ahead ``y`` deletes nothing. After every attempt the same session still
answers at its prompt.

One booted VM for the module: the dashboard runs in tmux (own server socket, so it starts inside
the lab namespace) for all tests, in file order, and the session is deleted at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.dashboard_tmux import (
    BOOT_TIMEOUT,
    PROMPT,
    Tmux,
    dashboard_command,
    domain_state,
    wait_for_file,
)
from e2e.livesession import REPO, delete_session, session_id_of

from vibebox_core.config.load import load_config
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.e2e

#: The sequences a planted file holds: the shell's own format, with no, an empty and a guessed
#: token, and the old unsigned form.
PLANTED = (
    b"\x1b]7777;vibebox-command=new\x07"
    b"\x1b]7777;vibebox-command=exit\x07"
    b"\x1b]7777;vibebox-command=new;\x07"
    b"\x1b]7777;vibebox-command=exit;00000000000000000000000000000000\x07"
    b"\x1b]7777;vibebox-command=help;ffffffffffffffffffffffffffffffff\x1b\\"
)


@dataclass
class Dashboard:
    """The real dashboard on one session, driven through tmux."""

    tmux: Tmux
    project: Path
    session_id: str
    status_file: Path
    env: dict[str, str]
    checks: int = 0

    def vibebox(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vibebox_cli.main", *args],
            cwd=self.project,
            env=env or self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=BOOT_TIMEOUT,
        )

    def guest_root(self, script: str) -> str:
        """Run ``script`` as root in the guest (``vibebox exec -- sudo sh -c``)."""
        out = self.vibebox("exec", "--", "sudo", "sh", "-c", script)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def run_at_prompt(self, line: str) -> None:
        self.tmux.type(line)
        self.tmux.keys("Enter")

    def assert_still_works(self) -> None:
        """Same session, dashboard still open, the guest shell still answers at its prompt."""
        self.checks += 1
        tag = f"alive-{os.getpid()}-{self.checks}"
        self.run_at_prompt(f"echo {tag}-$((6*7))")
        self.tmux.wait_screen(lambda s: f"{tag}-42" in s, 60, "the shell to answer")
        assert not self.status_file.exists(), "the dashboard exited"
        current = ProjectPaths.for_directory(self.project).session_id.read_text().strip()
        assert current == self.session_id, "the session was replaced"
        # (retried: another test of the lab may be restarting libvirtd right now)
        deadline = time.monotonic() + 60
        while (state := domain_state(self.session_id)) != "running":
            assert state.startswith("error") and time.monotonic() < deadline, state
            time.sleep(1)


@pytest.fixture(scope="module")
def dash(e2e_home_shared: Path) -> Iterator[Dashboard]:
    project = Path(tempfile.mkdtemp(prefix="vbx-hostile-", dir="/tmp"))
    project.chmod(0o755)
    load_config(ProjectPaths.for_directory(project))  # the defaults: nothing to approve
    status_file = project.parent / f"{project.name}.status"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VIBEBOX_HOME": str(e2e_home_shared),
        "VIBEBOX_ACCEL": os.environ.get("VIBEBOX_ACCEL", "tcg"),
        "TERM": "xterm-256color",
    }
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    tmux = Tmux(f"vbx-hostile-e2e-{os.getpid()}")
    tmux.start(dashboard_command(env, status_file), project)
    try:
        tmux.wait_screen(lambda s: PROMPT.search(s), BOOT_TIMEOUT, "the guest prompt")
        session_id = ProjectPaths.for_directory(project).session_id.read_text().strip()
        yield Dashboard(tmux, project, session_id, status_file, env)
    finally:
        tmux.kill()
        if ProjectPaths.for_directory(project).session_id.exists():
            delete_session(session_id_of(project))
        status_file.unlink(missing_ok=True)


def test_cat_of_planted_vibebox_commands_fires_nothing(dash: Dashboard) -> None:
    # A file a cloned repository ships, and one guest root writes itself.
    (dash.project / "README.evil").write_bytes(b"harmless text\r\n" + PLANTED + b"end\r\n")
    planted = "".join(f"\\{byte:03o}" for byte in PLANTED)
    dash.guest_root(f"printf '{planted}' > /tmp/evil && chmod 644 /tmp/evil")
    dash.run_at_prompt("cat README.evil /tmp/evil; sudo cat /tmp/evil; echo cat-done-$((2*21))")
    screen = dash.tmux.wait_screen(lambda s: "cat-done-42" in s, 60, "the cat to finish")
    time.sleep(1.0)  # a dialog or an exit would follow the output within a frame or two
    screen = dash.tmux.screen()
    assert "Start a fresh session?" not in screen
    assert "vibebox commands" not in screen  # no help dialog either
    assert "vibebox-command" not in screen  # swallowed, not drawn
    dash.assert_still_works()


def test_the_real_help_typed_at_the_prompt_still_works(dash: Dashboard) -> None:
    dash.run_at_prompt(":help")
    dash.tmux.wait_screen(lambda s: "vibebox commands" in s, 30, "the :help dialog")
    dash.tmux.keys("Escape")
    dash.tmux.wait_screen(lambda s: "vibebox commands" not in s, 10, "the dialog to close")
    # The guest's environment does not carry the token the shell signs commands with.
    dash.run_at_prompt("env | grep -c VIBEBOX_COMMAND_TOKEN; echo env-done")
    screen = dash.tmux.wait_screen(lambda s: "env-done" in s.split("echo env-done")[-1], 30, "env")
    shown = [line.split("│")[-1].strip() for line in screen.splitlines()]
    assert shown[shown.index("env-done") - 1] == "0", screen
    dash.assert_still_works()


def test_a_guest_window_title_shows_escaped_in_the_header(dash: Dashboard) -> None:
    # OSC 2 with markup, a carriage return, backspaces and a right-to-left override (bash's
    # prompt sets its own title again, so the title is held by a sleep).
    dash.run_at_prompt(r"printf '\033]2;[bold red]T1TLE[/] \r\b\b\342\200\256gnp\007'; sleep 15")
    header = dash.tmux.wait_screen(
        lambda s: "T1TLE" in s.splitlines()[0], 30, "the title in the header"
    ).splitlines()[0]
    assert "[bold red]T1TLE[/] \\r\\x08\\x08\\u202egnp" in header, header
    dash.tmux.keys("C-c")
    dash.assert_still_works()


def test_a_dns_name_with_escape_bytes_shows_escaped_in_explain(dash: Dashboard) -> None:
    label = b"\x1b[2J\x1b[1A\rpypi"
    script = (
        "import socket, struct\n"
        "ns = open('/etc/resolv.conf').read().split('nameserver')[1].split()[0]\n"
        f"labels = [b'hostile', {label!r}, b'example']\n"
        "q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0)\n"
        "q += b''.join(bytes([len(x)]) + x for x in labels) + b'\\x00' + struct.pack('>HH', 1, 1)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.settimeout(10)\n"
        "s.sendto(q, (ns, 53))\n"
        "print('rcode', s.recv(512)[3] & 15)\n"
    )
    out = dash.guest_root(f"python3 -c {shlex.quote(script)}")
    assert "rcode" in out
    escaped = "hostile.\\x1b[2j\\x1b[1a\\rpypi.example"  # the DNS filter lower-cases names
    deadline = time.monotonic() + 30
    result = dash.vibebox("explain")
    while escaped not in result.stdout and time.monotonic() < deadline:
        time.sleep(1)
        result = dash.vibebox("explain")
    assert result.returncode == 0, result.stderr
    assert escaped in result.stdout, result.stdout
    assert "\x1b" not in result.stdout + result.stderr and "\r" not in result.stdout
    dash.assert_still_works()


def test_vibebox_shell_ignores_a_hostile_ssh_config(dash: Dashboard, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    marker = tmp_path / "local-command-ran"
    proxy_marker = tmp_path / "proxy-command-ran"
    (home / ".ssh" / "config").write_text(
        "Host *\n"
        "  ForwardAgent yes\n"
        "  ForwardX11 yes\n"
        "  PermitLocalCommand yes\n"
        f"  LocalCommand touch {marker}\n"
        f"  ProxyCommand sh -c 'touch {proxy_marker}; exec nc %h %p'\n"
        "  RemoteForward 127.0.0.1:9999 127.0.0.1:22\n"
        "  StrictHostKeyChecking no\n"
        "  SetEnv VBX_FROM_USER_CONFIG=1\n"
    )
    agent = subprocess.run(
        ["ssh-agent", "-a", str(tmp_path / "agent.sock"), "-s"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout)
    assert found is not None, agent.stdout
    agent_pid = int(found.group(1))
    try:
        env = {**dash.env, "HOME": str(home), "SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
        result = dash.vibebox(
            "shell",
            env=env,
            stdin="echo SOCK=${SSH_AUTH_SOCK-unset} DISPLAY=${DISPLAY-unset} "
            "USERCFG=${VBX_FROM_USER_CONFIG-unset}\n"
            "ss -Htln | grep -c ':9999 ' ; echo listen-done\nexit\n",
        )
    finally:
        os.kill(agent_pid, 15)
    assert result.returncode == 0, result.stderr
    assert "SOCK=unset DISPLAY=unset USERCFG=unset" in result.stdout, result.stdout
    assert re.search(r"^0\s*\nlisten-done", result.stdout, re.MULTILINE), result.stdout
    assert not marker.exists() and not proxy_marker.exists()
    dash.assert_still_works()


def test_new_with_a_typed_ahead_y_does_not_delete(dash: Dashboard) -> None:
    # `:new`, Enter and `y` in one burst, as a paste or a fast typist would send them.
    dash.tmux.keys(":new", "Enter", "y")
    dash.tmux.wait_screen(lambda s: "Start a fresh session?" in s, 30, "the :new confirmation")
    time.sleep(2.0)  # well past the guard: a y that reached the dialog would have answered
    screen = dash.tmux.screen()
    assert "Start a fresh session?" in screen, screen
    assert ProjectPaths.for_directory(dash.project).session_id.read_text().strip() == (
        dash.session_id
    )
    dash.tmux.keys("Escape")
    dash.tmux.wait_screen(lambda s: "Start a fresh session?" not in s, 10, "the dialog to close")
    dash.tmux.keys("C-u")  # the y went to the guest's prompt: drop it
    dash.assert_still_works()


def test_commands_through_the_supervisor_relay_need_the_token_too(
    dash: Dashboard, tmp_path: Path
) -> None:
    # A second dashboard on the running session gets its shell from the supervisor (the relay
    # path); the first one booted the VM and holds its own SSH PTY (the direct path).
    status_file = tmp_path / "second.status"
    second = Tmux(f"vbx-hostile-e2e2-{os.getpid()}")
    second.start(dashboard_command(dash.env, status_file), dash.project)
    try:
        second.wait_screen(lambda s: PROMPT.search(s), 120, "the second dashboard's prompt")
        second.type("cat README.evil; echo relay-cat-$((3*14))")
        second.keys("Enter")
        second.wait_screen(lambda s: "relay-cat-42" in s, 60, "the cat in the second dashboard")
        time.sleep(1.0)  # a dialog or an exit would follow within a frame or two
        screen = second.screen()
        assert "Start a fresh session?" not in screen and "vibebox commands" not in screen
        assert not status_file.exists()
        second.type(":help")  # the relayed shell signs with the token its client made
        second.keys("Enter")
        second.wait_screen(lambda s: "vibebox commands" in s, 30, ":help via the relay")
        second.keys("Escape")
        second.wait_screen(lambda s: "vibebox commands" not in s, 10, "the dialog to close")
        second.type(":exit")
        second.keys("Enter")
        wait_for_file(status_file, 30)
        assert status_file.read_text().strip() == "0", second.screen()
    finally:
        second.kill()
    dash.assert_still_works()  # the first dashboard (and the VM) stayed


def test_the_ssh_config_block_works_with_plain_openssh_and_a_hostile_home(
    dash: Dashboard, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    marker = tmp_path / "proxy-command-ran"
    (home / ".ssh" / "config").write_text(
        f"Host *\n  ForwardAgent yes\n  ProxyCommand sh -c 'touch {marker}; exit 1'\n"
    )
    block = dash.vibebox("ssh-config")
    assert block.returncode == 0, block.stderr
    config = tmp_path / "config"
    config.write_text(block.stdout)
    alias = block.stdout.split()[1]
    result = subprocess.run(
        ["ssh", "-F", str(config), alias, "echo SOCK=${SSH_AUTH_SOCK-unset}; id -un"],
        env={**dash.env, "HOME": str(home), "SSH_AUTH_SOCK": str(tmp_path / "agent.sock")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SOCK=unset", "vibecoder"]
    assert not marker.exists()
    dash.assert_still_works()
