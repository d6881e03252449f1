"""The base image store: find, list, verify and remove the images sessions boot from.

A base image lives in ``~/.vibebox/images/<name>/`` (:func:`vibebox_core.paths.image_dir`) and
holds the kernel and initrd for direct kernel boot, the root file system as a qcow2 base disk
(every session's instance disk is an overlay on it) and ``image.toml``
(:mod:`vibebox_core.images.record`), which records what was built and the sha256 of each artifact.
This module is what a session start needs: it reads and checks images but never builds one;
:func:`vibebox_core.images.build.ensure_image` builds a missing image on first use; a start
imports the builder only on its cold path, so a warm attach never loads it.

Decisions worth knowing:

* **One writer per name.** :func:`build_lock` (a lock file in the store) serialises builds and
  removals of the same image across processes.
* **Verification cache.** :func:`verify_image` hashes every artifact and compares it with
  ``image.toml``. To avoid re-hashing the ~600 MB base disk on every start, a successful check
  is remembered in ``.verified.json`` keyed by each file's size, mtime, ctime and inode. Any
  write changes mtime *and* ctime, and even a tamperer who restores the mtime (``touch -r``)
  cannot restore the ctime, so a modified artifact is always re-hashed and refused. Harmless
  metadata changes (libvirt re-owning a disk while a VM runs) cost one re-hash, nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.errors import ImageError
from vibebox_core.fileio import lock_file
from vibebox_core.images.plan import guest_digest
from vibebox_core.images.record import (
    Artifact,
    ImageInfo,
    build_command,
    damaged,
    rebuild_command,
    validate_name,
)
from vibebox_core.progress import ProgressCallback, ProgressClock

#: File in the image directory that remembers successful checks (see module docstring).
VERIFIED_CACHE = ".verified.json"


# --------------------------------------------------------------------------- reading the store


def read_image(name: str = paths.DEFAULT_IMAGE_NAME) -> ImageInfo:
    """Read one image's metadata (no checksums; see :func:`verify_image`).

    Raises:
        ImageError: the image does not exist (hint: the build command) or its metadata is
            damaged (hint: the rebuild command).
    """
    directory = paths.image_dir(validate_name(name))
    meta = directory / paths.IMAGE_METADATA
    try:
        text = meta.read_text(encoding="utf-8")
    except FileNotFoundError:
        if directory.is_dir():
            raise damaged(name, f"{meta} is missing") from None
        raise ImageError(f"there is no image {name!r}", hint=build_command(name)) from None
    except OSError as exc:
        raise ImageError(
            f"cannot read {meta}: {exc.strerror or exc}", hint=f"check the permissions of {meta}"
        ) from None
    return ImageInfo.from_toml(text, directory)


def image_exists(name: str = paths.DEFAULT_IMAGE_NAME) -> bool:
    """True when image ``name`` has a metadata file (it may still fail verification)."""
    return (paths.image_dir(validate_name(name)) / paths.IMAGE_METADATA).is_file()


@dataclass(frozen=True)
class ImageListing:
    """One entry of :func:`list_images`: the metadata, or why it cannot be read."""

    name: str
    directory: Path
    info: ImageInfo | None
    problem: str | None = None


def list_images() -> list[ImageListing]:
    """List every image in the store, sorted by name; a damaged one carries its problem.

    Never raises for one bad image (STYLE §4); unfinished builds (dot directories) are skipped.
    """
    store = paths.images_dir()
    try:
        entries = sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ImageError(f"cannot list {store}: {exc.strerror or exc}") from None
    listings = []
    for directory in entries:
        try:
            info = read_image(directory.name)
            listings.append(ImageListing(directory.name, directory, info))
        except ImageError as exc:
            listings.append(ImageListing(directory.name, directory, None, exc.message))
    return listings


@contextlib.contextmanager
def build_lock(name: str, *, wait: bool) -> Iterator[None]:
    """Hold the store's lock for image ``name`` while it is built or removed.

    Args:
        name: the image's name.
        wait: block until another process releases the lock; otherwise fail at once.

    Raises:
        ImageError: ``wait`` is false and another vibebox holds the lock.
    """
    store = paths.images_dir()
    store.mkdir(parents=True, exist_ok=True)
    lock_path = store / f".{name}.lock"
    try:
        fd = lock_file(lock_path, mode=0o666, wait=wait)
    except BlockingIOError:
        raise ImageError(
            f"image {name!r} is being built by another vibebox",
            hint="wait for that build to finish, then try again",
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_image(name: str) -> None:
    """Delete image ``name`` from the store.

    Raises:
        ImageError: there is no such image, or it cannot be removed.
    """
    directory = paths.image_dir(validate_name(name))
    if not directory.is_dir():
        raise ImageError(f"there is no image {name!r}", hint="vibebox image list")
    with build_lock(name, wait=False):
        trash = directory.with_name(f".rm-{name}-{os.getpid()}")
        try:
            directory.rename(trash)
            shutil.rmtree(trash)
        except OSError as exc:
            raise ImageError(f"cannot remove {directory}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- verification


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_verified(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / VERIFIED_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verified(directory: Path, data: dict[str, Any]) -> None:
    # Best effort: a store we may not write to is still verified, just hashed every time.
    tmp = directory / f"{VERIFIED_CACHE}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(directory / VERIFIED_CACHE)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def remember_verified(directory: Path, artifacts: Iterable[Artifact]) -> None:
    """Record ``artifacts`` in ``directory`` as checked, as they are now on disk.

    For a build that has just hashed them: the first :func:`verify_image` then hashes nothing.
    """
    _write_verified(
        directory, {a.file: [*_stat_key(directory / a.file), a.sha256] for a in artifacts}
    )


def verify_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
) -> ImageInfo:
    """Check every artifact of image ``name`` against the sha256 in its metadata.

    A file whose size, mtime, ctime and inode are unchanged since its last successful check is
    not hashed again (``use_cache=False`` forces hashing); see the module docstring for why a
    modified file is still caught.

    Returns:
        The image's metadata, safe to boot.

    Raises:
        ImageError: missing image, damaged metadata, a missing artifact, or a checksum
            mismatch; the hint is the command that rebuilds it.
    """
    info = read_image(name)
    clock = ProgressClock(progress)
    cache = _read_verified(info.directory) if use_cache else {}
    fresh: dict[str, Any] = {}
    for artifact in info.artifacts.values():
        path = info.directory / artifact.file
        try:
            stat_key = _stat_key(path)
        except FileNotFoundError:
            raise damaged(name, f"{path} is missing") from None
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
        if stat_key[0] != artifact.size:
            raise damaged(name, f"{path} has {stat_key[0]} bytes, image.toml says {artifact.size}")
        remembered = cache.get(artifact.file)
        if remembered == [*stat_key, artifact.sha256]:
            fresh[artifact.file] = remembered
            continue
        clock("verifying image", f"sha256 of {artifact.file}")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
        if digest != artifact.sha256:
            raise damaged(
                name,
                f"{path} does not match its checksum (sha256 {digest[:16]}…, "
                f"expected {artifact.sha256[:16]}…); it was modified or corrupted",
            )
        fresh[artifact.file] = [*stat_key, digest]
    if fresh != cache:
        _write_verified(info.directory, fresh)
    return info


def outdated(info: ImageInfo) -> bool:
    """True when ``info`` was built from other guest files than this vibebox's (or before
    they were recorded): its boot-time setup and shell integration may not match."""
    return info.guest_digest != guest_digest()


def outdated_notice(info: ImageInfo) -> str:
    """One line saying what an outdated image means and what to do."""
    return (
        f"image {info.name!r} was built from other guest files than this vibebox's; "
        f"`{rebuild_command(info.name)}` updates it (sessions made from the old one must "
        "then be recreated with :new)"
    )
