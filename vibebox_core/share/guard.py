"""The share guard: what guest root can do through a virtiofs share, decided on the host.

Debian 12's virtiofsd (C, qemu 7.2) runs as root under libvirtd and trusts the guest: every
request runs with the guest caller's uid/gid as effective ids, and chmod/chown/mknod are applied
as root. Guest root could leave setuid binaries, device nodes and files of any owner in the
host's project directory, and a symlink swapped into a mount's path would redirect the share.
libvirt runs a per-share wrapper instead of virtiofsd; it execs ``launcher.c``, which:

* serves exactly the approved directory: it walks the path as root with ``O_PATH|O_NOFOLLOW``
  right before virtiofsd starts, compares device and inode with the approved pin
  (:mod:`vibebox_core.share.pins`) and bind-mounts *that descriptor* (via ``/proc/self/fd``) onto a
  staging directory on a private tmpfs, which virtiofsd then serves. No path is looked up twice,
  so there is no window in which a swapped symlink is followed;
* keeps the earlier guarantees in the same private mount namespace: ``.vibebox/`` covered by an
  empty read-only tmpfs, read-only shares as a read-only bind mount (the host kernel enforces
  both, so guest root cannot undo them);
* drops capabilities virtiofsd never needs for a share (``-o modcaps=-mknod:-setfcap:-fsetid``)
  and keeps extended attributes off (``-o no_xattr``): without ``CAP_MKNOD`` the kernel refuses
  every device node and rename whiteout even if all else failed;
* preloads ``shim.c`` into virtiofsd, which rewrites each effective-id switch to the share
  owner, strips ``S_ISUID|S_ISGID`` from every mode, refuses char/block nodes, chown to anyone
  else and ``security.*``/``trusted.*`` xattrs — in the libc functions and in ``syscall()``.

Why a preloaded library rather than a scan after the fact or a different daemon: a scan leaves
a window in which the host user may run the planted binary (and cannot fix a file that was
chowned away), the Rust virtiofsd with ``--translate-uid`` is not in Debian 12, and the
library changes the calls before they reach the kernel, so nothing is ever created wrong. The
rules are small and follow virtiofsd's own pattern (``setresuid(-1, id, -1)`` to switch,
the same call back to its own id to restore), so they are checked without a VM in
``tests/core/share/test_share_shim.py`` and against the real virtiofsd in
``tests/e2e/test_hostile_shares.py``.

The share owner (:func:`share_owner`) is the user running vibebox. When that is root, it is the
owner of the project directory (e.g. ``chown 1000:1000`` of the project makes guest files
``1000:1000``); root-owned projects then get root-owned files, which are the user's own. A
setgid directory the *host user* made keeps its kernel semantics (new entries take its group);
the guest can never make one. ``chown`` *to* the share owner stays allowed (``cp -a`` and
``install`` by the guest user do it), also for a file in the share someone else owns: the
owner's directory already lets them replace it. Without ``CAP_FSETID`` a write by the guest into
an existing setuid file of the host user clears that bit, as the kernel does for any
unprivileged writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from vibebox_core import paths
from vibebox_core.errors import VirtiofsdError
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor import names, virtiofs
from vibebox_core.share.pins import MountPinError, PinnedDir, check_pinned, pin

#: The C compiler the guard is built with (``$CC`` overrides).
DEFAULT_CC = "cc"
_SHIM_FLAGS = ("-O2", "-Wall", "-Wextra", "-fPIC", "-shared", "-fvisibility=hidden")
_LAUNCHER_FLAGS = ("-O2", "-Wall", "-Wextra")
_COMPILE_TIMEOUT = 120.0


class GuardBinaries(NamedTuple):
    """The compiled guard: the launcher libvirt runs and the library it preloads."""

    launcher: Path
    shim: Path


@dataclass(frozen=True)
class ShareOwner:
    """The uid/gid every file the guest creates through a share belongs to on the host."""

    uid: int
    gid: int


def _source(name: str) -> bytes:
    return resources.files("vibebox_core.share").joinpath(name).read_bytes()


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _compiler() -> str:
    cc = os.environ.get("CC") or DEFAULT_CC
    found = shutil.which(cc)
    if found is None:
        raise VirtiofsdError(
            f"cannot build the share guard: no C compiler ({cc!r}) was found",
            hint="install gcc (Debian: apt-get install gcc), or set CC to a C compiler",
        )
    return found


def _compile(cc: str, source: bytes, name: str, flags: tuple[str, ...], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vibebox-build-", dir=target.parent) as tmp:
        src = Path(tmp) / name
        src.write_bytes(source)
        out = Path(tmp) / "out"
        try:
            done = subprocess.run(
                [cc, *flags, "-o", str(out), str(src)],
                capture_output=True,
                text=True,
                timeout=_COMPILE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VirtiofsdError(
                f"cannot build the share guard ({name}): {exc}",
                hint="check that the C compiler works: cc --version",
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise VirtiofsdError(
                f"cannot build the share guard ({name}): {' / '.join(tail) or 'cc failed'}",
                hint="install gcc and the C library headers (Debian: apt-get install gcc)",
            )
        os.chmod(out, 0o755)
        os.replace(out, target)


def build_guard(directory: Path | None = None) -> GuardBinaries:
    """Compile the launcher and the preload library unless built from these sources already.

    The file names carry a digest of the source and the flags, so an upgrade builds new ones
    and a VM still running keeps the files it was started with.

    Args:
        directory: where; default ``$VIBEBOX_HOME/bin``.

    Raises:
        VirtiofsdError: no C compiler, or the build failed (its last lines quoted).
    """
    base = directory if directory is not None else paths.vibebox_home() / paths.BIN_DIR
    shim_src, launcher_src = _source("shim.c"), _source("launcher.c")
    shim = base / f"{paths.SHARE_GUARD_LIB}-{_digest(shim_src, ' '.join(_SHIM_FLAGS).encode())}.so"
    launcher = base / (
        f"{paths.SHARE_GUARD_LAUNCHER}-{_digest(launcher_src, ' '.join(_LAUNCHER_FLAGS).encode())}"
    )
    missing = [p for p in (shim, launcher) if not os.access(p, os.X_OK)]
    if missing:
        cc = _compiler()
        try:
            if shim in missing:
                _compile(cc, shim_src, "shim.c", _SHIM_FLAGS, shim)
            if launcher in missing:
                _compile(cc, launcher_src, "launcher.c", _LAUNCHER_FLAGS, launcher)
        except OSError as exc:
            raise VirtiofsdError(
                f"cannot build the share guard in {base}: {exc.strerror or exc}",
                hint=f"check that {base} is writable",
            ) from None
    return GuardBinaries(launcher=launcher, shim=shim)


def share_owner(project_root: PinnedDir | None = None) -> ShareOwner:
    """The host user files created through the shares belong to.

    The user running vibebox; when that is root, the owner of the project directory (so a
    project ``chown``-ed to the guest user's ids stays writable for it in the guest).
    """
    uid, gid = os.getuid(), os.getgid()
    if uid != 0 or project_root is None:
        return ShareOwner(uid, gid)
    info = os.stat(project_root.path, follow_symlinks=False)
    return ShareOwner(info.st_uid, info.st_gid)


def wrapper_script(
    binaries: GuardBinaries,
    pinned: PinnedDir,
    *,
    read_only: bool,
    owner: ShareOwner,
    label: str,
    real: Path = virtiofs.VIRTIOFSD,
) -> str:
    """The per-share script libvirt runs as virtiofsd: it execs the launcher with the pin."""
    args = [
        str(binaries.launcher),
        "--real",
        str(real),
        "--guard",
        str(binaries.shim),
        "--path",
        pinned.path,
        "--dev",
        str(pinned.dev),
        "--ino",
        str(pinned.ino),
        "--uid",
        str(owner.uid),
        "--gid",
        str(owner.gid),
        "--label",
        label,
    ]
    if read_only:
        args.append("--ro")
    line = " ".join(shlex.quote(a) for a in args)
    mode = "read-only" if read_only else "read-write"
    return (
        "#!/bin/sh\n"
        f"# vibebox: serve share {shlex.quote(label)} ({mode}) through the share guard\n"
        "# (vibebox_core/share/guard.py). Rewritten at every start of the session.\n"
        f'exec {line} -- "$@"\n'
    )


def _write_wrapper(target: Path, content: str) -> None:
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(target, content, mode=stat.S_IRWXU)
    except OSError as exc:
        raise VirtiofsdError(
            f"cannot write the share wrapper {target}: {exc.strerror or exc}",
            hint=f"check that {target.parent} is writable",
        ) from None


def _pin_for(
    share: virtiofs.Share, guest: str | None, fresh: bool, pins: Mapping[str, Mapping[str, Any]]
) -> PinnedDir:
    if fresh:
        try:
            return pin(share.source)
        except MountPinError as exc:
            raise VirtiofsdError(
                f"cannot share {share.source}: {exc.message}", hint=exc.hint
            ) from None
    recorded = pins.get(guest or "")
    if recorded is None:
        raise VirtiofsdError(
            f"mount {str(share.source)!r} → {guest!r} has no recorded directory (device/inode)",
            hint="approve the project's mounts again: vibebox approve",
        )
    approved = PinnedDir.from_dict(recorded)
    return check_pinned(approved, mount=f"{approved.path} → {guest}")


def guard_shares(
    session_id: str,
    project_root: Path,
    shares: Iterable[tuple[virtiofs.Share, str | None]],
    pins: Mapping[str, Mapping[str, Any]],
    *,
    directory: Path | None = None,
    real: Path = virtiofs.VIRTIOFSD,
) -> list[virtiofs.Share]:
    """Pin every share, write its wrapper and return the shares as the domain XML serves them.

    Args:
        session_id: the session (names the wrappers).
        project_root: the project directory; it and shares inside its ``.vibebox/`` (the
            seed) are pinned now, as they are not the guest's to move.
        shares: each share with the guest path it is approved under (None: not a mount).
        pins: the approved pins by guest path (:func:`vibebox_core.config.snapshot.approved_pins`).
        directory: where the guard and wrappers go; default ``$VIBEBOX_HOME/bin``.
        real: the virtiofsd the launcher execs.

    Returns:
        The shares with ``source`` set to the pinned path and ``binary`` to their wrapper.

    Raises:
        MountChangedError: an approved mount's path now reaches another directory.
        VirtiofsdError: a share cannot be pinned, or the guard cannot be built or written.
    """
    binaries = build_guard(directory)
    root_pin = pin(project_root)
    owner = share_owner(root_pin)
    base = directory if directory is not None else paths.vibebox_home() / paths.BIN_DIR
    sid = names.canonical_session_id(session_id)
    out: list[virtiofs.Share] = []
    for share, guest in shares:
        # The project and its .vibebox/ (the seed) are not the guest's to move: pinned now.
        # Every other share (mounts inside the project too) must match its approved pin.
        cache = project_root / paths.PROJECT_CACHE
        fresh = share.source == cache or cache in share.source.parents
        pinned = root_pin if share.source == project_root else _pin_for(share, guest, fresh, pins)
        label = f"{sid}:{share.tag}"
        wrapper = base / paths.SHARE_WRAPPERS_DIR / f"{sid}-{share.tag}"
        _write_wrapper(
            wrapper,
            wrapper_script(
                binaries, pinned, read_only=share.read_only, owner=owner, label=label, real=real
            ),
        )
        out.append(virtiofs.Share(Path(pinned.path), share.tag, share.read_only, wrapper))
    return out


def remove_wrappers(session_id: str, directory: Path | None = None) -> None:
    """Remove a deleted session's share wrappers (what is already gone is fine)."""
    base = directory if directory is not None else paths.vibebox_home() / paths.BIN_DIR
    prefix = f"{names.canonical_session_id(session_id)}-"
    try:
        entries = list((base / paths.SHARE_WRAPPERS_DIR).iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix):
            with contextlib.suppress(OSError):
                entry.unlink()
