"""Reading a file the guest can write: only a regular file of bounded size, never a symlink.

The project directory is shared read-write with the guest, so ``vibebox.toml`` (and anything
else vibebox reads from the project) may be replaced by guest root with a symlink to
``/dev/zero``, a FIFO, a device node or a file of many gigabytes. Each of those would hang or
exhaust a naive reader on the host. :func:`read_bounded` opens with ``O_NOFOLLOW`` (a symlink
as the last component is refused, not followed: it could point anywhere on the host) and
``O_NONBLOCK`` (opening a FIFO never waits for a writer), checks with ``fstat`` that it got a
regular file of at most ``limit`` bytes, and reads at most ``limit + 1`` bytes, so a file that
grows while being read is refused too. Every refusal is one :class:`ProjectFileError`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vibebox_core.errors import ConfigError

#: The largest project file vibebox reads (``vibebox.toml`` is a few hundred bytes).
MAX_PROJECT_FILE = 1024 * 1024


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
