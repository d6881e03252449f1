"""Small file helpers shared by core modules.

Files vibebox writes into ``.vibebox/`` (keys, the seed, the guest's address, the network
definition) are replaced whole: a reader — QEMU's virtiofsd, OpenSSH, another vibebox — sees
the old content or the new, never half of it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` through a temp file that has ``mode`` from the start.

    The temp file is created with ``mode`` (so a private key is never world-readable, not
    even for a moment) and set to exactly ``mode`` whatever the umask, then renamed over
    ``path``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
    os.replace(tmp, path)
