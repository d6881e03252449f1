"""``vibebox checkpoint save | list | restore | rm``: checkpoints of the guest's disk.

Thin: every decision (the mechanism, the names, the sizes, what a running VM goes through) is in
:mod:`vibebox_core.session.checkpoint`. Restore asks ``[y/N]`` on a terminal (everything the
guest wrote to its disk since the checkpoint goes) and refuses without one unless ``--yes`` is
given, as ``vibebox delete`` does. Progress lines go to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from vibebox_cli import console
from vibebox_core.errors import CheckpointError
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.session import checkpoint


def register(subparsers: Any) -> None:
    """Add ``checkpoint`` and its subcommands to the CLI."""
    parser = subparsers.add_parser(
        "checkpoint",
        help="save, list, restore or remove checkpoints of the guest's disk",
        description="Checkpoints of the session's guest disk (internal qcow2 snapshots in "
        ".vibebox/disk.qcow2): save one before something risky, restore it to roll the "
        "guest back. Project files live on the host and are never part of a checkpoint. "
        "Checkpoints survive stop/start and are deleted with the session.",
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    save = verbs.add_parser(
        "save",
        help="save a checkpoint (a running VM is paused for a moment)",
        description="Save a checkpoint of the guest's disk. A running VM is asked to `sync`, "
        "then paused while QEMU takes the snapshot (vibebox says how long); a stopped one is "
        "not started. NAME: 1-40 letters, digits, '.', '_' or '-' (default: "
        "ckpt-YYYYMMDD-HHMMSS, UTC).",
    )
    save.add_argument("name", nargs="?", metavar="NAME", help="the checkpoint's name")
    _directory_option(save)
    save.set_defaults(handler=run_save)

    listing = verbs.add_parser(
        "list",
        help="list the checkpoints with their time and size",
        description="List the session's checkpoints, oldest first: name, when it was saved "
        "(UTC) and its data (the guest's own data on top of the base image in that disk "
        "state; checkpoints share data, so the sizes do not add up), then what the disk file "
        "takes on the host, checkpoints included. --json prints a list of objects with "
        "`name`, `created` and `data_bytes` (null when unknown).",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    _directory_option(listing)
    listing.set_defaults(handler=run_list)

    restore = verbs.add_parser(
        "restore",
        help="roll the guest's disk back to a checkpoint (asks first)",
        description="Bring the guest's disk back to checkpoint NAME. A running VM is shut "
        "down (as `vibebox stop`), restored and started again; attached vibebox processes "
        "are let go. Everything written to the guest's disk since the checkpoint is lost; "
        "project files on the host are not touched. Asks on a terminal; --yes skips that.",
    )
    restore.add_argument("name", metavar="NAME", help="the checkpoint")
    restore.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _directory_option(restore)
    restore.set_defaults(handler=run_restore)

    remove = verbs.add_parser(
        "rm",
        help="remove a checkpoint",
        description="Remove checkpoint NAME from the guest's disk (also while the VM runs).",
    )
    remove.add_argument("name", metavar="NAME", help="the checkpoint")
    _directory_option(remove)
    remove.set_defaults(handler=run_rm)


def _directory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--directory", "-C", metavar="DIR", help="project directory")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print("vibebox checkpoint: choose save, list, restore or rm", file=sys.stderr)
    return 2


def _project(args: argparse.Namespace) -> ProjectPaths:
    return ProjectPaths.for_directory(getattr(args, "directory", None) or os.getcwd())


def run_save(args: argparse.Namespace) -> int:
    """``vibebox checkpoint save [NAME]``."""
    project = _project(args)
    saved = asyncio.run(
        checkpoint.save(project, args.name, progress=console.progress_on_terminal())
    )
    print(clean(saved.describe()))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``vibebox checkpoint list``."""
    project = _project(args)
    found = asyncio.run(checkpoint.list_checkpoints(project))
    if args.json:
        rows = [
            {
                "name": c.name,
                "created": c.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data_bytes": c.data,
            }
            for c in found
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        print("no checkpoints (`vibebox checkpoint save` makes one)")
    else:
        width = max(4, *(len(clean(c.name)) for c in found))
        print(f"{'NAME':<{width}}  {'CREATED (UTC)':<19}  DATA")
        for c in found:
            created = c.created.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{clean(c.name):<{width}}  {created:<19}  {checkpoint.format_size(c.data)}")
    usage = checkpoint.format_size(checkpoint.disk_usage(project))
    print(f"disk.qcow2 takes {usage} on the host, checkpoints included")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """``vibebox checkpoint restore NAME``: asks first (``--yes`` skips; no terminal is no)."""
    name = checkpoint.check_name(args.name)
    project = _project(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CheckpointError(
                f"not restoring checkpoint {name}: no terminal to ask for confirmation",
                hint=f"run `vibebox checkpoint restore {name} --yes` to restore without asking",
            )
        prompt = (
            f"Restore checkpoint {name} of {clean(project.root)}?\n"
            "  The guest's disk goes back to it: what the guest wrote to its disk since is "
            "lost.\n  A running VM is shut down and started again. Project files on the host "
            "are not touched. [y/N] "
        )
        if not console.ask_yes_no(prompt):
            print("not restored")
            return 1
    # No access prompt to retry with: a second restore would find the VM off and not start it.
    restored = asyncio.run(
        checkpoint.restore(project, name, progress=console.progress_on_terminal())
    )
    print(clean(restored.describe()))
    return 0


def run_rm(args: argparse.Namespace) -> int:
    """``vibebox checkpoint rm NAME``."""
    name = checkpoint.check_name(args.name)
    asyncio.run(checkpoint.remove(_project(args), name))
    print(f"removed checkpoint {name}")
    return 0
