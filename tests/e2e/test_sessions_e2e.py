"""Real sessions end to end: libvirt + QEMU (TCG) + virtiofs + SSH + the supervisor.

Run inside the lab (``bash .ci/lab-up``, then ``ip netns exec vbxlab ... pytest tests/e2e -m
e2e``). The tests of this module share one project and, where they can, one booted VM: they
run in file order and each leaves the session as the next one expects (a raw attachment to
the supervisor keeps the VM up between them). Only two cold boots happen: the first start and
the restart after the grace shutdown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.livesession import (
    URI,
    HeldSession,
    delete_session,
    popen_cli,
    run_cli,
    wait_until,
)

from vibebox_core import paths
from vibebox_core.hypervisor import names
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve, boot
from vibebox_core.supervisor import client, server

pytestmark = pytest.mark.e2e

GRACE_MS = 3000
BOOT = 300  # seconds a cold start may take in a test (TCG on a busy 2-core machine)


@dataclass
class Lab(HeldSession):
    project: ProjectPaths
    ro_dir: Path

    def run(
        self, *args: str, input: str | None = None, timeout: float = BOOT
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(self.project.root, *args, input=input, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return popen_cli(self.project.root, *args)

    def attached(self) -> int | None:
        status = client.status_sync(self.socket_path)
        return None if status is None else int(status["attached"])


@pytest.fixture(scope="module")
def lab(e2e_home_shared: Path) -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="vbx-sess-", dir="/tmp"))
    root.chmod(0o755)
    if os.getuid() == 0:
        # As root the guest user is uid 1000 (the seed contract): give the project to that
        # user, as a real user's project belongs to them.
        os.chown(root, *boot.guest_ids())
    ro_dir = Path(tempfile.mkdtemp(prefix="vbx-ro-", dir="/tmp"))
    ro_dir.chmod(0o755)
    (ro_dir / "ro.txt").write_text("read only\n")
    (root / paths.PROJECT_CONFIG).write_text(
        "[box]\n"
        "cpus = 1\n"
        "memory_mb = 1024\n"
        f'mounts = ["{ro_dir}:/mnt/ro:ro"]\n'
        "[supervisor]\n"
        f"auto_shutdown_ms = {GRACE_MS}\n"
    )
    state = Lab(ProjectPaths.for_directory(root), ro_dir)
    approve.approve(state.project)  # the user approves the extra mount on the host
    yield state
    state.release()
    if state.session_id and state.project.cache.exists():
        # A failed test left the session: take it down so the lab stays clean.
        delete_session(state.session_id)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(ro_dir, ignore_errors=True)


def test_fresh_project_exec_prints_the_uid(lab: Lab) -> None:
    result = lab.run("exec", "--", "id", "-u")
    assert result.returncode == 0, result.stderr
    expected = boot.guest_ids()[0]
    assert result.stdout == f"{expected}\n"
    lab.session_id = lab.project.session_id.read_text().strip()
    lab.hold()  # keep the VM up for the next tests (the grace is only 3 s)
    assert lab.attached() == 1


def test_virsh_shows_the_designed_name_and_uuid(lab: Lab) -> None:
    name = subprocess.run(
        ["virsh", "-c", URI, "domname", lab.session_id], capture_output=True, text=True
    )
    assert name.returncode == 0, name.stderr
    assert name.stdout.strip() == names.domain_name(lab.project.name, lab.session_id)
    assert name.stdout.strip() == f"vibebox-{lab.project.name}-{lab.session_id[:8]}"
    uuid = subprocess.run(
        ["virsh", "-c", URI, "domuuid", name.stdout.strip()], capture_output=True, text=True
    )
    assert uuid.stdout.strip() == lab.session_id
    assert lab.domstate() == "running"


def test_exec_passes_arguments_streams_and_status(lab: Lab) -> None:
    result = lab.run(
        "exec",
        "--",
        "sh",
        "-c",
        'printf "%s|" "$@"; cat; echo oops >&2; exit 7',
        "x",
        "a b",
        "$HOME",
        "it's",
        input="from stdin\n",
    )
    assert result.returncode == 7
    assert result.stdout == "a b|$HOME|it's|from stdin\n"
    assert result.stderr == "oops\n"


def test_guest_write_in_project_mount_appears_on_host(lab: Lab) -> None:
    result = lab.run("exec", "--", "sh", "-c", "echo written by the guest > from-guest.txt")
    assert result.returncode == 0, result.stderr
    written = lab.project.root / "from-guest.txt"
    assert written.read_text() == "written by the guest\n"
    assert written.stat().st_uid == boot.guest_ids()[0]


def test_host_write_appears_in_guest(lab: Lab) -> None:
    (lab.project.root / "from-host.txt").write_text("written by the host\n")
    result = lab.run("exec", "--", "cat", "from-host.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "written by the host\n"
    masked = lab.run("exec", "--", "ls", "-A", ".vibebox")
    assert masked.stdout == ""  # the project's .vibebox/ (keys!) is masked in the guest


def test_read_only_mount_refuses_guest_writes(lab: Lab) -> None:
    read = lab.run("exec", "--", "cat", "/mnt/ro/ro.txt")
    assert read.stdout == "read only\n"
    write = lab.run("exec", "--", "sudo", "sh", "-c", "echo x > /mnt/ro/new.txt")
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr
    assert not (lab.ro_dir / "new.txt").exists()


def test_plain_openssh_with_ssh_config(lab: Lab, tmp_path: Path) -> None:
    block = lab.run("ssh-config")
    assert block.returncode == 0, block.stderr
    assert "StrictHostKeyChecking yes" in block.stdout
    config = tmp_path / "ssh_config"
    config.write_text(block.stdout)
    alias = block.stdout.splitlines()[0].split()[1]
    result = subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", alias, "id", "-un"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "vibecoder\n"


def test_a_changed_host_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    known = lab.project.known_hosts
    original = known.read_bytes()
    other = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
        capture_output=True,
    )
    assert other.returncode == 0
    fake = (tmp_path / "k.pub").read_text().split()
    known.write_text(f"* {fake[0]} {fake[1]}\n")
    try:
        result = lab.run("exec", "--", "true", timeout=60)
        assert result.returncode == 1
        assert "refusing to connect" in result.stderr and "host key" in result.stderr
        block = lab.run("ssh-config").stdout
        (tmp_path / "cfg").write_text(block)
        alias = block.splitlines()[0].split()[1]
        plain = subprocess.run(
            ["ssh", "-F", str(tmp_path / "cfg"), "-o", "BatchMode=yes", alias, "true"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert plain.returncode == 255
        assert "host key" in plain.stderr.lower()
    finally:
        known.write_bytes(original)
    assert lab.run("exec", "--", "true").returncode == 0


def test_two_attachments_then_kill_one_then_none_shuts_down(lab: Lab) -> None:
    # A file on the guest's own disk (not a mount), for the restart test below.
    keep = lab.run("exec", "--", "sh", "-c", "echo kept on the instance disk > ~/kept.txt")
    assert keep.returncode == 0, keep.stderr
    first = lab.popen("exec", "--", "sleep", "600")
    second = lab.popen("exec", "--", "sleep", "600")
    try:
        wait_until(lambda: lab.attached() == 3, timeout=60)
        lab.release()
        wait_until(lambda: lab.attached() == 2, timeout=5)
        listed = json.loads(lab.run("list", "--json", timeout=60).stdout)
        mine = next(row for row in listed if row["id"] == lab.session_id)
        assert mine["attached"] == 2 and mine["state"] == "running"

        first.send_signal(signal.SIGKILL)
        dropped = wait_until(lambda: lab.attached() == 1, timeout=1.0, step=0.01)
        assert dropped <= 1.0

        second.send_signal(signal.SIGKILL)
        limit = GRACE_MS / 1000 + server.SHUTDOWN_TIMEOUT + 5
        wait_until(lambda: lab.domstate() == "shut off", timeout=limit, step=0.2)
        # The supervisor removes its socket before the shutdown and its pid file as it exits.
        wait_until(lambda: not lab.socket_path.exists(), timeout=10)
        wait_until(lambda: not lab.project.supervisor_pid.exists(), timeout=10)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
            process.wait()


def test_two_starts_at_once_share_one_vm_and_the_disk_persists(lab: Lab) -> None:
    assert lab.domstate() == "shut off"
    log_before = lab.project.supervisor_log.read_text()
    runs = [lab.popen("exec", "--", "cat", "/home/vibecoder/kept.txt") for _ in range(2)]
    for process in runs:
        out, err = process.communicate(timeout=BOOT)
        assert process.returncode == 0, err
        assert out == "kept on the instance disk\n"
    started = lab.project.supervisor_log.read_text()[len(log_before) :]
    assert started.count("listening on") == 1  # one supervisor, so one start of the VM
    lab.hold()
    assert lab.domstate() == "running"


def test_sigkill_of_the_supervisor_then_exec_recovers(lab: Lab) -> None:
    pid = int(lab.project.supervisor_pid.read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=5)
    lab.release()
    assert lab.socket_path.exists()  # left behind: stale
    result = lab.run("exec", "--", "echo", "recovered")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "recovered\n"
    new_pid = int(lab.project.supervisor_pid.read_text())
    assert new_pid != pid
    assert client.status_sync(lab.socket_path) is not None
    assert lab.domstate() == "running"  # the running VM was kept, not rebooted


def test_delete_removes_everything(lab: Lab) -> None:
    result = lab.run("delete", lab.session_id, "--yes", timeout=120)
    assert result.returncode == 0, result.stderr
    assert lab.domstate() == "missing"
    net = subprocess.run(
        ["virsh", "-c", URI, "net-info", names.network_name(lab.session_id)],
        capture_output=True,
        text=True,
    )
    assert net.returncode != 0
    assert not lab.project.cache.exists()
    listed = json.loads(lab.run("list", "--json", timeout=60).stdout)
    assert all(row["id"] != lab.session_id for row in listed)
    assert not lab.socket_path.exists()
