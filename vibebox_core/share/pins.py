"""Host directories of shares, resolved without symlinks and pinned by device and inode.

The guest can write the project directory, so it can turn ``sub`` into a symlink after the user
approved ``./sub/inner`` as a mount: the path then names another directory while its text (and
the approval digest) is unchanged. A share is therefore approved as a directory, not as text:

* :func:`pin` walks the path from ``/`` one component at a time with
  ``O_PATH | O_NOFOLLOW`` and refuses a symlink at any component and a component that is not
  a directory. The result, :class:`PinnedDir`, holds the path with the device and inode it
  reached; the approval snapshot stores them.
* :func:`check_pinned` (at every start) pins the path again and refuses when it no longer
  reaches the same device and inode, naming the mount and the way to re-approve it.
* The virtiofsd launcher (``vibebox_core/share/launcher.c``) repeats the same walk as root right
  before virtiofsd starts and serves the directory it opened (a bind mount from that file
  descriptor), so there is no window between the check and the use.

``.`` and ``..`` components are refused instead of being resolved: with no symlinks they would
mean the lexical parent, but a reader of the approval should see the directory that is served
exactly as written. Callers normalise first (``os.path.normpath``) if they want to accept them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from vibebox_core.errors import VibeboxError

_WALK_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class MountPinError(VibeboxError):
    """A share's host path cannot be pinned (a symlink, not a directory, missing)."""


class MountChangedError(MountPinError):
    """A share's host path no longer reaches the directory that was approved."""


