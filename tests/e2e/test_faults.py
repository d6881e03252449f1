"""Faults injected on the real stack: every one ends usable, or with one line saying what to run.

The tests share two sessions (a blocklist one, ``block``, and an allowlist one, ``allow``) and
run in file order, each leaving them as the next expects; a file written on each guest's own
disk at the start must survive every fault. Faults, by pid only (other engineers' VMs run in
the same lab):

1. ``kill -9`` of the supervisor while idle: the next ``vibebox exec`` cleans its files, starts a
   new one and finds the VM still up (no reboot).
2. The lab's libvirtd restarted under both running sessions (same pid file, inside the
   namespace, as ``.ci/lab-up`` starts it): supervisors keep answering, ``exec`` works.
3. The QEMU process killed: the supervisor notices and exits; ``exec`` boots the disk again.
4. ``kill -9`` of the supervisor while that boot runs: the boot's ``exec`` ends cleanly and the
   next one attaches to the same VM.
5. ``virsh destroy``: ``exec`` boots it again.
6. ``kill -9`` of the supervisor while it shuts the VM down: the VM still ends off, and the
   next ``exec`` boots it.
7. The host "rebooting": every process of both sessions killed (supervisor, QEMU, virtiofsd,
   dnsmasq), virtlogd and libvirtd restarted and the networks left inactive; both sessions
   resume with their disks.
8. Two ``vibebox exec`` racing to create one new session: one VM, one index entry.
9. Two ``vibebox delete`` racing on it: both end cleanly, nothing is left.
10. A full disk (a tiny tmpfs as VIBEBOX_HOME in a private mount namespace) while writing the
    index: one line naming the full disk, the index keeps its entries.
11. A full disk while building an image: one line, no half-built image left.

Every command's stderr is checked for a traceback; every failure must be a
``vibebox: error:`` line with a ``hint:``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.livesession import (
    URI,
    cli_env,
    delete_session,
    domstate,
    popen_cli,
    run_cli,
    wait_until,
)

from vibebox_core import paths
from vibebox_core.hypervisor import names
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve, boot
from vibebox_core.supervisor import client

pytestmark = pytest.mark.e2e

BOOT = 400  # seconds a cold start may take here (TCG, 2 cores shared by many)
LAB_RUN = Path("/run/vibebox-lab")
LIBVIRTD_PID = LAB_RUN / "libvirtd.pid"
VIRTLOGD_PID = LAB_RUN / "virtlogd.pid"
MARKER = "/var/tmp/vbx-fault-marker"  # on the guest's own disk, not a share
SURVIVED: list[str] = []


def assert_clean(result: subprocess.CompletedProcess[str], what: str) -> None:
    """No traceback; a failure is one ``vibebox: error:`` line plus a hint."""
    assert "Traceback" not in result.stderr, f"{what}: {result.stderr}"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("vibebox: error:")]
        assert len(lines) == 1, f"{what}: {result.stderr}"
        assert "hint:" in result.stderr, f"{what}: {result.stderr}"
        assert "unexpected" not in lines[0], f"{what}: {result.stderr}"


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def kill9(pid: int | None, must_contain: bytes) -> None:
    """SIGKILL one pid, after checking it is the process meant (never by name)."""
    assert pid is not None
    assert must_contain in _cmdline(pid), f"pid {pid} is not {must_contain!r}"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid) or not _cmdline(pid), 30)


@dataclass
class Box:
    label: str
    project: ProjectPaths
    session_id: str = ""

    def run(self, *args: str, timeout: float = BOOT) -> subprocess.CompletedProcess[str]:
        result = run_cli(self.project.root, *args, timeout=timeout)
        assert_clean(result, f"{self.label}: vibebox {' '.join(args)}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return popen_cli(self.project.root, *args)

    def sh(self, script: str, timeout: float = BOOT) -> str:
        result = self.run("exec", "--", "sh", "-c", script, timeout=timeout)
        assert result.returncode == 0, f"{self.label}: {result.stderr}"
        return result.stdout

    def marker(self) -> str:
        return self.sh(f"cat {MARKER}").strip()

    @property
    def name(self) -> str:
        return names.domain_name(self.project.name, self.session_id)

    def supervisor_pid(self) -> int | None:
        return _pid_file(self.project.supervisor_pid)

    def qemu_pid(self) -> int | None:
        return _pid_file(Path(f"/run/libvirt/qemu/{self.name}.pid"))

    def virtiofsd_pids(self) -> list[int]:
        pids = []
        for pidfile in Path("/run/libvirt/qemu").glob(f"*{self.name}-fs*-virtiofsd.pid"):
            pid = _pid_file(pidfile)
            if pid is not None and _alive(pid):
                pids.append(pid)
        return pids

    def dnsmasq_pid(self) -> int | None:
        return _pid_file(Path(f"/run/libvirt/network/{names.network_name(self.session_id)}.pid"))

    def domstate(self) -> str:
        return domstate(self.session_id)

    def uptime(self) -> float:
        return float(self.sh("cut -d' ' -f1 /proc/uptime"))

    def assert_intact(self) -> None:
        """The index entry and ``.vibebox/`` survived: same id in both."""
        entry = SessionIndex().find_by_directory(self.project.root)
        assert entry is not None and entry.id == self.session_id
        assert self.project.session_id.read_text().strip() == self.session_id
        assert self.project.disk.is_file()

    def supervisor_answers(self) -> bool:
        return client.status_sync(paths.supervisor_socket_path(self.session_id)) is not None


def _project(label: str, network: str) -> ProjectPaths:
    root = Path(tempfile.mkdtemp(prefix=f"vbx-fault-{label}-", dir="/tmp"))
    root.chmod(0o755)
    (root / paths.PROJECT_CONFIG).write_text(
        "[box]\ncpus = 1\nmemory_mb = 768\n\n"
        f"[network]\n{network}\n\n[supervisor]\nauto_shutdown_ms = 600000\n"
    )
    uid, gid = boot.guest_ids()
    for path in (root, root / paths.PROJECT_CONFIG):
        os.chown(path, uid, gid)
    project = ProjectPaths.for_directory(root)
    approve.approve(project)  # a grace above the default is approved on the host first
    return project


@dataclass
class Boxes:
    block: Box
    allow: Box

    def both(self) -> tuple[Box, Box]:
        return self.block, self.allow


def _delete(box: Box) -> None:
    entry = SessionIndex().find_by_directory(box.project.root)
    if entry is not None:
        delete_session(entry.id, "--force")


@pytest.fixture(scope="module")
def boxes(e2e_home_shared: Path) -> Iterator[Boxes]:
    state = Boxes(
        Box("block", _project("block", 'mode = "blocklist"\nentries = []')),
        Box("allow", _project("allow", 'mode = "allowlist"\nentries = []')),
    )
    for box in state.both():  # the host user approves the project's file first
        approved = box.run("approve", "--yes", timeout=60)
        assert approved.returncode == 0, approved.stdout + approved.stderr
    try:
        yield state
    finally:
        for box in state.both():
            _delete(box)
            shutil.rmtree(box.project.root, ignore_errors=True)
        print(f"\nfaults survived: {len(SURVIVED)}: {', '.join(SURVIVED)}")


def _boot_both(boxes: Boxes, script: str) -> dict[str, subprocess.CompletedProcess[str]]:
    procs = {box.label: box.popen("exec", "--", "sh", "-c", script) for box in boxes.both()}
    results = {}
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=BOOT)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert_clean(result, label)
        results[label] = result
    return results


def test_both_sessions_boot_and_write_to_their_disks(boxes: Boxes) -> None:
    results = _boot_both(boxes, f"echo $(cat /proc/sys/kernel/random/uuid) > {MARKER}; sync")
    for box in boxes.both():
        assert results[box.label].returncode == 0, results[box.label].stderr
        box.session_id = box.project.session_id.read_text().strip()
        assert box.domstate() == "running"
    boxes.block.marker()  # readable


def _markers(boxes: Boxes) -> dict[str, str]:
    return {box.label: box.marker() for box in boxes.both()}


@pytest.fixture(scope="module")
def markers(boxes: Boxes) -> dict[str, str]:
    return _markers(boxes)


def test_supervisor_killed_while_idle(boxes: Boxes, markers: dict[str, str]) -> None:
    box = boxes.block
    before = box.uptime()
    pid = box.supervisor_pid()
    kill9(pid, client.MODULE.encode())
    assert not box.supervisor_answers()
    assert box.marker() == markers["block"]
    assert box.uptime() > before  # the same boot: nothing restarted the VM
    assert box.supervisor_answers() and box.supervisor_pid() != pid
    box.assert_intact()
    SURVIVED.append("supervisor kill -9 while idle")


def _stop_daemon(pid_file: Path, name: bytes) -> None:
    pid = _pid_file(pid_file)
    assert pid is not None and name in _cmdline(pid)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid) or name not in _cmdline(pid), 60)


def _restart_libvirtd(*, virtlogd: bool = False) -> None:
    """Restart the lab's libvirtd (and with ``virtlogd``, virtlogd first) the way .ci/lab-up
    starts them (same pid files, inside the namespace)."""
    _stop_daemon(LIBVIRTD_PID, b"libvirtd")
    with_ns = ["ip", "netns", "exec", "vbxlab"]
    if virtlogd:
        _stop_daemon(VIRTLOGD_PID, b"virtlogd")
        subprocess.run(
            [*with_ns, "virtlogd", "-d", "-p", str(VIRTLOGD_PID)], check=True, timeout=60
        )
    subprocess.run([*with_ns, "libvirtd", "-d", "-p", str(LIBVIRTD_PID)], check=True, timeout=60)

    def answers() -> bool:
        probe = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, timeout=30)
        return probe.returncode == 0

    wait_until(answers, 60, step=0.5)


def test_libvirtd_restarted_under_running_sessions(boxes: Boxes, markers: dict[str, str]) -> None:
    uptimes = {box.label: box.uptime() for box in boxes.both()}
    _restart_libvirtd()
    for box in boxes.both():
        assert box.domstate() == "running"
        assert box.supervisor_answers()
        assert box.marker() == markers[box.label]
        assert box.uptime() > uptimes[box.label]
        listing = box.run("list", "--json")
        rows = {row["id"]: row for row in json.loads(listing.stdout)}
        assert rows[box.session_id]["state"] == "running"
        box.assert_intact()
    SURVIVED.append("libvirtd restarted under two running sessions")


def test_qemu_killed_then_supervisor_killed_while_booting(
    boxes: Boxes, markers: dict[str, str]
) -> None:
    box = boxes.block
    old_supervisor = box.supervisor_pid()
    kill9(box.qemu_pid(), b"qemu-system")
    # The supervisor sees the VM gone and exits by itself.
    wait_until(lambda: not _alive(old_supervisor), 60)
    assert box.domstate() == "shut off"
    assert not box.project.supervisor_pid.exists()
    SURVIVED.append("QEMU killed")

    booting = box.popen("exec", "--", "cat", MARKER)
    wait_until(lambda: box.supervisor_pid() is not None and box.domstate() == "running", BOOT)
    kill9(box.supervisor_pid(), client.MODULE.encode())
    out, err = booting.communicate(timeout=BOOT)
    assert_clean(subprocess.CompletedProcess(booting.args, booting.returncode, out, err), "boot")
    if booting.returncode == 0:
        assert out.strip() == markers["block"]
    # Whatever that exec saw, the session is usable and still the same boot.
    assert box.marker() == markers["block"]
    assert box.domstate() == "running"
    box.assert_intact()
    SURVIVED.append("supervisor kill -9 while booting")


def test_virsh_destroy(boxes: Boxes, markers: dict[str, str]) -> None:
    box = boxes.allow
    result = subprocess.run(
        ["virsh", "-c", URI, "destroy", box.session_id], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert box.marker() == markers["allow"]
    assert box.domstate() == "running"
    box.assert_intact()
    SURVIVED.append("virsh destroy")


def test_supervisor_killed_while_shutting_down(boxes: Boxes, markers: dict[str, str]) -> None:
    box = boxes.block
    pid = box.supervisor_pid()
    stopping = box.popen("stop")
    socket_path = paths.supervisor_socket_path(box.session_id)
    # The supervisor unlinks its socket when the shutdown begins, then powers the VM off.
    wait_until(lambda: not socket_path.exists(), 60, step=0.02)
    kill9(pid, client.MODULE.encode())
    out, err = stopping.communicate(timeout=180)
    assert_clean(subprocess.CompletedProcess(stopping.args, stopping.returncode, out, err), "stop")
    wait_until(lambda: box.domstate() in ("shut off", "running"), 120)
    listing = box.run("list", "--json")
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert rows[box.session_id]["state"] in ("shut off", "running", "stopping")
    assert box.marker() == markers["block"]
    assert box.domstate() == "running"
    box.assert_intact()
    SURVIVED.append("supervisor kill -9 while shutting down")


def test_host_reboot_every_process_killed(boxes: Boxes, markers: dict[str, str]) -> None:
    victims: list[tuple[int | None, bytes]] = []
    for box in boxes.both():
        assert box.domstate() == "running"
        victims.append((box.supervisor_pid(), client.MODULE.encode()))
    for box in boxes.both():
        victims.append((box.qemu_pid(), b"qemu-system"))
        victims += [(pid, b"virtiofsd") for pid in box.virtiofsd_pids()]
        victims.append((box.dnsmasq_pid(), b"dnsmasq"))
    for pid, what in victims:  # supervisors first: they must not see the VM go
        if pid is not None and _alive(pid):
            kill9(pid, what)
    _restart_libvirtd(virtlogd=True)
    for box in boxes.both():  # a rebooted host has the networks down
        subprocess.run(
            ["virsh", "-c", URI, "net-destroy", names.network_name(box.session_id)],
            capture_output=True,
        )
    results = _boot_both(boxes, f"cat {MARKER}")
    for box in boxes.both():
        assert results[box.label].returncode == 0, results[box.label].stderr
        assert results[box.label].stdout.strip() == markers[box.label]
        box.assert_intact()
    SURVIVED.append("host reboot (every process killed, lab daemons restarted), both modes")


@pytest.fixture(scope="module")
def racer(e2e_home_shared: Path) -> Iterator[Box]:
    box = Box("race", _project("race", 'mode = "blocklist"\nentries = []'))
    approved = box.run("approve", "--yes", timeout=60)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    yield box
    _delete(box)
    shutil.rmtree(box.project.root, ignore_errors=True)


def test_two_vibebox_race_to_create_one_session(racer: Box, boxes: Boxes) -> None:
    for box in boxes.both():  # free the machine for this boot
        box.run("stop", timeout=180)
    procs = [racer.popen("exec", "--", "cat", "/etc/hostname") for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=BOOT)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert_clean(result, "racing create")
        assert proc.returncode == 0, err
        assert out == "vibebox\n"
    entries = [e for e in SessionIndex().entries() if e.directory == racer.project.root]
    assert len(entries) == 1
    racer.session_id = entries[0].id
    assert racer.project.session_id.read_text().strip() == racer.session_id
    listing = subprocess.run(
        ["virsh", "-c", URI, "list", "--all", "--uuid"], capture_output=True, text=True
    )
    assert listing.stdout.split().count(racer.session_id) == 1
    SURVIVED.append("two vibebox racing to create one session")


def test_two_vibebox_race_to_delete_it(racer: Box) -> None:
    procs = [racer.popen("delete", racer.session_id, "--yes") for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert_clean(result, "racing delete")
        if proc.returncode != 0:
            assert "no session" in err or "not found" in err or "no longer" in err, err
    assert sum(1 for p in procs if p.returncode == 0) >= 1
    assert not racer.project.cache.exists()
    assert SessionIndex().find_by_directory(racer.project.root) is None
    assert racer.domstate() == "missing"
    net = subprocess.run(
        ["virsh", "-c", URI, "net-info", names.network_name(racer.session_id)], capture_output=True
    )
    assert net.returncode != 0
    SURVIVED.append("two vibebox racing to delete one session")


# --------------------------------------------------------------------------- full disk

_FULL_DISK = textwrap.dedent(
    """
    import json, os, subprocess, sys
    home, project_a, project_b = sys.argv[1:4]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", home], check=True)
    os.environ["VIBEBOX_HOME"] = home
    os.environ["VIBEBOX_MIRROR"] = "http://127.0.0.1:9/debian"  # never leaves the host
    from vibebox_core.index.sessions import SessionIndex
    first = SessionIndex().ensure(project_a).id
    fd = os.open(os.path.join(home, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        os.close(fd)
    cli = [sys.executable, "-m", "vibebox_cli.main"]
    index = subprocess.run(cli + ["exec", "-C", project_b, "--", "true"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    image = subprocess.run(cli + ["image", "build", "--name", "full"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    os.unlink(os.path.join(home, "filler"))
    kept = [e.id for e in SessionIndex().entries()]
    images = subprocess.run(cli + ["image", "list", "--json"], capture_output=True, text=True)
    left = sorted(os.listdir(os.path.join(home, "images"))) if os.path.isdir(
        os.path.join(home, "images")) else []
    b_id = SessionIndex().ensure(project_b).id
    b_file = open(os.path.join(project_b, ".vibebox", "session-id")).read().strip()
    sys.stderr.write(index.stderr + image.stderr)
    print(json.dumps({
        "first": first, "kept": kept,
        "index": [index.returncode, index.stderr],
        "image": [image.returncode, image.stderr],
        "images": images.stdout, "left": left, "b_id": b_id, "b_file": b_file,
    }))
    """
)


def test_full_disk_while_writing_the_index_and_building_an_image(require_lab: None) -> None:
    home = Path(tempfile.mkdtemp(prefix="vbx-full-", dir="/tmp"))
    project_a = Path(tempfile.mkdtemp(prefix="vbx-full-a-", dir="/tmp"))
    project_b = Path(tempfile.mkdtemp(prefix="vbx-full-b-", dir="/tmp"))
    try:
        result = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                sys.executable,
                "-c",
                _FULL_DISK,
                str(home),
                str(project_a),
                str(project_b),
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        for what in ("index", "image"):
            status, stderr = report[what]
            assert status == 1, f"{what}: {stderr}"
            fake = subprocess.CompletedProcess([], status, "", stderr)
            assert_clean(fake, what)
            assert "no space left" in stderr.lower() or "disk is full" in stderr.lower(), stderr
        assert report["first"] in report["kept"]  # the index kept its entry
        assert report["b_id"] == report["b_file"]  # the half-made session is picked up again
        assert "full" not in report["images"]
        # Only the build lock may remain (an empty file): no image, no half-built tree.
        assert [name for name in report["left"] if "full" in name] == [".full.lock"]
        SURVIVED.append("full disk while writing the index")
        SURVIVED.append("full disk while building an image")
    finally:
        for path in (home, project_a, project_b):
            shutil.rmtree(path, ignore_errors=True)
