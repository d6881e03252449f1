"""The hostile guest against the shares: root in a real guest tries to plant host files.

One booted VM for the module (a raw supervisor attachment keeps it up between tests), with
the project share, a read-only extra mount and a read-write extra mount *inside* the project
(``sub/inner``). Each test makes an attempt as guest root (``sudo``), asserts what the host
sees, then that the session still answers. The last one swaps ``sub`` for a symlink from the
guest and checks that the next start refuses (one more cold boot after the host repairs it).

Attempts (19): chmod 4755, chmod 2755 and mkdir -m 2775, mknod b, mknod c, a rename whiteout,
sudo touch (owner), chown 1234:1234, install -o 1234 -m 4755, cp -a of a setuid binary, mv of
a setuid file in from the guest disk, a file of another guest uid, a write into a host setuid
file, setxattr security.capability, writing the read-only mount, writing the read-only seed
share, the ``.vibebox`` mask (read, replace, unmount the guest's mask, mount the share again),
the guard loaded into the real virtiofsd, the symlink swap of an approved mount's parent, a
``.vibebox`` symlink shipped by a repository.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from e2e.livesession import HeldSession, delete_session, run_cli, wait_until

from vibebox_core import paths
from vibebox_core.config.schema import GUEST_USER
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import boot
from vibebox_core.share import guard, pins
from vibebox_core.supervisor import client

pytestmark = pytest.mark.e2e

GRACE_MS = 2000
BOOT = 400  # seconds a cold start may take (TCG on a busy 2-core machine)


@dataclass
class Box(HeldSession):
    project: ProjectPaths
    ro_dir: Path
    inner: Path
    client: ClassVar[str] = "e2e-hostile-shares"

    @property
    def guest_project(self) -> str:
        return f"/home/{GUEST_USER}/{self.project.name}"

    def run(self, *args: str, timeout: float = BOOT) -> subprocess.CompletedProcess[str]:
        return run_cli(self.project.root, *args, timeout=timeout)

    def as_root(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` as root in the guest, in the project mount."""
        full = f"cd {shlex.quote(self.guest_project)} || exit 99\n{script}"
        return self.run("exec", "--", "sudo", "sh", "-c", full, timeout=180)

    def alive(self) -> None:
        """The session still works: a command runs and the project mount answers."""
        result = self.run("exec", "--", "sh", "-c", f"cd {self.guest_project} && echo alive")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "alive\n"


@pytest.fixture(scope="module")
def box(e2e_home_shared: Path) -> Iterator[Box]:
    root = Path(tempfile.mkdtemp(prefix="vbx-hostile-", dir="/tmp"))
    root.chmod(0o755)
    inner = root / "sub" / "inner"
    inner.mkdir(parents=True)
    (inner / "approved.txt").write_text("approved\n")
    ro_dir = Path(tempfile.mkdtemp(prefix="vbx-hostile-ro-", dir="/tmp"))
    ro_dir.chmod(0o755)
    (ro_dir / "ro.txt").write_text("read only\n")
    if os.getuid() == 0:
        # As root the guest user is uid 1000: the project belongs to that user, as a real
        # user's project belongs to them (and the share owner is the project's owner).
        for path in (root, root / "sub", inner, inner / "approved.txt"):
            os.chown(path, *boot.guest_ids())
    (root / paths.PROJECT_CONFIG).write_text(
        "[box]\n"
        "cpus = 1\n"
        "memory_mb = 1024\n"
        f'mounts = ["{ro_dir}:/mnt/ro:ro", "{inner}:/mnt/inner:rw"]\n'
        "[supervisor]\n"
        f"auto_shutdown_ms = {GRACE_MS}\n"
    )
    state = Box(ProjectPaths.for_directory(root), ro_dir, inner)
    yield state
    state.release()
    if state.session_id and state.project.cache.exists():
        delete_session(state.session_id)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(ro_dir, ignore_errors=True)


def owner() -> guard.ShareOwner:
    return guard.ShareOwner(*boot.guest_ids()) if os.getuid() == 0 else guard.share_owner()


