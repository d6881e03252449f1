"""A live session seen from an e2e test: the host CLI in a subprocess (run, started, or deleting
what a test left), a raw attachment that keeps the VM up between tests, the domain's state as
libvirt reports it.

Shared by the modules that boot one session for many tests (test_sessions_e2e.py,
test_hostile_shares.py, test_hostile_config.py, test_faults.py, test_doctor_e2e.py) and the
dashboard tests' teardown.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from vibebox_core import paths

REPO = Path(__file__).resolve().parents[2]
URI = "qemu:///system"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a host ``vibebox`` subprocess: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    """The command line of the host ``vibebox`` with ``args``."""
    return [sys.executable, "-m", "vibebox_cli.main", *args]


def run_cli(
    cwd: Path, *args: str, timeout: float, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the host ``vibebox`` in ``cwd``; its stdin is ``input``, or empty (a question to the
    user reads end of file), its output captured."""
    return subprocess.run(
        cli(*args),
        cwd=cwd,
        env=cli_env(),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start the host ``vibebox`` in ``cwd`` without waiting (empty stdin, output piped)."""
    return subprocess.Popen(
        cli(*args),
        cwd=cwd,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def session_id_of(project: Path) -> str:
    """The session id a project records in ``.vibebox/session-id``."""
    return (project / paths.PROJECT_CACHE / "session-id").read_text().strip()


def delete_session(session_id: str, *flags: str, timeout: float = 180) -> None:
    """Take a session down with ``vibebox delete --yes``, whatever state a test left it in
    (its output is not checked: the session may be half gone already)."""
    subprocess.run(
        cli("delete", session_id, "--yes", *flags),
        env=cli_env(),
        capture_output=True,
        timeout=timeout,
    )


def domstate(session_id: str) -> str:
    """``virsh domstate`` of the session's domain; ``missing`` when libvirt has none."""
    result = subprocess.run(
        ["virsh", "-c", URI, "domstate", session_id], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else "missing"


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.1) -> float:
    """Wait for ``predicate()``; return the seconds it took (fails the test on timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


@dataclass(kw_only=True)
class HeldSession:
    """A session the test attaches to over its supervisor's socket, as a vibebox would: while
    an attachment is held, the supervisor's grace shutdown does not start."""

    session_id: str = ""
    holders: list[socket.socket] = field(default_factory=list)
    client: ClassVar[str] = "e2e"
    """The client name the supervisor sees for the test's attachments."""

    @property
    def socket_path(self) -> Path:
        return paths.supervisor_socket_path(self.session_id)

    def hold(self) -> None:
        """Attach from the test process (a raw connection, like a vibebox would)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(self.socket_path))
        request = {"op": "attach", "pid": 0, "client": self.client}
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(sock.makefile().readline())
        assert answer["ok"], answer
        self.holders.append(sock)

    def release(self) -> None:
        for sock in self.holders:
            sock.close()
        self.holders.clear()

    def domstate(self) -> str:
        return domstate(self.session_id)
