"""Unit tests for QEMU's reachability check: mode bits, POSIX ACLs, the setfacl hint."""

from __future__ import annotations

import os
import pwd
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import access

QEMU = access.Identity("libvirt-qemu", 64055, frozenset({64055, 993}))


def _st(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, gid, 4096, 0, 0, 0))


def _acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


# ACL tags
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def test_mode_bits() -> None:
    assert not access.has_permission(_st(0o700), None, QEMU, access.SEARCH)
    assert access.has_permission(_st(0o711), None, QEMU, access.SEARCH)
    assert access.has_permission(_st(0o710, gid=993), None, QEMU, access.SEARCH)
    assert not access.has_permission(_st(0o701, gid=993), None, QEMU, access.SEARCH)  # group wins
    assert access.has_permission(_st(0o100, uid=64055), None, QEMU, access.SEARCH)
    assert not access.has_permission(_st(0o711), None, QEMU, access.READ)


def test_acl_named_user_entry_with_mask() -> None:
    # What `setfacl -m u:libvirt-qemu:x /root` leaves on a 0700 /root.
    granted = _acl(
        (USER_OBJ, 7, 0), (USER, 1, 64055), (GROUP_OBJ, 0, 0), (MASK, 1, 0), (OTHER, 0, 0)
    )
    assert access.has_permission(_st(0o710), granted, QEMU, access.SEARCH)
    masked = _acl(
        (USER_OBJ, 7, 0), (USER, 1, 64055), (GROUP_OBJ, 0, 0), (MASK, 0, 0), (OTHER, 0, 0)
    )
    assert not access.has_permission(_st(0o700), masked, QEMU, access.SEARCH)
    other_user = _acl(
        (USER_OBJ, 7, 0), (USER, 1, 1000), (GROUP_OBJ, 0, 0), (MASK, 1, 0), (OTHER, 0, 0)
    )
    assert not access.has_permission(_st(0o710), other_user, QEMU, access.SEARCH)
    by_group = _acl(
        (USER_OBJ, 7, 0), (GROUP_OBJ, 0, 0), (GROUP, 1, 993), (MASK, 1, 0), (OTHER, 0, 0)
    )
    assert access.has_permission(_st(0o710), by_group, QEMU, access.SEARCH)


def test_blockers_are_listed_outermost_first() -> None:
    modes = {"/": 0o755, "/root": 0o700, "/root/.vibebox": 0o700, "/root/.vibebox/images": 0o755}

    def fake_stat(path: Path) -> os.stat_result:
        if str(path) not in modes:
            raise FileNotFoundError(path)
        return _st(modes[str(path)])

    blockers = access.qemu_blockers(
        Path("/root/.vibebox/images/debian-12/base.qcow2"),
        QEMU,
        stat=fake_stat,
        getxattr=lambda p: None,
    )
    assert blockers == [Path("/root"), Path("/root/.vibebox")]
    assert access.setfacl_command(blockers) == (
        "setfacl -m u:libvirt-qemu:x /root && setfacl -m u:libvirt-qemu:x /root/.vibebox"
    )


def test_ensure_raises_with_the_exact_setfacl_hint(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        who = access.Identity("nobody-test", 65534, frozenset({65534}))
    else:
        pytest.skip("needs root to make a directory another user cannot enter")
    private = tmp_path / "private"
    (private / "images").mkdir(parents=True)
    private.chmod(0o700)
    tmp_path.chmod(0o755)
    with pytest.raises(access.QemuAccessError) as err:
        access.ensure_qemu_can_reach(private / "images" / "base.qcow2", identity=who)
    assert isinstance(err.value, VMError)
    assert err.value.blockers[-1] == private
    assert err.value.hint.endswith(f"setfacl -m u:nobody-test:x {private}")
    assert "search permission only" in err.value.message


def test_missing_account_means_nothing_to_check() -> None:
    access.ensure_qemu_can_reach(Path("/root/x"), user="no-such-user-vibebox")
    assert access.grant_qemu_access(Path("/root/x"), user="no-such-user-vibebox") == []


def test_qemu_blocked_dirs_and_setfacl(tmp_path: Path) -> None:
    try:
        pwd.getpwnam(access.QEMU_USER)
    except KeyError:
        assert access.qemu_blocked_dirs([tmp_path / "x"]) == []
        return
    if os.geteuid() != 0:
        pytest.skip("needs root to build directories owned by someone else")
    tmp_path.chmod(0o755)
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    disk = closed / "inner" / "disk.qcow2"

    def blocked_here() -> list[Path]:  # pytest's own base directories are 0700: ignore them
        return [d for d in access.qemu_blocked_dirs([disk]) if d.is_relative_to(tmp_path)]

    assert blocked_here() == [closed]
    subprocess.run(["setfacl", "-m", f"u:{access.QEMU_USER}:x", str(closed)], check=True)
    assert blocked_here() == []
    subprocess.run(["setfacl", "-m", "m::-", str(closed)], check=True)  # the mask wins
    assert blocked_here() == [closed]
    assert access.setfacl_command([Path("/root"), Path("/a b")]) == (
        "setfacl -m u:libvirt-qemu:x /root && setfacl -m u:libvirt-qemu:x '/a b'"
    )
