"""Building a base image: the steps from an empty directory to a verified image in the store.

Split from the store (:mod:`vibebox_core.images.store`), which a session start needs on every boot,
because only ``vibebox image build`` and a first start without an image get here. What is built and
with which commands is decided up front by :mod:`vibebox_core.images.plan`; how each command runs
and how the scratch directory is cleaned up is :mod:`vibebox_core.images.workspace`. This module is
the sequence: bootstrap (debootstrap as root, mmdebstrap in unshare mode otherwise), configure the
guest, build the initrd, take the kernel and initrd out of ``/boot``, make the ext4 root with
``mkfs.ext4 -d`` (no loop mount), convert it to a qcow2 base disk, record the checksums in
``image.toml``, and rename the result into place, reporting progress per step.

Decisions worth knowing:

* **Atomic.** Everything is built in ``images/.build-<name>-<pid>/`` on the same file system and
  renamed into place at the end; a failed or interrupted build removes its directory (mounts the
  bootstrap left below it are detached first), and a build killed outright is cleaned up by the
  next one. The store's lock (:func:`vibebox_core.images.store.build_lock`) serialises builds of the
  same name across processes.
* **A failed build explains itself.** The error quotes the failing command and the tail of its
  output; the full log (with debootstrap's own) is kept as ``images/.failed-<name>.log``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from vibebox_core import __version__, paths
from vibebox_core.errors import ImageError
from vibebox_core.images import plan, store, workspace
from vibebox_core.images.record import (
    ARTIFACT_FILES,
    Artifact,
    ImageInfo,
    build_command,
    rebuild_command,
    validate_name,
)
from vibebox_core.progress import ProgressCallback, ProgressClock

#: Build log kept in the image directory.
BUILD_LOG = "build.log"


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
    suite: str = plan.SUITE,
    reuse_existing: bool = False,
) -> ImageInfo:
    """Build a Debian guest image into the store, step by step, atomically.

    Args:
        name: the image's name (directory in the store).
        packages: extra Debian packages besides :data:`~vibebox_core.images.plan.BASE_PACKAGES`.
        force: replace an existing image of that name.
        progress: called with a :class:`~vibebox_core.progress.ProgressEvent` per step.
        mirror: Debian mirror; default :func:`~vibebox_core.images.plan.apt_mirror`.
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
    except workspace.Interrupted:
        raise ImageError(
            f"the build of image {name!r} was terminated; nothing was left behind",
            hint=build_command(name),
        ) from None


def _disk_error(store_dir: Path, exc: OSError) -> ImageError:
    """A build that cannot write under ``store_dir`` (a full disk, most often)."""
    if exc.errno == errno.ENOSPC:
        return ImageError(
            f"cannot build the image: the disk under {store_dir} is full (No space left on device)",
            hint="free some space (an image and its build need about 3 GiB), or set "
            "VIBEBOX_HOME to a larger disk; `vibebox doctor` shows the free space",
        )
    return ImageError(
        f"cannot build the image in {store_dir}: {exc.strerror or exc}",
        hint=f"check that you may write to {store_dir}",
    )


