"""The kernel's file helpers: the one atomic writer, the one ``flock``, the bounded read.

Files vibebox writes (keys, the seed, the guest's address, the network definition,
``vibebox.toml``, the approved snapshot, helper scripts) are replaced whole by
:func:`write_atomic`: a reader — QEMU's virtiofsd, OpenSSH, another vibebox — sees the old
content or the new, never half of it.

:func:`lock_file` takes the exclusive ``flock`` that serialises vibebox processes over one
file (the session index, a supervisor's start/stop lock, an image build).

:func:`read_bounded` reads a file the guest can write. The project directory is shared
read-write with the guest, so ``vibebox.toml`` (and anything else vibebox reads from the
project) may be replaced by guest root with a symlink to ``/dev/zero``, a FIFO, a device node
or a file of many gigabytes. Each of those would hang or exhaust a naive reader on the host.
:func:`read_bounded` opens with ``O_NOFOLLOW`` (a symlink as the last component is refused,
not followed: it could point anywhere on the host) and ``O_NONBLOCK`` (opening a FIFO never
waits for a writer), checks with ``fstat`` that it got a regular file of at most ``limit``
bytes, and reads at most ``limit + 1`` bytes, so a file that grows while being read is refused
too. Every refusal is one :class:`ProjectFileError`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from vibebox_core.errors import ConfigError

#: The largest project file vibebox reads (``vibebox.toml`` is a few hundred bytes).
MAX_PROJECT_FILE = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Writing


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int | None = 0o644,
    durable: bool = False,
    exclusive: bool = False,
) -> None:
    """Replace ``path`` with ``data`` through a temp file in the same directory and a rename.

    The temp file is private (``0600``) from the start and set to exactly ``mode`` whatever
    the umask before anything is written into it, so a private key is never world-readable,
    not even for a moment. It never outlives the call.

    Args:
        path: the file to replace (or create).
        data: the new content; text is written as UTF-8.
        mode: the file's permission bits; None keeps those of the file replaced (a new file
            gets ``0666`` minus the umask, as ``open()`` would give it).
        durable: ``fsync`` the data before the rename and the directory after it (a file whose
            loss would hurt: the user's ``vibebox.toml``, the session index).
        exclusive: never replace: raise :class:`FileExistsError` when ``path`` exists (two
            first runs never clobber each other).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists.
        OSError: the directory is not writable, the disk is full ...
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is None:
                mode = 0o666 & ~_umask()
                if path.exists():
                    mode = path.stat().st_mode & 0o7777
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if exclusive:
            # link() fails when the target exists, unlike rename().
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: check, then rename
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if durable:  # the rename itself survives a crash only once the directory is synced
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


# ---------------------------------------------------------------------------------------------
# Locking


def lock_file(path: Path, *, mode: int = 0o600, wait: bool = True) -> int:
    """Open (creating it with ``mode``) and exclusively ``flock`` ``path``; return the descriptor.

    Closing the descriptor releases the lock; so does the process's exit, however it ends.

    Args:
        path: the lock file (its directory must exist).
        mode: the permission bits of a lock file created here.
        wait: block until another holder releases it; otherwise fail at once.

    Raises:
        BlockingIOError: ``wait`` is false and another process holds the lock.
        OSError: the file cannot be opened or locked.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------------------------
# Reading a file the guest can write


class ProjectFileError(ConfigError):
    """A project file is not a regular file, is a symlink, or is too large to read."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded(path: Path, *, limit: int = MAX_PROJECT_FILE, what: str = "") -> bytes:
    """Return the bytes of ``path`` when it is a regular file of at most ``limit`` bytes.

    Args:
        path: the file; a symlink as its last component is refused.
        limit: the largest size accepted, in bytes.
        what: how to name the file in errors (default: its name).

    Raises:
        FileNotFoundError: there is no such file (callers decide what missing means).
        ProjectFileError: a symlink, a FIFO, a device, a directory, a file larger than
            ``limit``, or unreadable; the message names the file and the hint the fix.
    """
    name = what or path.name
    fix = f"replace {path} with a regular file (delete it and vibebox writes the defaults)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ProjectFileError(
                f"{path} is a symlink; vibebox reads {name} only as a regular file "
                "(a program in the guest could point it anywhere on the host)",
                hint=fix,
            ) from None
        if exc.errno == errno.EISDIR:
            raise ProjectFileError(
                f"{path} is a directory, expected the {name} file", hint=fix
            ) from None
        raise ProjectFileError(
            f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ProjectFileError(
                f"{path} is {_kind(info.st_mode)}, expected the {name} file as a regular file",
                hint=fix,
            )
        if info.st_size > limit:
            raise ProjectFileError(
                f"{path} is {info.st_size} bytes; vibebox reads {name} only up to {limit} bytes",
                hint=f"shorten {path}, or delete it and vibebox writes the defaults",
            )
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 65536))
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise ProjectFileError(
                f"{path} grew beyond {limit} bytes while it was read",
                hint=f"shorten {path}, or delete it and vibebox writes the defaults",
            )
        return data
    except OSError as exc:
        raise ProjectFileError(
            f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions"
        ) from None
    finally:
        os.close(fd)


def read_bounded_text(path: Path, *, limit: int = 4096, what: str = "") -> str:
    """:func:`read_bounded` decoded as UTF-8 (invalid bytes replaced), for small state files."""
    return read_bounded(path, limit=limit, what=what).decode("utf-8", errors="replace")
