"""The start/stop lock of a session's supervisor (``.vibebox/supervisor.lock``).

Starting and stopping are serialised by an exclusive ``fcntl`` lock on that file: a starting
vibebox holds it while it checks for a live supervisor, starts one and attaches
(:mod:`vibebox_core.supervisor.client`); the supervisor takes it before shutting down and,
holding it, checks the count once more (:mod:`vibebox_core.supervisor.server`). So a vibebox
either attaches before the shutdown begins (and the shutdown is called off) or finds no
supervisor and starts the VM afresh after the old one has stopped it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vibebox_core.fileio import lock_file


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold the exclusive ``fcntl`` lock on ``lock_path`` (blocking) for the ``with`` body."""
    fd = acquire(lock_path)
    try:
        yield
    finally:
        os.close(fd)


def acquire(lock_path: Path) -> int:
    """Take the exclusive lock on ``lock_path`` (blocking); closing the returned fd releases it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    return lock_file(lock_path)