def host_mode(path: Path) -> int:
    return os.lstat(path).st_mode


DIAGNOSE = (
    "mount | grep virtiofs; ls -la /mnt/inner; sudo journalctl -b -u vibebox-setup | tail -n 30"
)


def test_boot_with_approved_mounts(box: Box) -> None:
    approved = box.run("approve", "--yes", timeout=60)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    booted = box.run("exec", "--", "true")
    assert booted.returncode == 0, booted.stderr
    box.session_id = box.project.session_id.read_text().strip()
    box.hold()  # one boot for the module; a failure below is diagnosed in this same boot
    result = box.run("exec", "--", "sh", "-c", "cat /mnt/inner/approved.txt /mnt/ro/ro.txt")
    if result.returncode != 0:
        why = box.run("exec", "--", "sh", "-c", DIAGNOSE)
        raise AssertionError(result.stderr + why.stdout + why.stderr)
    assert result.stdout == "approved\nread only\n"
    assert guard.share_owner(pins.pin(box.project.root)) == owner()


def _virtiofsd_of(session_id: str) -> dict[str, list[int]]:
    """The processes serving this session's shares, by tag (from the launcher's label)."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(f"VIBEBOX_SHARE={session_id}:".encode()):
                tag = item.split(b":", 1)[1].decode()
                found.setdefault(tag, []).append(int(entry.name))
    return found


def test_the_guard_is_loaded_into_the_real_virtiofsd(box: Box) -> None:
    served = _virtiofsd_of(box.session_id)
    assert set(served) == {"vibebox-seed", "vibebox-project", "vibebox-m1", "vibebox-m2"}
    for pids in served.values():
        for pid in pids:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                maps = Path(f"/proc/{pid}/maps").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # a short-lived helper of virtiofsd
            assert exe == "/usr/lib/qemu/virtiofsd"
            assert f"/{paths.SHARE_GUARD_LIB}-" in maps  # the preloaded guard is mapped
            assert b"modcaps=-mknod:-setfcap:-fsetid" in cmdline
            assert any(arg.startswith(b"source=/run/vibebox-virtiofsd/") for arg in cmdline)
    box.alive()


def test_chmod_setuid_and_setgid_leave_no_bits_on_the_host(box: Box) -> None:
    result = box.as_root(
        "cp /bin/true suid && chmod 4755 suid; cp /bin/true sgid && chmod 2755 sgid; "
        "chmod u+s,g+s suid; mkdir -m 2775 sgid-dir; chmod g+s sgid-dir; "
        "stat -c '%a %u' suid sgid sgid-dir"
    )
    assert result.returncode == 0, result.stderr
    root = box.project.root
    for name in ("suid", "sgid", "sgid-dir"):
        mode = host_mode(root / name)
        assert not mode & (stat.S_ISUID | stat.S_ISGID), (name, oct(mode))
        assert os.lstat(root / name).st_uid == owner().uid
    box.alive()


def test_device_nodes_are_refused(box: Box) -> None:
    result = box.as_root(
        "mknod blk b 8 0; echo b=$?; mknod chr c 1 3; echo c=$?; "
        "mkdir -p /mnt/inner && mknod /mnt/inner/chr c 1 1; echo i=$?; mknod fifo p; echo p=$?"
    )
    assert "b=0" not in result.stdout and "c=0" not in result.stdout, result.stdout
    assert "i=0" not in result.stdout
    assert "p=0" in result.stdout  # a FIFO is no device: allowed
    root = box.project.root
    assert not (root / "blk").exists() and not (root / "chr").exists()
    assert not (box.inner / "chr").exists()
    assert stat.S_ISFIFO(host_mode(root / "fifo"))
    box.alive()


# perl-base is in every Debian image: its syscall() makes the raw calls (strings as variables).
WHITEOUT_PL = r'($a, $b) = ("wa", "wb"); print syscall(316, -100, $a, -100, $b, 4), "\n";'
SETCAP_PL = (
    r'($f, $n) = ("cap", "security.capability"); $v = pack("V5", 0x02000001, 0x2000, 0, 0, 0);'
    r' print syscall(188, $f, $n, $v, 20, 0), "\n";'
)


def test_rename_whiteout_leaves_no_device(box: Box) -> None:
    # renameat2(AT_FDCWD, "wa", AT_FDCWD, "wb", RENAME_WHITEOUT) leaves a 0:0 char device
    result = box.as_root(f"echo a > wa; perl -e {shlex.quote(WHITEOUT_PL)}")
    assert result.stdout.strip() == "-1", result.stdout + result.stderr
    assert stat.S_ISREG(host_mode(box.project.root / "wa"))  # not renamed, not a whiteout
    assert not (box.project.root / "wb").exists()
    box.alive()


def test_files_made_by_guest_root_belong_to_the_host_user(box: Box) -> None:
    result = box.as_root("touch by-root && mkdir -m 1777 pub && ls -ln by-root")
    assert result.returncode == 0, result.stderr
    made = os.lstat(box.project.root / "by-root")
    assert (made.st_uid, made.st_gid) == (owner().uid, owner().gid)
    other = box.as_root("su -s /bin/sh nobody -c ': > pub/by-nobody'; echo rc=$?")
    assert "rc=0" in other.stdout, other.stdout + other.stderr
    made = os.lstat(box.project.root / "pub" / "by-nobody")
    assert (made.st_uid, made.st_gid) == (owner().uid, owner().gid)
    box.alive()


def test_chown_to_another_uid_is_refused(box: Box) -> None:
    result = box.as_root("touch owned && chown 1234:1234 owned; echo rc=$?; chown 0:0 owned")
    assert "rc=0" not in result.stdout, result.stdout
    made = os.lstat(box.project.root / "owned")
    assert (made.st_uid, made.st_gid) == (owner().uid, owner().gid)
    installed = box.as_root("install -o 1234 -g 1234 -m 4755 /bin/true installed; echo rc=$?")
    assert "rc=0" not in installed.stdout
    path = box.project.root / "installed"
    if path.exists():
        assert os.lstat(path).st_uid == owner().uid
        assert not host_mode(path) & (stat.S_ISUID | stat.S_ISGID)
    box.alive()


def test_copied_and_moved_setuid_binaries_lose_the_bits(box: Box) -> None:
    result = box.as_root(
        "test -u /usr/bin/sudo && cp -a /usr/bin/sudo sudo-copy; echo cp=$?; "
        "cp /bin/true /root/planted && chmod 6755 /root/planted && mv /root/planted planted; "
        "echo mv=$?; ln planted planted-link; echo ln=$?"
    )
    assert "cp=" in result.stdout, result.stderr
    root = box.project.root
    for name in ("sudo-copy", "planted", "planted-link"):
        path = root / name
        if path.exists():
            info = os.lstat(path)
            assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID), (name, oct(info.st_mode))
            assert info.st_uid == owner().uid, name
    assert (root / "planted").exists()
    box.alive()


def test_writing_into_a_host_setuid_file_clears_the_bit(box: Box) -> None:
    """A setuid file the host user made: guest root's write into it drops the bit."""
    planted = box.project.root / "host-suid"
    shutil.copy("/bin/true", planted)
    os.chown(planted, owner().uid, owner().gid)
    os.chmod(planted, 0o4755)
    assert host_mode(planted) & stat.S_ISUID
    result = box.as_root("printf x >> host-suid; echo rc=$?")
    assert "rc=0" in result.stdout, result.stdout + result.stderr
    assert not host_mode(planted) & (stat.S_ISUID | stat.S_ISGID)
    box.alive()