def _build_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    packages: Iterable[str] = (),
    force: bool = False,
    progress: ProgressCallback | None = None,
    mirror: str | None = None,
    suite: str = plan.SUITE,
    reuse_existing: bool = False,
) -> ImageInfo:
    """The build itself; :func:`build_image` turns SIGTERM into an ImageError."""
    validate_name(name)
    extras = plan.validate_packages(packages)
    all_packages = plan.validate_packages((*plan.BASE_PACKAGES, *extras))
    mirror = (mirror or plan.apt_mirror()).rstrip("/")
    clock = ProgressClock(progress)
    store_dir = paths.images_dir()
    target = paths.image_dir(name)
    is_root = os.geteuid() == 0

    for tool, package in (("mkfs.ext4", "e2fsprogs"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed", hint=f"apt-get install {package}")

    clock("preparing", f"image {name!r} in {target}")
    with workspace.terminate_unwinds(), store.build_lock(name, wait=True):
        if reuse_existing and store.image_exists(name):
            # Another vibebox built it while this one waited for the lock (first use).
            return store.verify_image(name, progress=progress)
        if target.exists() and not force and store.image_exists(name):
            raise ImageError(
                f"image {name!r} already exists ({target})", hint=rebuild_command(name)
            )
        workspace.clean_stale_builds(store_dir)
        work = store_dir / f"{workspace.BUILD_PREFIX}{name}-{os.getpid()}"
        workspace.remove_build_dir(work)
        out = work / "out"
        try:
            work.mkdir(mode=0o755, parents=True)
            (work / "pid").write_text(str(os.getpid()))
            out.mkdir(mode=0o755)
        except OSError as exc:
            workspace.remove_build_dir(work)
            raise _disk_error(store_dir, exc) from None
        rootfs = work / "rootfs"
        boot_out = work / "boot"
        mkfs_dir = work / "mkfs"
        log = out / BUILD_LOG
        run = workspace.Runner(clock, log)
        build_plan: plan.BuildPlan | None = None
        try:
            cache_dir = paths.vibebox_home() / "cache"
            build_plan = plan.plan_build(
                rootfs=rootfs,
                boot_out=boot_out,
                packages=all_packages,
                mirror=mirror,
                suite=suite,
                cache_dir=cache_dir,
                guest=plan.guest_dir(),
                is_root=is_root,
                unshare_problem=plan.unshare_problem,
            )
            (cache_dir / build_plan.builder).mkdir(parents=True, exist_ok=True)
            log.write_text(
                f"vibebox {__version__} building image {name!r} with {build_plan.builder} from "
                f"{mirror} ({suite})\n",
                encoding="utf-8",
            )
            run(f"bootstrapping Debian {suite} ({build_plan.builder})", build_plan.bootstrap)
            if build_plan.builder == "debootstrap":
                run("configuring the guest", build_plan.configure)
                run("building the initrd", build_plan.initramfs)
                boot = rootfs / "boot"
            else:
                boot = boot_out
            kernel, kernel_version = _pick_boot_file(boot, "vmlinuz-")
            initrd, _ = _pick_boot_file(boot, "initrd.img-")
            shutil.copyfile(kernel, out / paths.IMAGE_KERNEL)
            shutil.copyfile(initrd, out / paths.IMAGE_INITRD)

            clock("sizing the root file system")
            size = plan.rootfs_size_bytes(workspace.dir_bytes(rootfs, build_plan.helper))
            ext4 = mkfs_dir / "root.ext4"
            mkfs_dir.mkdir(mode=0o777 if build_plan.helper else 0o755)
            if build_plan.helper:
                mkfs_dir.chmod(0o777)  # the namespace's root writes here
            with ext4.open("wb") as handle:
                handle.truncate(size)
            if build_plan.helper:
                ext4.chmod(0o666)
            run(
                f"making the ext4 root file system ({size // 2**20} MiB)",
                [
                    *build_plan.helper,
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
            workspace.remove_build_dir(rootfs, build_plan.helper)
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
                artifacts[key] = Artifact(file, path.stat().st_size, store.sha256_file(path))
            info = ImageInfo(
                name=name,
                directory=target,
                suite=suite,
                mirror=mirror,
                builder=build_plan.builder,
                packages=all_packages,
                extra_packages=extras,
                built_at=datetime.now(UTC),
                build_seconds=clock.elapsed,
                kernel_version=kernel_version,
                cmdline=plan.KERNEL_CMDLINE,
                rootfs_bytes=size,
                artifacts=artifacts,
                guest_digest=plan.guest_digest(),
            )
            (out / paths.IMAGE_METADATA).write_text(info.to_toml(), encoding="utf-8")
            store.remember_verified(out, artifacts.values())

            clock("installing the image", str(target))
            old = None
            if target.exists():
                old = store_dir / f".old-{name}-{os.getpid()}"
                target.rename(old)
            out.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            with contextlib.suppress(OSError):
                (store_dir / f".failed-{name}.log").unlink()
            clock("done", f"image {name!r} built in {clock.elapsed:.0f} s", done=True)
            return info
        except ImageError as exc:
            # Keep the log of a failed build next to the store and point the hint at it.
            kept = store_dir / f".failed-{name}.log"
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
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise _disk_error(store_dir, exc) from None
        finally:
            workspace.remove_build_dir(work, build_plan.helper if build_plan else ())


def ensure_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    progress: ProgressCallback | None = None,
) -> ImageInfo:
    """Return a verified image, building it first when there is none (first use).

    A damaged image is refused (never silently rebuilt): the user decides with the rebuild
    command in the error's hint.
    """
    if store.image_exists(name):
        info = store.verify_image(name, progress=progress)
        if store.outdated(info):
            ProgressClock(progress)("outdated image", store.outdated_notice(info), done=True)
        return info
    return build_image(name, progress=progress, reuse_existing=True)
