"""What a checkpoint remembers besides the disk: whether the guest was provisioned.

``[provision] run`` runs once per session and ``.vibebox/provision.json`` records that it ran
(:mod:`vibebox_core.session.provision_record`). A checkpoint brings the *disk* back, so the
record must come back with it: restoring a checkpoint saved before provisioning gives an
unprovisioned disk, which is due again (as a fresh session's is), and one saved after gives the
record of that time. Each checkpoint keeps the record as it was when it was saved, in
``.vibebox/checkpoints/`` (:attr:`~vibebox_core.paths.ProjectPaths.checkpoint_records`);
checkpoints made before this existed keep the current record when restored.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from vibebox_core.fileio import ProjectFileError, read_bounded, write_atomic
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import provision_record
from vibebox_core.session.checkpoint_disk import check_name

_RECORD_LIMIT = provision_record.RECORD_LIMIT


def _directory(project: ProjectPaths, *, create: bool) -> Path | None:
    """The records' directory; None when it is missing or not a plain directory (a cloned
    repository's ``.vibebox/`` could ship it as a symlink to send the writes elsewhere)."""
    directory = project.checkpoint_records
    if create:
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    try:
        mode = os.lstat(directory).st_mode
    except FileNotFoundError:
        return None
    return directory if stat.S_ISDIR(mode) else None


def keep(project: ProjectPaths, name: str) -> None:
    """Remember the provision record as it is now for checkpoint ``name`` (just saved)."""
    check_name(name)  # it names files
    directory = _directory(project, create=True)
    if directory is None:
        return
    forget(project, name)
    try:
        data = read_bounded(project.provision_record, limit=_RECORD_LIMIT, what="provision record")
    except FileNotFoundError:
        write_atomic(directory / f"{name}.none", b"", mode=0o600)
        return
    except (OSError, ProjectFileError):
        return  # unreadable now: the checkpoint keeps whatever the record is at restore
    write_atomic(directory / f"{name}.json", data, mode=0o600)


def bring_back(project: ProjectPaths, name: str, session_id: str) -> None:
    """Put back the provision record checkpoint ``name`` saw (after its disk was restored).

    A checkpoint saved before provisioning leaves no record and marks the session due, so
    the next start provisions the restored disk.
    """
    check_name(name)
    directory = _directory(project, create=False)
    if directory is None:
        return
    try:
        data = read_bounded(directory / f"{name}.json", limit=_RECORD_LIMIT, what="record")
    except FileNotFoundError:
        if (directory / f"{name}.none").is_file():
            with contextlib.suppress(FileNotFoundError):
                project.provision_record.unlink()
            write_atomic(project.provision_pending, session_id.encode() + b"\n", mode=0o600)
        return
    except (OSError, ProjectFileError):
        return
    write_atomic(project.provision_record, data, mode=0o600)
    provision_record.clear_pending(project)


def forget(project: ProjectPaths, name: str) -> None:
    """Drop what checkpoint ``name`` remembered (it was removed)."""
    check_name(name)
    directory = _directory(project, create=False)
    if directory is None:
        return
    for suffix in (".json", ".none"):
        with contextlib.suppress(FileNotFoundError):
            (directory / f"{name}{suffix}").unlink()