def test_security_capability_xattr_is_refused(box: Box) -> None:
    # setxattr("cap", "security.capability", 20 bytes, 20, 0): a file capability
    result = box.as_root(f"cp /bin/true cap; perl -e {shlex.quote(SETCAP_PL)}")
    assert result.stdout.strip() == "-1", result.stdout + result.stderr
    with pytest.raises(OSError):
        os.getxattr(box.project.root / "cap", "security.capability", follow_symlinks=False)
    box.alive()


def test_read_only_mount_and_seed_stay_read_only(box: Box) -> None:
    result = box.as_root(
        "touch /mnt/ro/planted 2>&1; chmod 4755 /mnt/ro/ro.txt 2>&1; "
        "mkdir -p /mnt/seed-again && mount -t virtiofs vibebox-seed /mnt/seed-again && "
        "touch /mnt/seed-again/planted 2>&1; "
        "mount -o remount,rw /mnt/ro 2>&1; touch /mnt/ro/after-remount 2>&1; "
        "umount /mnt/seed-again; true"
    )
    assert "Read-only file system" in result.stdout, result.stdout + result.stderr
    assert not (box.ro_dir / "planted").exists()
    assert not (box.ro_dir / "after-remount").exists()
    assert stat.S_IMODE(host_mode(box.ro_dir / "ro.txt")) == 0o644
    assert not (box.project.seed_dir / "planted").exists()
    box.alive()