@dataclass(frozen=True)
class PinnedDir:
    """A directory reached without symlinks: its absolute path, device and inode.

    Attributes:
        path: absolute path as walked (no ``.``/``..``, no trailing slash, no symlinks).
        dev: ``st_dev`` of the directory.
        ino: ``st_ino`` of the directory.
    """

    path: str
    dev: int
    ino: int

    def to_dict(self) -> dict[str, Any]:
        """The pin as plain data (for TOML/JSON snapshots)."""
        return {"path": self.path, "dev": self.dev, "ino": self.ino}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PinnedDir:
        """Read a pin written by :meth:`to_dict`.

        Raises:
            MountPinError: a key is missing or has the wrong type.
        """
        path, dev, ino = data.get("path"), data.get("dev"), data.get("ino")
        if not isinstance(path, str) or not _is_int(dev) or not _is_int(ino):
            raise MountPinError(
                f"a recorded share pin is damaged: {dict(data)!r}",
                hint="approve the project's mounts again with: vibebox approve",
            )
        assert isinstance(dev, int) and isinstance(ino, int)
        return cls(path, dev, ino)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def components(path: str | os.PathLike[str]) -> list[str]:
    """The components of an absolute path, refusing ``.``/``..`` and empty names.

    Raises:
        MountPinError: the path is relative, contains NUL, ``.`` or ``..``.
    """
    text = os.fspath(path)
    if "\0" in text:
        raise MountPinError(f"mount path {text!r} contains a NUL byte")
    if not text.startswith("/"):
        raise MountPinError(
            f"mount path {text!r} is not absolute", hint="use an absolute path or ~/…"
        )
    parts = [part for part in text.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise MountPinError(
                f"mount path {text!r} contains {part!r}",
                hint="write the path without . or .. components",
            )
    return parts


@contextmanager
def open_pinned(path: str | os.PathLike[str]) -> Iterator[tuple[int, PinnedDir]]:
    """Open ``path`` as an ``O_PATH`` descriptor without following any symlink.

    Yields the descriptor (closed on exit) and its :class:`PinnedDir`.

    Raises:
        MountPinError: a component is a symlink, is not a directory, or cannot be opened.
    """
    parts = components(path)
    shown = os.fspath(path)
    fd = os.open("/", _WALK_FLAGS | os.O_DIRECTORY)
    walked = ""
    try:
        for part in parts:
            walked += "/" + part
            try:
                nxt = os.open(part, _WALK_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _open_error(shown, walked, exc) from None
            os.close(fd)
            fd = nxt
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                raise MountPinError(
                    f"mount path {shown!r}: {walked!r} is a symlink",
                    hint="mount the directory it points to by its real path, "
                    "then approve it: vibebox approve",
                )
            if not stat.S_ISDIR(info.st_mode):
                raise MountPinError(f"mount path {shown!r}: {walked!r} is not a directory")
        info = os.fstat(fd)
        yield fd, PinnedDir(walked or "/", info.st_dev, info.st_ino)
    finally:
        os.close(fd)


def _open_error(shown: str, walked: str, exc: OSError) -> MountPinError:
    if exc.errno == errno.ENOENT:
        return MountPinError(
            f"mount path {shown!r}: {walked!r} does not exist",
            hint="create it or remove the mount from vibebox.toml",
        )
    return MountPinError(f"mount path {shown!r}: cannot open {walked!r}: {exc.strerror}")


def pin(path: str | os.PathLike[str]) -> PinnedDir:
    """Resolve ``path`` with no symlink at any component and return its device and inode.

    Raises:
        MountPinError: relative, ``.``/``..``, a symlink or a non-directory at any component,
            or missing.
    """
    with open_pinned(path) as (_fd, pinned):
        return pinned


def check_pinned(approved: PinnedDir, *, mount: str = "") -> PinnedDir:
    """Pin ``approved.path`` again and refuse when it reaches another directory.

    Args:
        approved: the pin recorded when the mount was approved.
        mount: how the mount is written in ``vibebox.toml`` (for the message).

    Returns:
        The fresh pin (equal to ``approved``).

    Raises:
        MountChangedError: the path now has a symlink in it, is gone, or is another directory
            (a different device or inode).
    """
    name = mount or approved.path
    try:
        now = pin(approved.path)
    except MountPinError as exc:
        raise MountChangedError(
            f"mount {name!r} changed since it was approved: {exc.message}",
            hint="check the directory, then approve the mount again: vibebox approve",
        ) from None
    if (now.dev, now.ino) != (approved.dev, approved.ino):
        raise MountChangedError(
            f"mount {name!r} changed since it was approved: {approved.path!r} is now another "
            f"directory (device:inode {now.dev}:{now.ino}, approved {approved.dev}:{approved.ino})",
            hint="check the directory, then approve the mount again: vibebox approve",
        )
    return now


def changed_pins(pins: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per recorded pin whose path no longer reaches its directory.

    ``pins`` maps each approved mount's guest path to :meth:`PinnedDir.to_dict`. Used by
    ``vibebox approve``: a directory the user re-created on purpose is approved again (the new
    device and inode recorded); a damaged record counts as changed.
    """
    lines: list[str] = []
    for guest, data in pins.items():
        try:
            approved = PinnedDir.from_dict(data)
            check_pinned(approved, mount=f"{approved.path} → {guest}")
        except MountPinError as exc:
            lines.append(f"~ {exc.message}")
    return lines


def check_cache(cache: str | os.PathLike[str]) -> None:
    """Refuse a project cache (``.vibebox/``) that is, or holds, a symlink.

    vibebox, libvirt, QEMU and virtlogd write there as the user or as root, and the share's
    mask only covers a real directory: a cloned repository that ships ``.vibebox`` as a
    symlink (or ``.vibebox/seed`` as one) would send those writes elsewhere and leave the real
    cache reachable from the guest. vibebox never makes a symlink there itself.

    Raises:
        MountPinError: the cache, or an entry in it, is a symlink; or it is not a directory.
    """
    path = os.fspath(cache)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    hint = f"remove it (rm -r {path!r}); vibebox makes its own"
    if stat.S_ISLNK(info.st_mode):
        raise MountPinError(f"the project cache {path!r} is a symlink", hint=hint)
    if not stat.S_ISDIR(info.st_mode):
        raise MountPinError(f"the project cache {path!r} is not a directory", hint=hint)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise MountPinError(f"the project cache holds a symlink: {entry.path!r}", hint=hint)


def is_within(inner: str | os.PathLike[str], outer: str | os.PathLike[str]) -> bool:
    """True when absolute path ``inner`` is ``outer`` or lies below it (by components)."""
    a = [p for p in os.fspath(inner).split("/") if p]
    b = [p for p in os.fspath(outer).split("/") if p]
    return a[: len(b)] == b
