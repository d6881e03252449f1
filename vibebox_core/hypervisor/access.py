"""Can QEMU reach a file? Under ``qemu:///system`` it runs as ``libvirt-qemu``, not as you.

libvirt re-owns the disk and kernel files it hands to QEMU, but not the directories above them:
a VM whose files sit under a home directory that ``libvirt-qemu`` (uid 64055 on Debian) may not
traverse fails to start with "Cannot access storage file … (as uid:64055, gid:64055):
Permission denied", as seen on the lab machines. ``~/.vibebox/images`` under ``/root`` (mode
0700) and ``<project>/.vibebox`` under a private home both hit it.

vibebox handles it the way virt-manager does: :func:`ensure_qemu_can_reach` finds the
directories that block the way and raises :class:`QemuAccessError`, whose hint is the exact
``setfacl -m u:libvirt-qemu:x <dir>`` command; after the user agrees, the CLI or dashboard
calls :func:`grant_qemu_access`, which runs that command. The grant is search permission only
(``x``): QEMU can then open files it is given by name, never list or read the directory.

The check reads mode bits *and* POSIX ACLs (``system.posix_acl_access``), so a directory
already opened with ``setfacl`` is recognised; :func:`qemu_blockers` is pure given a
``stat``/``getxattr`` pair, which the unit tests fake.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import stat as stat_module
import struct
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vibebox_core.errors import VMError

#: The account QEMU runs as under qemu:///system on Debian.
QEMU_USER = "libvirt-qemu"
#: Its uid/gid on Debian, used when the account cannot be looked up.
QEMU_DEFAULT_ID = 64055

ACL_XATTR = "system.posix_acl_access"
_ACL_USER_OBJ = 0x01
_ACL_USER = 0x02
_ACL_GROUP_OBJ = 0x04
_ACL_GROUP = 0x08
_ACL_MASK = 0x10
_ACL_OTHER = 0x20
_ACL_VERSION = 2

SEARCH = 1
WRITE = 2
READ = 4


class QemuAccessError(VMError):
    """QEMU (as ``libvirt-qemu``) cannot reach a file vibebox must hand it.

    Attributes:
        path: the file or directory QEMU must reach.
        blockers: directories it may not traverse, outermost first.
    """

    def __init__(self, message: str, *, hint: str, path: Path, blockers: tuple[Path, ...]):
        super().__init__(message, hint=hint)
        self.path = path
        self.blockers = blockers


@dataclass(frozen=True)
class Identity:
    """A user as the kernel checks it: uid, primary gid and supplementary groups."""

    name: str
    uid: int
    gids: frozenset[int]


def qemu_identity(user: str = QEMU_USER) -> Identity | None:
    """Look up the QEMU account; None when it does not exist (no libvirt-daemon-system)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    gids = {entry.pw_gid}
    with contextlib.suppress(OSError):
        gids.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
    return Identity(user, entry.pw_uid, frozenset(gids))


def parse_acl(blob: bytes) -> list[tuple[int, int, int]]:
    """Decode a ``system.posix_acl_access`` value into ``(tag, perm, id)`` entries."""
    if len(blob) < 4 or struct.unpack_from("<I", blob)[0] != _ACL_VERSION:
        return []
    entries = []
    for offset in range(4, len(blob) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", blob, offset)
        entries.append((tag, perm, ident))
    return entries


def has_permission(st: os.stat_result, acl: bytes | None, who: Identity, want: int) -> bool:
    """Whether ``who`` has ``want`` (a mask of READ/WRITE/SEARCH) on a file, by the POSIX
    ACL access-check algorithm (plain mode bits when there is no ACL)."""
    if who.uid == 0:
        return True
    entries = parse_acl(acl) if acl else []
    if not entries:
        if who.uid == st.st_uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in who.gids:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & want == want
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 7)
    if who.uid == st.st_uid:
        perm = next((p for t, p, _ in entries if t == _ACL_USER_OBJ), 0)
        return perm & want == want
    for tag, perm, ident in entries:
        if tag == _ACL_USER and ident == who.uid:
            return perm & mask & want == want
    group_perms = [
        perm
        for tag, perm, ident in entries
        if (tag == _ACL_GROUP_OBJ and st.st_gid in who.gids)
        or (tag == _ACL_GROUP and ident in who.gids)
    ]
    if group_perms:
        return any(perm & mask & want == want for perm in group_perms)
    perm = next((p for t, p, _ in entries if t == _ACL_OTHER), 0)
    return perm & want == want