def test_the_vibebox_mask_holds_against_guest_root(box: Box) -> None:
    key = box.project.client_key.read_bytes()
    result = box.as_root(
        "echo ls=$(ls -A .vibebox | wc -l); cat .vibebox/id_ed25519 >/dev/null 2>&1; "
        "echo cat=$?; mv .vibebox moved 2>/dev/null; echo mv=$?; "
        "rmdir .vibebox 2>/dev/null; echo rmdir=$?; "
        "touch .vibebox/disk.qcow2 2>/dev/null; echo touch=$?; "
        "umount .vibebox 2>/dev/null; echo after-umount=$(ls -A .vibebox | wc -l); "
        "mkdir -p /mnt/again && mount -t virtiofs vibebox-project /mnt/again && "
        "echo again=$(ls -A /mnt/again/.vibebox | wc -l); umount /mnt/again; true"
    )
    out = result.stdout
    # guest root may drop the guest's own tmpfs over .vibebox/: the host's mask is still there
    assert "ls=0" in out and "after-umount=0" in out and "again=0" in out, out + result.stderr
    for attempt in ("cat", "mv", "rmdir", "touch"):
        assert f"{attempt}=0" not in out, (attempt, out)
    assert box.project.cache.is_dir() and not (box.project.root / "moved").exists()
    assert box.project.client_key.read_bytes() == key
    box.alive()


def test_a_symlinked_parent_of_an_approved_mount_stops_the_next_start(box: Box) -> None:
    # Guest root turns sub/ into a symlink: the approved ./sub/inner would then be whatever
    # the link names on the host.
    result = box.as_root("mv sub sub.real && ln -s sub.real sub && ls sub/inner")
    assert result.returncode == 0, result.stderr
    assert (box.project.root / "sub").is_symlink()
    box.release()
    wait_until(lambda: box.domstate() in ("shut off", "missing"), timeout=180)

    refused = box.run("exec", "--", "true")
    assert refused.returncode != 0
    assert "/mnt/inner" in refused.stderr, refused.stderr
    assert "vibebox approve" in refused.stderr
    assert box.domstate() in ("shut off", "missing")

    # The host user repairs the directory: the same approval starts again.
    (box.project.root / "sub").unlink()
    (box.project.root / "sub.real").rename(box.project.root / "sub")
    box.alive()
    result = box.run("exec", "--", "cat", "/mnt/inner/approved.txt")
    assert result.stdout == "approved\n", result.stderr
    box.session_id = box.project.session_id.read_text().strip()
    box.hold()
    assert client.status_sync(box.socket_path) is not None


def test_a_shipped_vibebox_symlink_is_refused_before_anything_is_written(
    e2e_home_shared: Path,
) -> None:
    """A cloned repository ships .vibebox as a symlink: nothing is written through it."""
    root = Path(tempfile.mkdtemp(prefix="vbx-hostile-link-", dir="/tmp"))
    target = Path(tempfile.mkdtemp(prefix="vbx-hostile-target-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / paths.PROJECT_CACHE).symlink_to(target)
        result = run_cli(root, "exec", "--", "true", timeout=120)
        assert result.returncode != 0
        assert "is a symlink" in result.stderr, result.stderr
        assert list(target.iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
