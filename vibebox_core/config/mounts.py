"""The rules of a mount: parsing a ``host:guest[:ro|rw]`` spec and what may never be shared.

The project directory itself is always mounted (read-write, at ``~/<project-name>`` in the
guest, :func:`project_mount`); ``[box] mounts`` only lists the extra ones (:func:`all_mounts`).
A mount's host side is resolved and checked against the project's ``.vibebox/`` and vibebox's
home (:func:`mount_refusal`); its guest side may not cover the guest's system directories.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from vibebox_core import paths
from vibebox_core.config.schema import GUEST_HOME, Config, Mount
from vibebox_core.paths import PROJECT_CACHE as PROJECT_CACHE_NAME
from vibebox_core.paths import ProjectPaths, vibebox_home

_READ_ONLY_WORDS = {"ro": True, "read-only": True, "rw": False, "read-write": False}

# Guest paths a mount may not cover: the guest would not boot or vibebox could not reach it.
_RESERVED_GUEST_PATHS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        GUEST_HOME,
    }
)
# Nothing may be mounted below these (kernel and runtime file systems, the seed share).
_RESERVED_GUEST_TREES = ("/proc", "/sys", "/dev", "/run")


def project_mount(project: ProjectPaths) -> Mount:
    """Return the implicit mount of the project directory (read-write, at ``~/<name>``)."""
    return Mount(
        host=project.root,
        guest=posixpath.join(GUEST_HOME, project.name),
        read_only=False,
        default=True,
    )


def all_mounts(config: Config, project: ProjectPaths) -> tuple[Mount, ...]:
    """Return every mount of a session: the project mount first, then ``[box] mounts``."""
    return (project_mount(project), *config.box.mounts)


def map_guest_path(raw: str) -> str:
    """Map ``~`` / ``~/x`` on the guest side to :data:`GUEST_HOME` and normalise the path.

    Returns the path unchanged apart from that (it may still be relative; callers check).
    """
    if raw == "~":
        return GUEST_HOME
    if raw.startswith("~/"):
        return posixpath.normpath(posixpath.join(GUEST_HOME, raw[2:]))
    if raw.startswith("/"):
        return posixpath.normpath(raw)
    return raw


def parse_mount(spec: str, project_root: Path) -> Mount:
    """Parse one ``host:guest[:ro|rw|read-only|read-write]`` spec.

    The host side has ``~`` expanded and, when relative, is taken relative to the project
    directory; it must be an existing directory. The guest side maps ``~`` to the guest user's
    home and must then be an absolute path outside the guest's system directories.

    Raises:
        ValueError: the spec is malformed; the message says what was expected.
    """
    form = "expected 'host:guest' or 'host:guest:ro|rw'"
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{spec!r}: {form} (paths may not contain ':')")
    host_raw, guest_raw = parts[0].strip(), parts[1].strip()
    read_only = False
    if len(parts) == 3:
        word = parts[2].strip()
        if word not in _READ_ONLY_WORDS:
            raise ValueError(
                f"{spec!r}: unknown access {word!r}, expected ro, rw, read-only or read-write"
            )
        read_only = _READ_ONLY_WORDS[word]
    if not host_raw:
        raise ValueError(f"{spec!r}: the host path is empty; {form}")
    if not guest_raw:
        raise ValueError(f"{spec!r}: the guest path is empty; {form}")
    if any(not ch.isprintable() for ch in host_raw + guest_raw):
        raise ValueError(f"{spec!r}: a path holds a control character; expected plain paths")
    try:
        host = Path(host_raw).expanduser()
    except (RuntimeError, KeyError):  # no home directory, or an unknown ~user
        host = Path(host_raw)
    if host_raw.startswith("~") and not host.is_absolute():
        raise ValueError(f"{spec!r}: cannot expand {host_raw.split('/')[0]!r} on the host")
    if not host.is_absolute():
        host = project_root / host
    # Resolved (symlinks and ``..`` followed) so the rules below compare real directories;
    # the approved snapshot keeps this resolved path, so a symlink swapped later shows up as
    # a change that needs approval.
    try:
        host = Path(os.path.realpath(host))
        is_dir, exists = host.is_dir(), host.exists()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{spec!r}: cannot resolve the host path: {reason}") from None
    if not is_dir:
        problem = "is not a directory" if exists else "does not exist"
        raise ValueError(f"{spec!r}: the host path {host} {problem}; expected a directory")
    if guest_raw.startswith("~") and not (guest_raw == "~" or guest_raw.startswith("~/")):
        raise ValueError(
            f"{spec!r}: on the guest side only '~' (= {GUEST_HOME}) is understood, "
            f"not {guest_raw.split('/')[0]!r}"
        )
    guest = map_guest_path(guest_raw)
    if not guest.startswith("/"):
        raise ValueError(
            f"{spec!r}: the guest path {guest_raw!r} is relative; expected an absolute path "
            f"such as /data or ~/data (= {GUEST_HOME}/data)"
        )
    if guest in _RESERVED_GUEST_PATHS or any(
        guest.startswith(tree + "/") for tree in _RESERVED_GUEST_TREES
    ):
        raise ValueError(
            f"{spec!r}: cannot mount over the guest's {guest}; pick a path such as "
            f"{GUEST_HOME}/data, /data or /opt/data"
        )
    return Mount(host=host, guest=guest, read_only=read_only)


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def mount_refusal(host: Path, project: ProjectPaths) -> str | None:
    """Say why the (resolved) host directory ``host`` may not be shared; None when it may.

    A mount may not be the project (it is always mounted, with ``.vibebox/`` masked) or a
    directory above it (that would share the project again, unmasked), may not be, contain
    or sit under the project's ``.vibebox/`` (SSH keys, disk, seed), and may not be, contain
    or sit in what vibebox keeps under its home (``VIBEBOX_HOME``: the index, the approvals,
    the images, the supervisor sockets).
    Every path is compared resolved, so ``..`` and symlinks cannot hide any of these.
    """
    real = Path(os.path.realpath(host))
    root = Path(os.path.realpath(project.root))
    cache = root / PROJECT_CACHE_NAME
    home = Path(os.path.realpath(vibebox_home()))
    if real == root:
        return (
            f"the host path {real} is the project itself, which would expose its .vibebox/ "
            "(SSH keys, disk) to the guest"
        )
    if real in root.parents:
        return (
            f"the host path {real} contains the project, which would expose its .vibebox/ "
            "(SSH keys, disk) to the guest"
        )
    if _within(real, cache):
        return f"the host path {real} is inside the project's .vibebox/ (SSH keys, disk, seed)"
    if real == home or real in home.parents:
        return (
            f"the host path {real} is or contains vibebox's home {home} "
            "(session index, approvals, images)"
        )
    if any(_within(real, home / name) for name in _HOME_ENTRIES):
        return f"the host path {real} is inside vibebox's home {home} (its {real.name} files)"
    return None


# What vibebox keeps under its home; a mount may sit under the home (a test's temporary
# directory often holds both), never under one of these.
_HOME_ENTRIES = (
    paths.SESSIONS_INDEX,
    paths.SESSIONS_LOCK,
    paths.IMAGES_DIR,
    paths.RUN_DIR,
    paths.BIN_DIR,
    paths.APPROVED_DIR,
)
