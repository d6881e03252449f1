"""``vibebox image build|list|verify|rm``: the base image store from the command line.

Thin: every decision lives in :mod:`vibebox_core.images.store` and its ``image*`` siblings; this
module parses arguments, prints progress lines (``[  12.3s] step: detail``) to stderr and
results to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vibebox_cli import console
from vibebox_core import paths
from vibebox_core.errors import ImageError
from vibebox_core.images import build, record, store
from vibebox_core.progress import ProgressEvent
from vibebox_core.sanitize import clean


def register(subparsers: Any) -> None:
    """Add the ``image`` command and its subcommands to the CLI."""
    parser = subparsers.add_parser(
        "image",
        help="build and manage base images",
        description="Build and manage the Debian base images sessions boot from "
        f"({paths.images_dir()}).",
    )
    sub = parser.add_subparsers(dest="image_command", metavar="COMMAND", required=True)

    build_cmd = sub.add_parser(
        "build",
        help="build a Debian 12 base image",
        description="Build a Debian 12 (bookworm) guest from the Debian mirror "
        "(debootstrap as root, mmdebstrap --mode=unshare otherwise).",
    )
    build_cmd.add_argument(
        "--name", default=paths.DEFAULT_IMAGE_NAME, help="image name (%(default)s)"
    )
    build_cmd.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="P",
        help="extra Debian package to install (repeatable)",
    )
    group = build_cmd.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="replace an existing image")
    group.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the image exists, its checksums hold and it was built from this "
        "vibebox's guest files (rebuild it otherwise)",
    )
    build_cmd.set_defaults(handler=run_build)

    listing = sub.add_parser("list", help="list base images")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list)

    verify = sub.add_parser("verify", help="check an image's files against their checksums")
    verify.add_argument("name", nargs="?", default=paths.DEFAULT_IMAGE_NAME)
    verify.set_defaults(handler=run_verify)

    remove = sub.add_parser("rm", help="remove a base image")
    remove.add_argument("name")
    remove.set_defaults(handler=run_rm)


def print_progress(event: ProgressEvent) -> None:
    """Print one progress event as a line on stderr, a finished step marked ✓ (build output
    is escaped: it comes from programs run in the image's chroot)."""
    console.print_progress(event, mark_done=True)


def run_build(args: argparse.Namespace) -> int:
    """``vibebox image build``."""
    name: str = args.name
    if args.if_missing and store.image_exists(name):
        try:
            info = store.verify_image(name, progress=print_progress)
        except ImageError as exc:
            print(f"vibebox: {clean(exc.message, None)}; rebuilding it", file=sys.stderr)
        else:
            if not store.outdated(info):
                print(f"image {name!r} is present and verified ({info.directory})")
                return 0
            print(
                f"vibebox: image {name!r} was built from other guest files; rebuilding it",
                file=sys.stderr,
            )
        force = True
    else:
        force = bool(args.force)
    info = build.build_image(name, packages=args.package, force=force, progress=print_progress)
    print(
        f"built image {info.name!r} in {info.build_seconds:.0f} s: kernel {info.kernel_version}, "
        f"{_mib(info.total_bytes)} MiB in {info.directory}"
    )
    return 0


def _mib(size: int) -> int:
    return round(size / 2**20)


def _listing_dict(entry: store.ImageListing) -> dict[str, Any]:
    info = entry.info
    if info is None:
        return {"name": entry.name, "directory": str(entry.directory), "problem": entry.problem}
    return {
        "name": info.name,
        "directory": str(info.directory),
        "suite": info.suite,
        "builder": info.builder,
        "built_at": info.built_at.isoformat(),
        "kernel_version": info.kernel_version,
        "bytes": info.total_bytes,
        "extra_packages": list(info.extra_packages),
        "outdated": store.outdated(info),
        "problem": None,
    }


def run_list(args: argparse.Namespace) -> int:
    """``vibebox image list``."""
    entries = store.list_images()
    if args.json:
        print(json.dumps([_listing_dict(e) for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no images in {paths.images_dir()} (build one: vibebox image build)")
        return 0
    print(f"{'NAME':<16} {'SUITE':<9} {'BUILT (UTC)':<17} {'SIZE':>8}  KERNEL / PROBLEM")
    for entry in entries:
        info = entry.info
        if info is None:
            problem = clean(entry.problem, None)
            print(f"{clean(entry.name):<16} {'?':<9} {'?':<17} {'?':>8}  damaged: {problem}")
            continue
        built = info.built_at.strftime("%Y-%m-%d %H:%M")
        extras = f" (+{', '.join(info.extra_packages)})" if info.extra_packages else ""
        size = f"{_mib(info.total_bytes)} MiB"
        kernel = info.kernel_version + extras
        if store.outdated(info):
            kernel += f"  (outdated: {record.rebuild_command(info.name)})"
        print(f"{info.name:<16} {info.suite:<9} {built:<17} {size:>8}  {kernel}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``vibebox image verify``: hash every file, ignoring the cache."""
    info = store.verify_image(args.name, use_cache=False, progress=print_progress)
    print(f"image {info.name!r}: every checksum holds ({info.directory})")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    """``vibebox image rm NAME``."""
    store.remove_image(args.name)
    print(
        f"removed image {args.name!r}; sessions created from it need it back "
        f"({record.build_command(args.name)}) or a fresh start (:new)"
    )
    return 0