def _getxattr(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, ACL_XATTR)
    except OSError:
        return None


def qemu_blockers(
    path: Path,
    who: Identity,
    *,
    stat: Callable[[Path], os.stat_result] = os.stat,
    getxattr: Callable[[Path], bytes | None] = _getxattr,
) -> list[Path]:
    """Directories above ``path`` (and ``path`` itself, if a directory) that ``who`` may not
    search, outermost first. Missing directories are skipped (they are created later)."""
    path = Path(os.path.abspath(path))
    candidates = [*reversed(path.parents), path]
    blockers = []
    for directory in candidates:
        try:
            st = stat(directory)
        except OSError:
            continue
        if not stat_module.S_ISDIR(st.st_mode):
            continue
        if not has_permission(st, getxattr(directory), who, SEARCH):
            blockers.append(directory)
    return blockers


def qemu_blocked_dirs(files: Iterable[Path], *, user: str = QEMU_USER) -> list[Path]:
    """Directories on the way to any of ``files`` that ``user`` may not search, outermost
    first and each once; empty when the account does not exist here (e.g. a remote host)."""
    who = qemu_identity(user)
    if who is None:
        return []
    blocked: list[Path] = []
    for file in files:
        blocked.extend(d for d in qemu_blockers(Path(file), who) if d not in blocked)
    return blocked


def setfacl_command(directories: Iterable[Path], user: str = QEMU_USER) -> str:
    """The shell command that grants ``user`` search permission on ``directories``."""
    return " && ".join(shlex.join(["setfacl", "-m", f"u:{user}:x", str(d)]) for d in directories)


def ensure_qemu_can_reach(
    path: Path, *, user: str = QEMU_USER, identity: Identity | None = None
) -> None:
    """Raise :class:`QemuAccessError` if QEMU (as ``user``) cannot traverse to ``path``.

    Does nothing when the account does not exist (QEMU then runs as someone else, e.g. under
    ``qemu:///session``). Call it for the image directory and the project's ``.vibebox/``
    before defining a domain; on error, ask the user and call :func:`grant_qemu_access`.
    """
    who = identity or qemu_identity(user)
    if who is None:
        return
    blockers = qemu_blockers(path, who)
    if not blockers:
        return
    names = ", ".join(str(b) for b in blockers)
    raise QemuAccessError(
        f"QEMU runs as {who.name} (uid {who.uid}) and cannot reach {path}: it may not enter "
        f"{names}. vibebox can allow it to pass through (search permission only, no listing "
        "or reading)",
        hint=setfacl_command(blockers, who.name),
        path=Path(path),
        blockers=tuple(blockers),
    )


def grant_qemu_access(path: Path, *, user: str = QEMU_USER) -> list[Path]:
    """Grant ``user`` search permission on every directory that blocks ``path`` (ask first).

    Returns:
        The directories that were changed (empty if none blocked).

    Raises:
        VMError: ``setfacl`` is missing or refused (e.g. not the owner: the hint is the same
            command with sudo).
    """
    who = qemu_identity(user)
    if who is None:
        return []
    blockers = qemu_blockers(path, who)
    for directory in blockers:
        command = ["setfacl", "-m", f"u:{user}:x", str(directory)]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise VMError(
                "setfacl is not installed", hint="apt-get install acl, then try again"
            ) from None
        if result.returncode != 0:
            raise VMError(
                f"could not let {user} enter {directory}: {result.stderr.strip()}",
                hint="sudo " + shlex.join(command),
            )
    return blockers
