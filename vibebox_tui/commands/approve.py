"""``vibebox approve``: accept a changed ``[network]`` or ``mounts`` in ``vibebox.toml``.

The project directory is writable from the guest, so a program there could widen its own
mounts or network by editing ``vibebox.toml``. Starts refuse such a change until the user
approves it on the host: the dashboard asks in a dialog, the CLI points here. This shows the
difference against the last approved policy and records the new one in the session index.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vibebox_core.config import load_config
from vibebox_core.errors import SessionNotFoundError
from vibebox_core.netenforce import change_applies
from vibebox_core.netpolicy import (
    APPROVED_POLICY_KEY,
    canonical_policy,
    check_approval,
    record_approval,
)
from vibebox_core.paths import ProjectPaths
from vibebox_core.sessions import SessionIndex


def register(subparsers: Any) -> None:
    """Add the ``approve`` command to the CLI."""
    parser = subparsers.add_parser(
        "approve",
        help="approve changed mounts or network in vibebox.toml",
        description="Show how the mounts and [network] of vibebox.toml differ from what you "
        "last approved for this project's session, and approve them.",
    )
    parser.add_argument(
        "directory", nargs="?", default=".", help="project directory (default: the current one)"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="approve without asking")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Show the difference and record the approval; 0 when approved or nothing to do."""
    project = ProjectPaths.for_directory(args.directory)
    config = load_config(project, create=False)
    index = SessionIndex()
    entry = index.find_by_directory(project.root)
    if entry is None:
        raise SessionNotFoundError(
            f"{project.root} has no session yet",
            hint="run `vibebox` there: the first start approves its vibebox.toml",
        )
    check = check_approval(entry.extra, config)
    if check.status != "changed":
        if check.status == "new":
            record_approval(index, entry.id, config)
        print("nothing to approve: vibebox.toml matches the approved mounts and network")
        return 0
    print(f"vibebox.toml in {project.root} changed since you approved it:")
    for line in check.diff:
        print(f"  {line}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("vibebox: not approved (no terminal to ask; pass --yes)", file=sys.stderr)
            return 1
        answer = input("Approve these changes? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not approved; the session keeps the previous mounts and network")
            return 1
    old = entry.extra.get(APPROVED_POLICY_KEY)
    record_approval(index, entry.id, config)
    when = "next start"
    if isinstance(old, str):
        when = change_applies(json.loads(old), canonical_policy(config))
    if when == "live":
        print("approved: a running session applies it now")
    else:
        print("approved: it applies on the session's next start")
    return 0
