"""``vibebox approve``: accept what ``vibebox.toml`` asks for, after seeing it.

The project directory is writable from the guest (and a cloned repository brings its own
file), so a program there could widen its own mounts, network, resources or libvirt URI by
editing ``vibebox.toml``. The host takes those values only from the approved snapshot kept
outside the project (:mod:`vibebox_core.config.approval`); starts refuse a change, and a first start
that grants more than the defaults, until the user approves it on the host: the dashboard
asks in a dialog, the CLI points here. This shows the difference against the approved
snapshot and records exactly what was shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from vibebox_cli import console
from vibebox_core.config import approval, snapshot
from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.session import approve
from vibebox_core.share import pins


def register(subparsers: Any) -> None:
    """Add the ``approve`` command to the CLI."""
    parser = subparsers.add_parser(
        "approve",
        help="approve changed mounts, network or resources in vibebox.toml",
        description="Show how vibebox.toml differs from what you last approved for this "
        "project (mounts, [network], cpus, memory, disk, accel, libvirt_uri, grace) and "
        "approve it.",
    )
    parser.add_argument(
        "directory", nargs="?", default=".", help="project directory (default: the current one)"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="approve without asking")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Show the difference and record the approval; 0 when approved or nothing to do."""
    project = ProjectPaths.for_directory(args.directory)
    if not project.root.is_dir():
        raise ConfigError(
            f"{project.root} is not a directory",
            hint="run `vibebox approve` in a project directory, or pass one",
        )
    found = approval.review(project)
    if found.error is not None:
        raise found.error
    moved: list[str] = []
    if found.status == "approved":
        # The same text, but a mount's directory was replaced since (a new inode, a symlink).
        moved = pins.changed_pins(snapshot.approved_pins(project))
        if not moved:
            print("nothing to approve: vibebox.toml matches what you approved")
            return 0
    check = found.check()
    if moved:
        print(f"the directories of mounts you approved in {clean(project.root)} changed:")
        check = dataclasses.replace(check, diff=tuple(moved))
    elif found.status == "new":
        if not found.diff:
            approve.approve(project, expected=check.digest)
            print("nothing to approve: vibebox.toml asks for the defaults only (recorded)")
            return 0
        print(f"vibebox.toml in {clean(project.root)} was never approved; it asks for:")
    else:
        print(f"vibebox.toml in {clean(project.root)} changed since you approved it:")
    for line in check.diff:
        print(f"  {clean(line, None)}")  # guest-written values: no raw control character
    if not args.yes:
        if not sys.stdin.isatty():
            print("vibebox: not approved (no terminal to ask; pass --yes)", file=sys.stderr)
            return 1
        if not console.ask_yes_no("Approve these changes? [y/N] "):
            print("not approved; the session keeps what you approved before")
            return 1
    # Exactly what was shown: a file changed again meanwhile is refused, not approved.
    when = approve.approve(project, expected=check.digest)
    if moved:
        print("approved: the session serves the new directories from its next start")
    elif when == "live":
        print("approved: a running session applies it now")
    else:
        print("approved: it applies on the session's next start")
    return 0
