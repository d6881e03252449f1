"""Checkpoints on the real stack (libvirt + QEMU under TCG + virtiofs + SSH): a file changed on
the guest's disk after ``vibebox checkpoint save`` is back after ``restore``, in a running and
in a stopped session; the project files on the host are untouched; checkpoints survive
stop/start; a running VM is paused only briefly and runs again after a restore.

Run inside the lab (``ip netns exec vbxlab ... pytest tests/e2e/test_checkpoint_e2e.py``). The
tests share one project and run in file order, each leaving the session as the next expects.
Four cold boots: the first start, the restart by the running restore, and one start after
each of the stopped save and the stopped restore (a stopped session has to be started to
change or read its disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.livesession import HeldSession, delete_session, run_cli

from vibebox_core import paths
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve, boot

pytestmark = pytest.mark.e2e

GRACE_MS = 15000  # the restore's own start detaches at once: time for the test to attach
BOOT = 300  # seconds a cold start may take (TCG on a busy 2-core machine)
MARKER = "~/ckpt-marker"  # on the guest's own disk (the home directory, not the project mount)


@dataclass
class Lab(HeldSession):
    project: ProjectPaths
    host_file: Path
    host_hash: str = ""

    def run(self, *args: str, timeout: float = BOOT) -> subprocess.CompletedProcess[str]:
        result = run_cli(self.project.root, *args, timeout=timeout)
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def guest(self, script: str) -> str:
        return self.ok("exec", "--", "sh", "-c", script)

    def host_untouched(self) -> bool:
        return hashlib.sha256(self.host_file.read_bytes()).hexdigest() == self.host_hash


@pytest.fixture(scope="module")
def lab(e2e_home_shared: Path) -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="vbx-ckpt-", dir="/tmp"))
    root.chmod(0o755)
    (root / paths.PROJECT_CONFIG).write_text(
        f"[box]\ncpus = 1\nmemory_mb = 1024\n[supervisor]\nauto_shutdown_ms = {GRACE_MS}\n"
    )
    host_file = root / "main.py"
    host_file.write_bytes(b"print('a project file on the host')\n" * 100)
    if os.getuid() == 0:
        for path in (root, host_file):
            os.chown(path, *boot.guest_ids())  # as a real user's project belongs to them
    state = Lab(ProjectPaths.for_directory(root), host_file)
    state.host_hash = hashlib.sha256(host_file.read_bytes()).hexdigest()
    approve.approve(state.project)
    yield state
    state.release()
    if state.session_id and state.project.cache.exists():
        delete_session(state.session_id)
    shutil.rmtree(root, ignore_errors=True)


def test_save_of_a_running_session_pauses_it_briefly(lab: Lab) -> None:
    assert lab.guest(f"echo one > {MARKER}; echo at-save > notes.txt; cat {MARKER}") == "one\n"
    lab.session_id = lab.project.session_id.read_text().strip()
    lab.hold()  # keep the VM up between the commands
    saved = lab.ok("checkpoint", "save", "first").strip()
    match = re.fullmatch(r"saved checkpoint first \(the VM was paused (\d+\.\d+) s\)", saved)
    assert match, saved
    assert float(match.group(1)) < 2.0
    assert lab.domstate() == "running"
    (item,) = json.loads(lab.ok("checkpoint", "list", "--json"))
    assert item["name"] == "first" and isinstance(item["data_bytes"], int)
    assert item["data_bytes"] > 0


def test_restore_of_a_running_session_brings_the_file_back_and_runs_again(lab: Lab) -> None:
    lab.guest(f"echo two > {MARKER}; touch ~/made-after; echo after-save > notes.txt")
    restored = lab.ok("checkpoint", "restore", "first", "--yes")
    assert "restored checkpoint first: the VM runs again" in restored
    lab.release()  # that supervisor is gone with the VM it stopped
    assert lab.domstate() == "running"
    lab.hold()
    assert lab.guest(f"cat {MARKER}; test -e ~/made-after || echo gone") == "one\ngone\n"
    # The project is on the host, not on the guest's disk: the restore did not touch it.
    assert (lab.project.root / "notes.txt").read_text() == "after-save\n"
    assert lab.host_untouched()


def test_remove_while_running(lab: Lab) -> None:
    lab.ok("checkpoint", "save", "scratch")
    assert lab.ok("checkpoint", "rm", "scratch") == "removed checkpoint scratch\n"
    names = [c["name"] for c in json.loads(lab.ok("checkpoint", "list", "--json"))]
    assert names == ["first"]


def test_save_and_restore_of_a_stopped_session(lab: Lab) -> None:
    lab.guest(f"echo three > {MARKER}; sync")
    lab.release()
    assert lab.ok("stop").startswith("stopped")
    assert lab.ok("checkpoint", "save", "off").strip() == "saved checkpoint off (the VM is off)"
    assert lab.domstate() == "shut off"  # saving did not start it
    lab.guest(f"echo four > {MARKER}; sync")  # starts it (checkpoints survive stop/start)
    assert lab.ok("stop").startswith("stopped")
    restored = lab.ok("checkpoint", "restore", "off", "--yes")
    assert "restored checkpoint off: the VM starts from it next time" in restored
    assert lab.domstate() == "shut off"
    assert lab.guest(f"cat {MARKER}") == "three\n"
    names = [c["name"] for c in json.loads(lab.ok("checkpoint", "list", "--json"))]
    assert names == ["first", "off"]
    assert lab.host_untouched()


def test_checkpoints_go_with_the_session(lab: Lab) -> None:
    disk = lab.project.disk
    assert disk.is_file()
    delete_session(lab.session_id)
    assert not lab.project.cache.exists()
    assert lab.host_untouched()
    lab.session_id = ""
