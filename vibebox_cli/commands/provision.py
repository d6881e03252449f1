"""``vibebox provision``: run ``[provision] run`` of ``vibebox.toml`` in the project's VM again.

A new session runs the list by itself, once (:mod:`vibebox_core.session.provision`); this runs
it on demand, whatever the record says: after the list changed, or after a step failed. It
starts the session when needed. Each step and its output are shown on stderr as it runs
(escaped: the guest chose them), the output is kept in ``.vibebox/provision.log``, and a failing
step ends the command with status 1, naming the step and its exit status.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from vibebox_cli import console
from vibebox_cli.commands.vm import with_access_prompt
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import continued
from vibebox_core.session import provision, start

#: How this command names itself to the session's supervisor (its log).
CLIENT_NAME = "provision"


def register(subparsers: Any) -> None:
    """Add ``vibebox provision``."""
    parser = subparsers.add_parser(
        "provision",
        help="run [provision] run of vibebox.toml in the project's VM again",
        description="Run the commands of [provision] run in vibebox.toml in the project's VM, "
        "in order, as the guest user in the project directory, starting the session if "
        "needed. A new session runs them once by itself; this runs them again (after you "
        "changed the list, or after a step failed). The output is shown as it comes and kept "
        "in .vibebox/provision.log; a failing step stops the list and the command exits 1.",
    )
    parser.add_argument("directory", nargs="?", metavar="DIR", help="project directory")
    parser.set_defaults(handler=run)


async def provision_again(project: ProjectPaths) -> provision.Outcome:
    """Start the session if needed and run the list, whatever the record says."""
    # connect=False: no port forwards for this; SSH is made when a step runs.
    began = time.monotonic()
    running = await start.ensure_running(
        project, console.print_progress, client=CLIENT_NAME, connect=False
    )
    try:
        later = continued(console.print_progress, began)
        return await provision.provision_session(running, later, only_if_new=False)
    finally:
        await running.close()


def run(args: argparse.Namespace) -> int:
    """``vibebox provision [DIR]``: 0 when every step succeeded (or there is none)."""
    project = ProjectPaths.for_directory(getattr(args, "directory", None) or os.getcwd())
    outcome = with_access_prompt(lambda: provision_again(project))
    error = provision.failure(outcome)
    if error is not None:
        raise error
    record = outcome.record
    if record is None or record.total == 0:
        print("nothing to provision: [provision] run in vibebox.toml is empty")
    else:
        print(f"provisioned: {record.summary()}")
    return 0
