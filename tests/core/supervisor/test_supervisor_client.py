"""Reaching a supervisor: probe, crash clean-up, recognising its process (supervisor.client)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vibebox_core
from vibebox_core import paths
from vibebox_core.errors import SupervisorError
from vibebox_core.paths import ProjectPaths
from vibebox_core.supervisor import client

SID = "019bf290-eeee-7c23-ba1d-dce7e6d40693"


def test_probe_and_clean_stale(project: ProjectPaths) -> None:
    sock_path = paths.supervisor_socket_path(SID)
    assert client.probe(project, SID) == ("none", None)
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))  # bound, never listening: what a SIGKILL leaves
    dead.close()
    project.supervisor_pid.write_text("999999999\n")
    assert client.probe(project, SID) == ("stale", None)
    client.clean_stale(project, SID)
    assert not sock_path.exists() and not project.supervisor_pid.exists()
    assert client.probe(project, SID) == ("none", None)


def test_a_too_long_socket_path_is_refused() -> None:
    with pytest.raises(SupervisorError, match="too long"):
        client.check_socket_path(Path("/tmp/" + "x" * 120))


@pytest.fixture
def old_layout_supervisor(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line is what an older vibebox's ``spawn`` ran.

    ``python -m vibebox_core.supervisor DIR --session-id SID --uri URI --grace-ms N``, with a
    stand-in ``vibebox_core.supervisor`` package first on ``sys.path`` that only sleeps, so no
    VM is touched.
    """
    fake = tmp_path / "fake" / "vibebox_core" / "supervisor"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    argv = [sys.executable, "-m", client.MODULE, str(tmp_path / "proj"), "--session-id", SID]
    argv += ["--uri", "qemu:///session", "--grace-ms", "1000"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = str(tmp_path / "fake")  # the stand-in, not the real package
    child = subprocess.Popen(argv, cwd=tmp_path / "fake", env=env)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")[:3] != [
            sys.executable.encode(),
            b"-m",
            client.MODULE.encode(),
        ]:
            assert time.monotonic() < deadline, "the stand-in never started"
            time.sleep(0.01)
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_supervisor_started_by_the_old_layout_is_recognised(
    old_layout_supervisor: subprocess.Popen[bytes],
) -> None:
    assert client.MODULE == "vibebox_core.supervisor"
    pid = old_layout_supervisor.pid
    assert client._is_our_supervisor(pid, SID)
    assert client._is_our_supervisor(pid)
    assert not client._is_our_supervisor(pid, "019bf290-ffff-7c23-ba1d-dce7e6d40693")


def test_a_process_that_is_not_a_supervisor_is_not_taken_for_one() -> None:
    assert not client._is_our_supervisor(os.getpid(), SID)  # pytest's own command line
    assert not client._is_our_supervisor(999999999, SID)  # no such process


def test_spawn_runs_the_callers_vibebox_core() -> None:
    assert Path(vibebox_core.__file__).resolve().parents[1] == client.PACKAGE_ROOT
    assert (client.PACKAGE_ROOT / "vibebox_core" / "supervisor" / "__main__.py").is_file()
