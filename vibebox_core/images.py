"""The base image store: build Debian guests, record what was built, verify before use.

A base image lives in ``~/.vibebox/images/<name>/`` (:func:`vibebox_core.paths.image_dir`) and
holds the kernel and initrd for direct kernel boot, the root file system as a qcow2 base disk
(every session's instance disk is an overlay on it) and ``image.toml``, which records what was
built (suite, mirror, packages, kernel version, kernel command line, sizes) and the sha256 of
each artifact.

Decisions worth knowing:

* **Builder.** As root, ``debootstrap --variant=minbase`` (its downloads are cached under
  ``~/.vibebox/cache/debootstrap`` so a rebuild fetches nothing new); otherwise
  ``mmdebstrap --mode=unshare`` (needs subuid/subgid ranges and unprivileged user namespaces).
  When neither can work the build stops before doing anything with an :class:`ImageError` that
  names the exact command to run instead. :func:`plan_build` makes that choice and is pure.
* **Guest contents.** The guest is configured on the host by ``guest/configure-rootfs.sh``
  (package data): vibebox's boot-time setup unit, systemd-networkd DHCP, sshd with only the
  seeded ed25519 host key, the shell integration, a small ``MODULES=list`` initrd that has the
  virtio drivers and virtiofs. The ext4 root is made with ``mkfs.ext4 -d`` (no loop mount) and
  converted to qcow2; the guest grows it to the instance disk's size at boot.
* **Atomic.** Everything is built in ``images/.build-<name>-<pid>/`` on the same file system and
  renamed into place at the end; a failed or interrupted build removes its directory (mounts the
  bootstrap left below it are detached first), and a build killed outright is cleaned up by the
  next one. A lock file serialises builds of the same name across processes.
* **Verification cache.** :func:`verify_image` hashes every artifact and compares it with
  ``image.toml``. To avoid re-hashing the ~600 MB base disk on every start, a successful check
  is remembered in ``.verified.json`` keyed by each file's size, mtime, ctime and inode. Any
  write changes mtime *and* ctime, and even a tamperer who restores the mtime (``touch -r``)
  cannot restore the ctime, so a modified artifact is always re-hashed and refused. Harmless
  metadata changes (libvirt re-owning a disk while a VM runs) cost one re-hash, nothing more.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import tomlkit

from vibebox_core import __version__, paths
from vibebox_core.errors import ImageError
from vibebox_core.progress import ProgressCallback, ProgressClock

#: Debian release the guest is built from.
SUITE = "bookworm"
#: Used when no Debian mirror can be read from the host's apt sources.
FALLBACK_MIRROR = "http://deb.debian.org/debian"
#: Environment variable that overrides the mirror (e.g. a local apt cache).
MIRROR_ENV = "VIBEBOX_MIRROR"
#: Everything the guest carries besides ``--package`` extras.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "dbus",  # systemd-resolved needs a system bus; debootstrap does not pick virtual packages
    "udev",
    "kmod",
    "initramfs-tools",
    "zstd",
    "linux-image-cloud-amd64",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "curl",
    "git",
    "iproute2",
    "less",
    "vim-tiny",
    "procps",
    "python3",
    "ripgrep",
    "build-essential",
)
#: Kernel command line for direct kernel boot: root on the virtio disk, console on the serial
#: port (logged to ``.vibebox/console.log``), kernel chatter kept low but systemd's status lines
#: shown. Append ``systemd.machine_id=<32 hex>`` for a per-VM machine id.
KERNEL_CMDLINE = "console=ttyS0 root=/dev/vda rw loglevel=4 systemd.show_status=yes"
#: Version of the ``image.toml`` layout.
METADATA_FORMAT = 1
#: File in the image directory that remembers successful checks (see module docstring).
VERIFIED_CACHE = ".verified.json"
#: Build log kept in the image directory.
BUILD_LOG = "build.log"
#: Free space left in the root file system beyond its contents (MiB), plus 15 %.
ROOTFS_HEADROOM_MB = 256
#: Artifacts, by their key in ``image.toml``.
ARTIFACT_FILES: Mapping[str, str] = {
    "kernel": paths.IMAGE_KERNEL,
    "initrd": paths.IMAGE_INITRD,
    "base_disk": paths.IMAGE_BASE_DISK,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_BUILD_PREFIX = ".build-"

Builder = Literal["debootstrap", "mmdebstrap"]


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Artifact:
    """One file of an image, as recorded in ``image.toml``."""

    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ImageInfo:
    """What ``image.toml`` says about one built image.

    Attributes:
        name: the image's name (its directory under the image store).
        directory: the image directory.
        suite: Debian suite, e.g. ``bookworm``.
        mirror: the Debian mirror it was built from.
        builder: ``debootstrap`` or ``mmdebstrap``.
        packages: every package asked for (base set plus extras).
        extra_packages: the ``--package`` extras alone.
        built_at: when the build finished (UTC).
        build_seconds: how long the build took.
        kernel_version: ``uname -r`` of the guest kernel.
        cmdline: kernel command line for direct kernel boot.
        rootfs_bytes: size of the ext4 root file system (the base disk's virtual size).
        artifacts: ``kernel``, ``initrd`` and ``base_disk`` with size and sha256.
        vibebox_version: the vibebox that built it.
    """

    name: str
    directory: Path
    suite: str
    mirror: str
    builder: str
    packages: tuple[str, ...]
    extra_packages: tuple[str, ...]
    built_at: datetime
    build_seconds: float
    kernel_version: str
    cmdline: str
    rootfs_bytes: int
    artifacts: Mapping[str, Artifact]
    vibebox_version: str = __version__

    @property
    def kernel(self) -> Path:
        """The kernel for direct kernel boot."""
        return self.directory / self.artifacts["kernel"].file

    @property
    def initrd(self) -> Path:
        """The initrd for direct kernel boot."""
        return self.directory / self.artifacts["initrd"].file

    @property
    def base_disk(self) -> Path:
        """The qcow2 base every instance disk is an overlay of."""
        return self.directory / self.artifacts["base_disk"].file

    @property
    def total_bytes(self) -> int:
        """Bytes the image's artifacts take on disk (their sizes added up)."""
        return sum(a.size for a in self.artifacts.values())

    def to_toml(self) -> str:
        """Render the metadata as ``image.toml`` text."""
        doc = tomlkit.document()
        doc.add(tomlkit.comment("vibebox base image: what was built, and the sha256 of each file"))
        doc["format"] = METADATA_FORMAT
        doc["name"] = self.name
        doc["suite"] = self.suite
        doc["mirror"] = self.mirror
        doc["builder"] = self.builder
        doc["built_at"] = self.built_at.astimezone(UTC).replace(microsecond=0)
        doc["build_seconds"] = round(self.build_seconds, 1)
        doc["kernel_version"] = self.kernel_version
        doc["cmdline"] = self.cmdline
        doc["rootfs_bytes"] = self.rootfs_bytes
        doc["vibebox_version"] = self.vibebox_version
        doc["packages"] = list(self.packages)
        doc["extra_packages"] = list(self.extra_packages)
        artifacts = tomlkit.table()
        for key, artifact in self.artifacts.items():
            entry = tomlkit.table()
            entry["file"] = artifact.file
            entry["size"] = artifact.size
            entry["sha256"] = artifact.sha256
            artifacts[key] = entry
        doc["artifacts"] = artifacts
        return tomlkit.dumps(doc)

    @classmethod
    def from_toml(cls, text: str, directory: Path) -> ImageInfo:
        """Parse ``image.toml`` text.

        Raises:
            ImageError: the text is not valid metadata (names the file and what is wrong).
        """
        where = directory / paths.IMAGE_METADATA
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _damaged(directory.name, f"{where} is not valid TOML: {exc}") from None
        try:
            if data.get("format") != METADATA_FORMAT:
                raise ValueError(f"format = {data.get('format')!r}, expected {METADATA_FORMAT}")
            built_at = data["built_at"]
            if not isinstance(built_at, datetime):
                raise ValueError("built_at is not a datetime")
            if built_at.tzinfo is None:
                built_at = built_at.replace(tzinfo=UTC)
            artifacts: dict[str, Artifact] = {}
            for key in ARTIFACT_FILES:
                entry = data["artifacts"][key]
                file = str(entry["file"])
                if "/" in file or file.startswith("."):
                    raise ValueError(f"artifacts.{key}.file {file!r} is not a plain file name")
                sha = str(entry["sha256"]).lower()
                if not re.fullmatch(r"[0-9a-f]{64}", sha):
                    raise ValueError(f"artifacts.{key}.sha256 is not a sha256 digest")
                artifacts[key] = Artifact(file=file, size=int(entry["size"]), sha256=sha)
            return cls(
                name=str(data["name"]),
                directory=directory,
                suite=str(data["suite"]),
                mirror=str(data["mirror"]),
                builder=str(data["builder"]),
                packages=tuple(str(p) for p in data["packages"]),
                extra_packages=tuple(str(p) for p in data.get("extra_packages", [])),
                built_at=built_at,
                build_seconds=float(data["build_seconds"]),
                kernel_version=str(data["kernel_version"]),
                cmdline=str(data["cmdline"]),
                rootfs_bytes=int(data["rootfs_bytes"]),
                artifacts=artifacts,
                vibebox_version=str(data.get("vibebox_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise _damaged(directory.name, f"{where}: {detail}") from None


def rebuild_command(name: str) -> str:
    """The command that rebuilds image ``name`` from scratch."""
    if name == paths.DEFAULT_IMAGE_NAME:
        return "vibebox image build --force"
    return f"vibebox image build --name {shlex.quote(name)} --force"


def build_command(name: str) -> str:
    """The command that builds image ``name``."""
    if name == paths.DEFAULT_IMAGE_NAME:
        return "vibebox image build"
    return f"vibebox image build --name {shlex.quote(name)}"


def _damaged(name: str, message: str) -> ImageError:
    return ImageError(f"image {name!r} is damaged: {message}", hint=rebuild_command(name))


def validate_name(name: str) -> str:
    """Return ``name`` if it can name an image directory.

    Raises:
        ImageError: empty, too long, or with characters other than letters, digits, ``. _ -``.
    """
    if not _NAME_RE.match(name):
        raise ImageError(
            f"image name {name!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (at most 64, not starting with '.')",
        )
    return name


def validate_packages(packages: Iterable[str]) -> tuple[str, ...]:
    """Return the Debian package names, de-duplicated in order.

    Raises:
        ImageError: a name Debian would not accept (so it never reaches a command line).
    """
    seen: dict[str, None] = {}
    for package in packages:
        if not _PACKAGE_RE.match(package):
            raise ImageError(
                f"{package!r} is not a Debian package name",
                hint="package names are lower case: letters, digits, '+', '-' and '.'",
            )
        seen.setdefault(package, None)
    return tuple(seen)


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
            raise _damaged(name, f"{meta} is missing") from None
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


def remove_image(name: str) -> None:
    """Delete image ``name`` from the store.

    Raises:
        ImageError: there is no such image, or it cannot be removed.
    """
    directory = paths.image_dir(validate_name(name))
    if not directory.is_dir():
        raise ImageError(f"there is no image {name!r}", hint="vibebox image list")
    with _build_lock(name, wait=False):
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
            raise _damaged(name, f"{path} is missing") from None
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
        if stat_key[0] != artifact.size:
            raise _damaged(name, f"{path} has {stat_key[0]} bytes, image.toml says {artifact.size}")
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
            raise _damaged(
                name,
                f"{path} does not match its checksum (sha256 {digest[:16]}…, "
                f"expected {artifact.sha256[:16]}…); it was modified or corrupted",
            )
        fresh[artifact.file] = [*stat_key, digest]
    if fresh != cache:
        _write_verified(info.directory, fresh)
    return info


def ensure_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    progress: ProgressCallback | None = None,
) -> ImageInfo:
    """Return a verified image, building it first when there is none (first use).

    A damaged image is refused (never silently rebuilt): the user decides with the rebuild
    command in the error's hint.
    """
    if image_exists(name):
        return verify_image(name, progress=progress)
    return build_image(name, progress=progress, reuse_existing=True)


# --------------------------------------------------------------------------- build plan


def guest_dir() -> Path:
    """The package data directory with the guest's files (``vibebox_core/guest``)."""
    return Path(str(importlib.resources.files("vibebox_core").joinpath("guest")))


def apt_mirror(
    sources: Sequence[Path] = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")),
) -> str:
    """Return the Debian mirror this machine's apt uses (``$VIBEBOX_MIRROR`` wins).

    Reads one-line ``deb`` entries and deb822 ``.sources`` files and picks the first URI that
    serves the main Debian archive (a path ending in ``/debian``); falls back to
    :data:`FALLBACK_MIRROR`.
    """
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(source.glob("*.list")) + sorted(source.glob("*.sources")))
        elif source.is_file():
            files.append(source)
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for uri in _source_uris(text, deb822=file.suffix == ".sources"):
            if re.match(r"^https?://", uri) and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return FALLBACK_MIRROR


def _source_uris(text: str, *, deb822: bool) -> Iterator[str]:
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                yield from fields.get("uris", "").split()
        return
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if words:
            yield words[0]


@dataclass(frozen=True)
class BuildPlan:
    """How a build bootstraps the root file system (chosen by :func:`plan_build`).

    Attributes:
        builder: ``debootstrap`` (root) or ``mmdebstrap`` (unshare mode).
        bootstrap: the bootstrap command.
        helper: prefix that runs a command as root of the build's user namespace (mmdebstrap
            ``--unshare-helper``), empty for debootstrap.
        initramfs: the command that rebuilds the initrd after configuration (debootstrap only;
            mmdebstrap does it in a hook).
        configure: the configure command (debootstrap only; mmdebstrap does it in a hook).
    """

    builder: Builder
    bootstrap: tuple[str, ...]
    helper: tuple[str, ...] = ()
    initramfs: tuple[str, ...] = ()
    configure: tuple[str, ...] = ()


def plan_build(
    *,
    rootfs: Path,
    boot_out: Path,
    packages: Sequence[str],
    mirror: str,
    suite: str = SUITE,
    cache_dir: Path,
    guest: Path,
    is_root: bool,
    which: Callable[[str], str | None] = shutil.which,
    unshare_problem: Callable[[], str | None] | None = None,
) -> BuildPlan:
    """Choose the builder and spell out its commands (pure apart from the injected probes).

    Args:
        rootfs: directory the root file system is bootstrapped into (must not exist yet).
        boot_out: directory the mmdebstrap hook copies ``/boot`` to.
        packages: every package to include.
        mirror, suite: where from and what.
        cache_dir: package cache root; debootstrap keeps its downloads in ``debootstrap/``
            below it, mmdebstrap in ``mmdebstrap/`` (synced in and out by hooks).
        guest: the guest files directory (:func:`guest_dir`).
        is_root: running as root.
        which: finds a program on PATH.
        unshare_problem: returns why unprivileged mmdebstrap cannot work here, or None.

    Raises:
        ImageError: neither builder can work; the message and hint name the exact commands.
    """
    include = ",".join(packages)
    configure = ("bash", str(guest / "configure-rootfs.sh"), str(rootfs), str(guest), mirror, suite)
    if is_root and which("debootstrap"):
        return BuildPlan(
            builder="debootstrap",
            bootstrap=(
                "debootstrap",
                "--variant=minbase",
                "--components=main",
                f"--include={include}",
                f"--cache-dir={cache_dir / 'debootstrap'}",
                suite,
                str(rootfs),
                mirror,
            ),
            configure=configure,
            initramfs=(
                "unshare",
                "--mount",
                "--fork",
                "chroot",
                str(rootfs),
                "sh",
                "-c",
                "mount -t proc proc /proc && update-initramfs -u -k all",
            ),
        )
    hook_guest = "/tmp/vibebox-guest"
    apt_cache = cache_dir / "mmdebstrap"
    mmdebstrap = (
        "mmdebstrap",
        "--mode=unshare" if not is_root else "--mode=root",
        "--variant=minbase",
        "--components=main",
        f"--include={include}",
        # The package cache (mmdebstrap's documented recipe): debs in, and back out at the end.
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
        f"--setup-hook=sync-in {shlex.quote(str(apt_cache))} /var/cache/apt/archives/",
        f'--customize-hook=mkdir -p "$1{hook_guest}"',
        f"--customize-hook=copy-in {' '.join(shlex.quote(str(p)) for p in _guest_files(guest))} "
        f"{hook_guest}",
        f"--customize-hook=VIBEBOX_KEEP_APT_STATE=1 "
        f'bash "$1{hook_guest}/configure-rootfs.sh" "$1" "$1{hook_guest}" '
        f"{shlex.quote(mirror)} {shlex.quote(suite)}",
        f'--customize-hook=rm -rf "$1{hook_guest}"',
        '--customize-hook=chroot "$1" update-initramfs -u -k all',
        f"--customize-hook=sync-out /boot {shlex.quote(str(boot_out))}",
        f"--customize-hook=sync-out /var/cache/apt/archives {shlex.quote(str(apt_cache))}",
        suite,
        str(rootfs),
        mirror,
    )
    if which("mmdebstrap"):
        problem = None if is_root or unshare_problem is None else unshare_problem()
        if problem is None:
            helper = () if is_root else ("mmdebstrap", "--unshare-helper")
            return BuildPlan(builder="mmdebstrap", bootstrap=mmdebstrap, helper=helper)
    else:
        problem = "mmdebstrap is not installed"
    if is_root:
        raise ImageError(
            "cannot build the image: neither debootstrap nor mmdebstrap is installed",
            hint="apt-get install debootstrap (or run .ci/setup), then build again",
        )
    raise ImageError(
        "cannot build the image without root: "
        + problem
        + ". The build would run: "
        + shlex.join(mmdebstrap),
        hint="run the build as root (sudo vibebox image build), or install mmdebstrap and give "
        "your user subuid/subgid ranges (usermod --add-subuids 100000-165535 "
        "--add-subgids 100000-165535 $USER) with unprivileged user namespaces enabled",
    )


def _guest_files(guest: Path) -> list[Path]:
    return sorted(p for p in guest.iterdir() if p.is_file() and not p.name.startswith("."))


def unshare_problem() -> str | None:
    """Why ``mmdebstrap --mode=unshare`` cannot work for this user, or None when it can."""
    user = os.environ.get("USER") or str(os.getuid())
    for file in ("/etc/subuid", "/etc/subgid"):
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except OSError:
            return f"{file} cannot be read"
        names = {line.split(":", 1)[0] for line in lines if ":" in line}
        if user not in names and str(os.getuid()) not in names:
            return f"{file} has no range for {user}"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return "unprivileged user namespaces are disabled (" + probe.stderr.strip() + ")"
    return None


# --------------------------------------------------------------------------- building


class _Interrupted(Exception):
    """SIGTERM during a build: unwinds like KeyboardInterrupt so the cleanup runs."""


@contextlib.contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception while a build runs (main thread only)."""
    if sys.platform != "linux" or not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted("terminated")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _build_lock(name: str, *, wait: bool) -> Iterator[None]:
    store = paths.images_dir()
    store.mkdir(parents=True, exist_ok=True)
    lock_path = store / f".{name}.lock"
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ImageError(
                f"image {name!r} is being built by another vibebox",
                hint="wait for that build to finish, then try again",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mounts_below(directory: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    root = os.path.realpath(directory)
    found = []
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_build_dir(directory: Path, helper: Sequence[str] = ()) -> None:
    """Remove a build directory, detaching any mount the bootstrap left below it first.

    Never follows a mount: if something stays mounted the directory is left in place rather
    than deleting files of the host through it.
    """
    if not directory.exists():
        return
    for point in mounts_below(directory):
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True)
    if mounts_below(directory):
        raise ImageError(
            f"{directory} still has mounts below it; not removing it",
            hint=f"unmount them (findmnt -R {directory}), then rm -rf {directory}",
        )
    if helper:
        # Files owned by the build's user namespace: only its root can remove them.
        subprocess.run([*helper, "rm", "-rf", str(directory)], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def _clean_stale_builds(store: Path) -> None:
    """Remove build directories whose process is gone (a build killed outright)."""
    for directory in store.glob(_BUILD_PREFIX + "*"):
        try:
            pid = int((directory / "pid").read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _pid_alive(pid):
            continue
        with contextlib.suppress(ImageError):
            remove_build_dir(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Runner:
    """Runs build commands, logging their output and reporting progress."""

    clock: ProgressClock
    log: Path
    throttle: float = 2.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=25))

    def __call__(self, step: str, command: Sequence[str], *, cwd: Path | None = None) -> None:
        self.clock(step, shlex.join(command)[:200])
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {shlex.join(command)}\n")
            log.flush()
            try:
                process = subprocess.Popen(
                    list(command),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=cwd,
                    text=True,
                    errors="replace",
                    env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"},
                )
            except OSError as exc:
                raise ImageError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
            try:
                assert process.stdout is not None
                last = 0.0
                for line in process.stdout:
                    log.write(line)
                    line = line.rstrip()
                    if line:
                        self.tail.append(line)
                    if line and time.monotonic() - last >= self.throttle:
                        last = time.monotonic()
                        self.clock(step, line[:200])
                code = process.wait()
            except BaseException:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                raise
        if code != 0:
            tail = "\n".join(self.tail)
            raise ImageError(
                f"{step} failed: `{shlex.join(command)[:300]}` exited with status {code}\n{tail}",
                hint=f"the full log is {self.log}",
            )
        self.clock(step, done=True)


def _dir_bytes(directory: Path, helper: Sequence[str] = ()) -> int:
    if helper:
        # Owned by the build's user namespace: measure from inside it.
        result = subprocess.run(
            [*helper, "du", "-s", "-B1", str(directory)], capture_output=True, text=True
        )
        with contextlib.suppress(ValueError, IndexError):
            return int(result.stdout.split()[0])
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def rootfs_size_bytes(content_bytes: int) -> int:
    """Size of the ext4 file system for ``content_bytes`` of files: +15 % and the headroom,
    rounded up to 64 MiB (the guest grows it to the instance disk at boot)."""
    mib = 1024 * 1024
    size = int(content_bytes * 1.15) + ROOTFS_HEADROOM_MB * mib
    step = 64 * mib
    return (size + step - 1) // step * step


def _pick_boot_file(boot: Path, prefix: str) -> tuple[Path, str]:
    candidates = sorted(boot.glob(prefix + "*"))
    if not candidates:
        raise ImageError(f"the guest has no {prefix}* in /boot; the kernel was not installed")
    chosen = candidates[-1]
    return chosen, chosen.name[len(prefix) :]


def build_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    packages: Iterable[str] = (),
    force: bool = False,
    progress: ProgressCallback | None = None,
    mirror: str | None = None,
    suite: str = SUITE,
    reuse_existing: bool = False,
) -> ImageInfo:
    """Build a Debian guest image into the store, step by step, atomically.

    Args:
        name: the image's name (directory in the store).
        packages: extra Debian packages besides :data:`BASE_PACKAGES`.
        force: replace an existing image of that name.
        progress: called with a :class:`~vibebox_core.progress.ProgressEvent` per step.
        mirror: Debian mirror; default :func:`apt_mirror`.
        suite: Debian suite.
        reuse_existing: if the image exists once the build lock is held (another process
            built it meanwhile), verify and return it instead of failing.

    Returns:
        The new image's metadata.

    Raises:
        ImageError: the image exists (without ``force``), no builder can work, or a step failed
            (the message quotes the failing command and the tail of its output; the full log
            is named in the hint). Nothing is left behind in the store on failure.
    """
    try:
        return _build_image(
            name,
            packages=packages,
            force=force,
            progress=progress,
            mirror=mirror,
            suite=suite,
            reuse_existing=reuse_existing,
        )
    except _Interrupted:
        raise ImageError(
            f"the build of image {name!r} was terminated; nothing was left behind",
            hint=build_command(name),
        ) from None


def _build_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    packages: Iterable[str] = (),
    force: bool = False,
    progress: ProgressCallback | None = None,
    mirror: str | None = None,
    suite: str = SUITE,
    reuse_existing: bool = False,
) -> ImageInfo:
    """The build itself; :func:`build_image` turns SIGTERM into an ImageError."""
    validate_name(name)
    extras = validate_packages(packages)
    all_packages = validate_packages((*BASE_PACKAGES, *extras))
    mirror = (mirror or apt_mirror()).rstrip("/")
    clock = ProgressClock(progress)
    store = paths.images_dir()
    target = paths.image_dir(name)
    is_root = os.geteuid() == 0

    for tool, package in (("mkfs.ext4", "e2fsprogs"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed", hint=f"apt-get install {package}")

    clock("preparing", f"image {name!r} in {target}")
    with _terminate_unwinds(), _build_lock(name, wait=True):
        if reuse_existing and image_exists(name):
            # Another vibebox built it while this one waited for the lock (first use).
            return verify_image(name, progress=progress)
        if target.exists() and not force and image_exists(name):
            raise ImageError(
                f"image {name!r} already exists ({target})", hint=rebuild_command(name)
            )
        _clean_stale_builds(store)
        work = store / f"{_BUILD_PREFIX}{name}-{os.getpid()}"
        remove_build_dir(work)
        work.mkdir(mode=0o755, parents=True)
        (work / "pid").write_text(str(os.getpid()))
        out = work / "out"
        out.mkdir(mode=0o755)
        rootfs = work / "rootfs"
        boot_out = work / "boot"
        mkfs_dir = work / "mkfs"
        log = out / BUILD_LOG
        run = _Runner(clock, log)
        plan: BuildPlan | None = None
        try:
            cache_dir = paths.vibebox_home() / "cache"
            plan = plan_build(
                rootfs=rootfs,
                boot_out=boot_out,
                packages=all_packages,
                mirror=mirror,
                suite=suite,
                cache_dir=cache_dir,
                guest=guest_dir(),
                is_root=is_root,
                unshare_problem=unshare_problem,
            )
            (cache_dir / plan.builder).mkdir(parents=True, exist_ok=True)
            log.write_text(
                f"vibebox {__version__} building image {name!r} with {plan.builder} from "
                f"{mirror} ({suite})\n",
                encoding="utf-8",
            )
            run(f"bootstrapping Debian {suite} ({plan.builder})", plan.bootstrap)
            if plan.builder == "debootstrap":
                run("configuring the guest", plan.configure)
                run("building the initrd", plan.initramfs)
                boot = rootfs / "boot"
            else:
                boot = boot_out
            kernel, kernel_version = _pick_boot_file(boot, "vmlinuz-")
            initrd, _ = _pick_boot_file(boot, "initrd.img-")
            shutil.copyfile(kernel, out / paths.IMAGE_KERNEL)
            shutil.copyfile(initrd, out / paths.IMAGE_INITRD)

            clock("sizing the root file system")
            size = rootfs_size_bytes(_dir_bytes(rootfs, plan.helper))
            ext4 = mkfs_dir / "root.ext4"
            mkfs_dir.mkdir(mode=0o777 if plan.helper else 0o755)
            if plan.helper:
                mkfs_dir.chmod(0o777)  # the namespace's root writes here
            with ext4.open("wb") as handle:
                handle.truncate(size)
            if plan.helper:
                ext4.chmod(0o666)
            run(
                f"making the ext4 root file system ({size // 2**20} MiB)",
                [
                    *plan.helper,
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    "vibebox-root",
                    "-d",
                    str(rootfs),
                    str(ext4),
                ],
            )
            remove_build_dir(rootfs, plan.helper)
            run(
                "converting to a qcow2 base disk",
                ["qemu-img", "convert", "-O", "qcow2", str(ext4), str(out / paths.IMAGE_BASE_DISK)],
            )
            ext4.unlink()

            clock("recording checksums")
            artifacts = {}
            for key, file in ARTIFACT_FILES.items():
                path = out / file
                path.chmod(0o644)  # QEMU runs as libvirt-qemu and only reads these
                artifacts[key] = Artifact(file, path.stat().st_size, sha256_file(path))
            info = ImageInfo(
                name=name,
                directory=target,
                suite=suite,
                mirror=mirror,
                builder=plan.builder,
                packages=all_packages,
                extra_packages=extras,
                built_at=datetime.now(UTC),
                build_seconds=clock.elapsed,
                kernel_version=kernel_version,
                cmdline=KERNEL_CMDLINE,
                rootfs_bytes=size,
                artifacts=artifacts,
            )
            (out / paths.IMAGE_METADATA).write_text(info.to_toml(), encoding="utf-8")
            _write_verified(
                out, {a.file: [*_stat_key(out / a.file), a.sha256] for a in artifacts.values()}
            )

            clock("installing the image", str(target))
            old = None
            if target.exists():
                old = store / f".old-{name}-{os.getpid()}"
                target.rename(old)
            out.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            with contextlib.suppress(OSError):
                (store / f".failed-{name}.log").unlink()
            clock("done", f"image {name!r} built in {clock.elapsed:.0f} s", done=True)
            return info
        except ImageError as exc:
            # Keep the log of a failed build next to the store and point the hint at it.
            kept = store / f".failed-{name}.log"
            try:
                shutil.copyfile(log, kept)
                inner = rootfs / "debootstrap" / "debootstrap.log"
                if inner.is_file():
                    with kept.open("a", encoding="utf-8") as handle:
                        handle.write(f"\n--- {inner}\n")
                        handle.write(inner.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                raise exc from None
            raise ImageError(exc.message, hint=f"the full build log is {kept}") from None
        finally:
            remove_build_dir(work, plan.helper if plan else ())
