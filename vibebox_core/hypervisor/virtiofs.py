"""virtiofs shares: the :class:`Share` model, the virtiofsd wrappers, and virtiofsd's own log.

libvirt 9.0 refuses ``<readonly/>`` on virtiofs shares ("virtiofs does not yet support
read-only mode") and bookworm's virtiofsd has no read-only option. Shares are therefore served
through small wrappers (:func:`virtiofsd_wrapper_script`) that run virtiofsd in a private mount
namespace on a bind mount of the source — read-only for read-only shares — with ``.vibebox/``
covered by an empty tmpfs. The host kernel enforces both, so root in the guest cannot undo them
(a guest-side mask alone could be unmounted by guest root, who could then swap the instance
disk or console log for symlinks that libvirt follows as root). Sessions now give every share
its own wrapper (:attr:`Share.binary`) from the share guard (:mod:`vibebox_core.share.guard`),
which does the same in C from a pinned directory and also keeps setuid bits, device nodes and
foreign owners off the host (SECURITY.md, "Against root in the guest: shares"); the shell
wrappers below remain for callers that pass no per-share binary.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path
from typing import NamedTuple

from vibebox_core import paths
from vibebox_core.errors import VMError
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor.console import read_console_tail

#: virtiofsd shipped by Debian 12's qemu (package qemu-system-x86).
VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")


class Share(NamedTuple):
    """One virtiofs share: host directory, mount tag, read-only in the guest.

    ``binary`` is the program libvirt runs as this share's virtiofsd: the per-share wrapper of
    the share guard (:func:`vibebox_core.share.guard.guard_shares`). None falls back to
    ``DomainSpec.virtiofsd`` / ``DomainSpec.virtiofsd_readonly``.
    """

    source: Path
    tag: str
    read_only: bool
    binary: Path | None = None


class VirtiofsdWrappers(NamedTuple):
    """The two wrappers libvirt runs instead of virtiofsd (see :func:`virtiofsd_wrapper_script`)."""

    readwrite: Path
    readonly: Path


def virtiofsd_wrapper_script(*, read_only: bool, real: Path = VIRTIOFSD) -> str:
    """Return a wrapper that serves a virtiofs share with the session cache hidden.

    libvirtd runs it as root with virtiofsd's arguments (``--fd=N -o source=DIR,...``). It
    enters a private mount namespace, bind-mounts DIR onto itself, covers ``DIR/.vibebox`` with
    an empty read-only tmpfs, makes DIR read-only when ``read_only`` and execs the real virtiofsd
    there (same pid, so libvirt's pid file stays right). virtiofsd's sandbox inherits these
    mounts, so the guest, even as root, can neither write a read-only share nor reach
    ``.vibebox/``: the instance disk, keys and console log there are opened by libvirt, QEMU and
    virtlogd on the host, and a guest able to swap them for symlinks could make root on the host
    write or share any file.
    """
    mode = "read-only, " if read_only else ""
    remount = 'mount -o remount,bind,ro -- "$src"\n' if read_only else ""
    return f"""#!/bin/sh
# vibebox: run virtiofsd on a {mode}view of its shared directory with .vibebox/ hidden. Written by
# vibebox (vibebox_core/hypervisor/virtiofs.py); libvirt 9.0 refuses <readonly/> on virtiofs.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
if [ "${{1:-}}" != "--vibebox-stage2" ]; then
    exec unshare --mount --propagation private -- "$0" --vibebox-stage2 "$@"
fi
shift
src=""
for arg in "$@"; do
    case "$arg" in
        source=*) src="${{arg#source=}}"; src="${{src%%,*}}" ;;
    esac
done
if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "vibebox virtiofsd wrapper: no source directory in: $*" >&2
    exit 1
fi
mount --bind -- "$src" "$src"
if [ -d "$src/{paths.PROJECT_CACHE}" ] && [ ! -L "$src/{paths.PROJECT_CACHE}" ]; then
    mount -t tmpfs -o ro,nosuid,nodev,noexec,mode=0555,size=4k vibebox-masked \
        "$src/{paths.PROJECT_CACHE}"
fi
{remount}exec {real} "$@"
"""


def _install_script(target: Path, content: str) -> None:
    try:
        if target.read_text() == content and os.access(target, os.X_OK):
            return
    except OSError:
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        write_atomic(target, content, mode=mode)
    except OSError as exc:
        raise VMError(
            f"cannot write the virtiofs helper {target}: {exc.strerror or exc}",
            hint=f"check that {target.parent} is writable",
        ) from exc


def install_virtiofsd_wrappers(
    directory: Path | None = None, real: Path = VIRTIOFSD
) -> VirtiofsdWrappers:
    """Write both virtiofsd wrappers (mode 0755) where missing or outdated.

    Args:
        directory: where; default ``$VIBEBOX_HOME/bin``.
        real: the virtiofsd they run.

    Returns:
        Their paths, for ``DomainSpec.virtiofsd`` and ``DomainSpec.virtiofsd_readonly``.
    """
    rw = (
        paths.virtiofsd_readwrite_path()
        if directory is None
        else directory / paths.VIRTIOFSD_READWRITE
    )
    ro = (
        paths.virtiofsd_readonly_path()
        if directory is None
        else directory / paths.VIRTIOFSD_READONLY
    )
    _install_script(rw, virtiofsd_wrapper_script(read_only=False, real=real))
    _install_script(ro, virtiofsd_wrapper_script(read_only=True, real=real))
    return VirtiofsdWrappers(readwrite=rw, readonly=ro)


def install_readonly_virtiofsd(path: Path | None = None, real: Path = VIRTIOFSD) -> Path:
    """Install both wrappers (in ``path``'s directory) and return the read-only one.

    Kept for callers written before :func:`install_virtiofsd_wrappers`; given this path as
    ``DomainSpec.virtiofsd_readonly``, read-write shares use the read-write wrapper next to it
    as well.
    """
    return install_virtiofsd_wrappers(path.parent if path is not None else None, real).readonly


#: Where libvirtd (as root, qemu:///system) writes each virtiofsd's output.
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")


def virtiofsd_log_reason(domain_name: str, log_dir: Path = QEMU_LOG_DIR) -> str:
    """The last line virtiofsd wrote for the newest share of ``domain_name``, or ``""``.

    libvirt logs each share's virtiofsd to ``NAME-fsN-virtiofsd.log``; when one refuses its
    share (bookworm's C virtiofsd: "source is not a directory" for a symlink) QEMU only
    reports that the socket refused, so this line is the real cause.
    """
    try:
        logs = sorted(
            log_dir.glob(f"{glob.escape(domain_name)}-fs*-virtiofsd.log"),
            key=lambda p: p.stat().st_mtime,
        )
    except OSError:
        return ""
    for log in reversed(logs):
        tail = read_console_tail(log, max_lines=1)
        if tail:
            return tail[:300]
    return ""
