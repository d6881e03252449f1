"""``vibebox doctor``: is this host ready for vibebox? One line per check, with the fix.

Thin: the checks live in :mod:`vibebox_core.doctor`. Exit status 0 when every check holds
(warnings, e.g. a nested host where TCG is used, do not fail it), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from vibebox_core.doctor import examine
from vibebox_core.doctor.checks import all_hold
from vibebox_core.paths import ProjectPaths


def register(subparsers: Any) -> None:
    """Add ``doctor`` to the CLI."""
    parser = subparsers.add_parser(
        "doctor",
        help="check this host: libvirt, KVM, virtiofsd, permissions, subnets, leftovers",
        description="Check the host the way a support engineer would: libvirt reachable and "
        "fast, KVM or TCG, virtiofsd, whether QEMU can reach the image store and the project, "
        "the nwfilter driver, a free subnet, disk space, your libvirt group, and vibebox "
        "domains, networks or filters left without a session. One line each (✓ holds, "
        "! worth knowing, ✗ fails, with the fix); exits 0 only when nothing fails.",
    )
    parser.add_argument(
        "--directory",
        "-C",
        metavar="DIR",
        help="project directory whose vibebox.toml and .vibebox/ to check (default: the "
        "current one)",
    )
    parser.add_argument("--uri", help="libvirt URI to check (default: the project's)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of checks")
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Run every check and print it; 0 when all hold."""
    project: ProjectPaths | None = ProjectPaths.for_directory(args.directory or os.getcwd())
    if (
        project is not None
        and not args.directory
        and not (project.config.is_file() or project.cache.is_dir())
    ):
        project = None  # the current directory is not a project: check the host only
    checks = examine.run_doctor(args.uri, project)
    if args.json:
        print(json.dumps([check.to_dict() for check in checks], indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(check.line())
    return 0 if all_hold(checks) else 1
