"""What goes into a base image and how it is bootstrapped, decided before anything runs.

Kept apart from the build's execution (:mod:`vibebox_core.images.build`) so that every choice can
be unit-tested without a mirror or root: the Debian suite, mirror and package set, the kernel
command line recorded in the image, the guest files, the root file system's size and, above
all, the builder and its exact command lines (:func:`plan_build`). What it reads from the host
(apt sources, user namespaces) sits in small probes a test can replace.

Decisions worth knowing:

* **Builder.** As root, ``debootstrap --variant=minbase`` (its downloads are cached under
  ``~/.vibebox/cache/debootstrap`` so a rebuild fetches nothing new); otherwise
  ``mmdebstrap --mode=unshare`` (needs subuid/subgid ranges and unprivileged user namespaces).
  When neither can work the build stops before doing anything with an :class:`ImageError` that
  names the exact command to run instead. :func:`plan_build` makes that choice and is pure
  apart from the probes it is given.
* **Guest contents.** The guest is configured on the host by ``guest/configure-rootfs.sh``
  (package data): vibebox's boot-time setup unit, systemd-networkd DHCP, sshd with only the
  seeded ed25519 host key, the shell integration, a small ``MODULES=list`` initrd that has the
  virtio drivers and virtiofs. The ext4 root is made with ``mkfs.ext4 -d`` (no loop mount) and
  converted to qcow2; the guest grows it to the instance disk's size at boot.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vibebox_core.errors import ImageError

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
#: Free space left in the root file system beyond its contents (MiB), plus 15 %.
ROOTFS_HEADROOM_MB = 256

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")

Builder = Literal["debootstrap", "mmdebstrap"]


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


def guest_dir() -> Path:
    """The package data directory with the guest's files (``vibebox_core/guest``)."""
    return Path(str(importlib.resources.files("vibebox_core").joinpath("guest")))


def guest_digest(guest: Path | None = None) -> str:
    """sha256 of what goes into every guest besides Debian itself: the files under ``guest/``
    (names and contents) and :data:`BASE_PACKAGES`.

    Recorded in ``image.toml`` at build time; an image whose digest differs was built by a
    vibebox with other guest files (an older or newer checkout), so its shell integration or
    boot-time setup may not match this one (:func:`vibebox_core.images.store.outdated`).
    """
    root = guest or guest_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update("\n".join(BASE_PACKAGES).encode())
    return digest.hexdigest()


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


def rootfs_size_bytes(content_bytes: int) -> int:
    """Size of the ext4 file system for ``content_bytes`` of files: +15 % and the headroom,
    rounded up to 64 MiB (the guest grows it to the instance disk at boot)."""
    mib = 1024 * 1024
    size = int(content_bytes * 1.15) + ROOTFS_HEADROOM_MB * mib
    step = 64 * mib
    return (size + step - 1) // step * step
