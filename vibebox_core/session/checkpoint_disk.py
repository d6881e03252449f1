"""The disk side of checkpoints: qemu-img on the instance disk, and what a checkpoint's size is.

:mod:`vibebox_core.session.checkpoint` decides when each call is safe (the VM off, under the
start/stop lock, or QEMU doing it while the VM runs); this module only talks to ``qemu-img``:
``snapshot -c/-a/-d`` on a stopped disk, ``info`` for the list, ``measure`` for the sizes.

The size of a checkpoint. qemu-img reports no size for an internal snapshot without memory
(``VM SIZE 0 B``): its clusters are shared with the live disk and the other checkpoints until
one of them changes. :attr:`Checkpoint.data` is what ``qemu-img measure`` says a qcow2 holding
only that disk state (without the base image) would need, less the metadata of an empty disk
of that size: the guest's own data on top of the base image at the checkpoint. It is an upper
bound of what removing the checkpoint frees (shared clusters stay), and the checkpoints' data
do not add up; the disk file's real use on the host, checkpoints included, is
:func:`disk_usage`.

Names are user input: :func:`check_name` allows 1-40 letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or digit, and not only digits (qemu-img also takes a snapshot's numeric
id where a name goes, so a number could mean another checkpoint). Names read back from the
disk are listed as they are and escaped by the front ends; only names that pass
:func:`check_name` are ever acted on.

Reading a running VM's disk: ``info -U`` and a ``json:`` spec with ``locking: off`` open it
without QEMU's image lock; a snapshot's clusters never change once taken (QEMU copies a shared
cluster before writing it), so what is read of a checkpoint is exact. The ``json:`` spec also
sets ``backing: null``, so the base image is not counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vibebox_core.errors import CheckpointError
from vibebox_core.paths import ProjectPaths

#: Longest checkpoint name.
NAME_MAX = 40
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Seconds one qemu-img call may take (they only touch metadata).
QEMU_IMG_TIMEOUT = 120.0
#: The longest qemu-img answer read (its JSON for a disk with many checkpoints is small).
_OUTPUT_LIMIT = 1 << 20


def valid_name(name: str) -> bool:
    """True when ``name`` follows the checkpoint name rules (see the module docstring)."""
    return 0 < len(name) <= NAME_MAX and bool(_NAME.fullmatch(name)) and not name.isdigit()


def check_name(name: str) -> str:
    """``name`` if it is a valid checkpoint name (see the module docstring).

    Raises:
        CheckpointError: it is not.
    """
    if not valid_name(name):
        raise CheckpointError(
            f"invalid checkpoint name {name!r}",
            hint=f"use 1-{NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter "
            "or digit and not only digits (e.g. before-upgrade)",
        )
    return name


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of the guest disk.

    Attributes:
        name: as stored in the disk (escape it before showing it).
        created: when it was saved (UTC).
        data: bytes of guest data in that disk state on top of the base image (see the module
            docstring), None when qemu-img could not measure it.
    """

    name: str
    created: datetime
    data: int | None = None


def qemu_img(args: list[str], what: str) -> str:
    """Run ``qemu-img ARGS``; its stdout.

    Raises:
        CheckpointError: qemu-img is missing, failed (its message quoted) or hung.
    """
    if shutil.which("qemu-img") is None:
        raise CheckpointError("qemu-img is not installed", hint="apt-get install qemu-utils")
    try:
        done = subprocess.run(
            ["qemu-img", *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=QEMU_IMG_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckpointError(
            f"qemu-img did not {what} within {QEMU_IMG_TIMEOUT:.0f} s",
            hint="is the host disk very slow or full? Try again",
        ) from exc
    if done.returncode != 0:
        raise CheckpointError(
            f"qemu-img could not {what}: {done.stderr.strip()[:2000]}",
            hint="is another program using the disk? `vibebox stop`, then try again",
        )
    return done.stdout[:_OUTPUT_LIMIT]


def _unlocked(disk: str, snapshot: str | None = None) -> list[str]:
    """qemu-img arguments that open ``disk``'s own layer (not the base) without taking QEMU's
    image lock: reading a running VM's disk. A snapshot's clusters never change once taken
    (QEMU copies a shared cluster before writing it), so reading one is safe."""
    spec = {
        "driver": "qcow2",
        "backing": None,
        "file": {"driver": "file", "filename": disk, "locking": "off"},
    }
    tail = ["-l", f"snapshot.name={snapshot}"] if snapshot is not None else []
    return [*tail, "json:" + json.dumps(spec)]


def _info(disk: str) -> dict[str, Any]:
    text = qemu_img(["info", "-U", "--output=json", disk], "read the disk's checkpoints")
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise CheckpointError("qemu-img gave an unreadable answer about the disk") from exc
    if not isinstance(info, dict):
        raise CheckpointError("qemu-img gave an unreadable answer about the disk")
    return info


def _required(args: list[str]) -> int | None:
    try:
        answer = json.loads(qemu_img(["measure", "--output=json", "-O", "qcow2", *args], "measure"))
    except (CheckpointError, ValueError):
        return None
    required = answer.get("required") if isinstance(answer, dict) else None
    return required if isinstance(required, int) else None


def _snapshots(info: dict[str, Any]) -> Iterator[tuple[str, datetime]]:
    for item in info.get("snapshots") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        seconds = item.get("date-sec")
        created = datetime.fromtimestamp(seconds if isinstance(seconds, int) else 0, UTC)
        yield item["name"], created


def read_checkpoints(disk: str, *, measure: bool = True) -> list[Checkpoint]:
    """The checkpoints in ``disk``, oldest first; ``measure`` also sizes them (one ``qemu-img
    measure`` each). Works on a running VM's disk.

    Raises:
        CheckpointError: qemu-img failed or gave an unreadable answer.
    """
    info = _info(disk)
    empty: int | None = None
    size = info.get("virtual-size")
    if measure and isinstance(size, int):
        empty = _required(["--size", str(size)])
    found = []
    for name, created in _snapshots(info):
        data = None
        if empty is not None and valid_name(name):  # only those reach qemu-img's options
            required = _required(_unlocked(disk, name))
            data = max(0, required - empty) if required is not None else None
        found.append(Checkpoint(name, created, data))
    return sorted(found, key=lambda c: c.created)


def format_size(size: int | None) -> str:
    """``1.5 MiB``, ``640 KiB``, ``2.0 GiB``; ``?`` for None."""
    if size is None:
        return "?"
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def disk_usage(project: ProjectPaths) -> int:
    """Bytes the instance disk file takes on the host, every checkpoint included (0: none)."""
    try:
        return os.stat(project.disk).st_blocks * 512
    except OSError:
        return 0
