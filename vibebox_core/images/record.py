"""What an image is on record: its name, its ``image.toml``, and the commands that (re)build it.

Every image directory holds ``image.toml`` (format :data:`METADATA_FORMAT`), which records what
was built (suite, mirror, packages, kernel version, kernel command line, sizes) and the sha256
of each artifact. This module is that record and nothing else: :class:`ImageInfo` renders and
parses it without touching the disk, so the store (:mod:`vibebox_core.images.store`) and the build
(:mod:`vibebox_core.images.build`) share one definition of the format, of a valid image name,
and of the hint that names the command fixing a missing or damaged image.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tomlkit

from vibebox_core import __version__, paths
from vibebox_core.errors import ImageError

#: Version of the ``image.toml`` layout.
METADATA_FORMAT = 1
#: Artifacts, by their key in ``image.toml``.
ARTIFACT_FILES: Mapping[str, str] = {
    "kernel": paths.IMAGE_KERNEL,
    "initrd": paths.IMAGE_INITRD,
    "base_disk": paths.IMAGE_BASE_DISK,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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
        guest_digest: :func:`vibebox_core.images.plan.guest_digest` at build time (empty for
            an image made before it was recorded).
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
    guest_digest: str = ""

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
        if self.guest_digest:
            doc["guest_digest"] = self.guest_digest
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
            raise damaged(directory.name, f"{where} is not valid TOML: {exc}") from None
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
                guest_digest=str(data.get("guest_digest", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise damaged(directory.name, f"{where}: {detail}") from None


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


def damaged(name: str, message: str) -> ImageError:
    """The error for image ``name`` whose files or metadata are wrong; the hint rebuilds it."""
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
