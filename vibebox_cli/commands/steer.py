"""``vibebox allow HOST...`` / ``vibebox block HOST...``: steer the network policy from the host.

Typing the command on the host is the approval (a program in the guest cannot run it there),
so the change is approved at once: written to ``vibebox.toml`` (comments kept) and to the
approved snapshot, and applied to a running session without a restart. What else the file
holds that nobody approved stays pending. The decisions are the core's
(:mod:`vibebox_core.session.steer`); this prints one line per host.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.session import steer

_HELP = {
    "allow": (
        "let the project's VM reach these hosts (and their subdomains), now",
        "Allow HOST (and its subdomains) for the project's VM: in an allowlist an entry is "
        "added, in a blocklist every entry covering HOST is removed (removing a parent domain "
        "unblocks all of it: the output names each entry). Your command is the approval: "
        "vibebox.toml (comments kept) and the approved snapshot are both updated and a running "
        "session applies it at once.",
    ),
    "block": (
        "stop the project's VM reaching these hosts (and their subdomains), now",
        "Block HOST (and its subdomains) for the project's VM: in a blocklist an entry is "
        "added, in an allowlist every entry covering HOST is removed (removing a parent domain "
        "blocks all of it: the output names each entry). Your command is the approval: "
        "vibebox.toml (comments kept) and the approved snapshot are both updated and a running "
        "session applies it at once.",
    ),
}


def register(subparsers: Any) -> None:
    """Add ``vibebox allow`` and ``vibebox block``."""
    for action, (short, long) in _HELP.items():
        parser = subparsers.add_parser(action, help=short, description=long)
        parser.add_argument("hosts", nargs="+", metavar="HOST", help="a domain name")
        parser.add_argument("--directory", "-C", metavar="DIR", help="project directory")
        parser.set_defaults(handler=run, steer_action=action)


def run(args: argparse.Namespace) -> int:
    """Steer the hosts; 0 when done (a host already in that state counts as done)."""
    project = ProjectPaths.for_directory(getattr(args, "directory", None) or os.getcwd())
    if not project.root.is_dir():
        raise ConfigError(
            f"{clean(str(project.root))} is not a directory",
            hint=f"run `vibebox {args.steer_action}` in a project directory, or pass -C DIR",
        )
    action: steer.Action = "allow" if args.steer_action == "allow" else "block"
    result = steer.steer(project, args.hosts, action)
    for line in result.lines():
        print(clean(line, None))
    return 0
