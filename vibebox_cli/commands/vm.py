"""``vibebox exec``, ``stop``, ``ssh-config`` and ``shell``: a session from the command line.

Thin: every decision lives in :mod:`vibebox_core.session.start`,
:mod:`vibebox_core.session.execute` and :mod:`vibebox_core.session.teardown`. Progress lines go
to stderr only when stderr is a terminal, so ``vibebox exec`` output stays exactly the
command's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from vibebox_cli import console
from vibebox_core.errors import SSHError, VibeboxError
from vibebox_core.hypervisor import access
from vibebox_core.paths import ProjectPaths
from vibebox_core.sanitize import clean
from vibebox_core.session import execute, start, teardown
from vibebox_core.ssh import openssh

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add ``exec``, ``stop``, ``ssh-config`` and ``shell`` to the CLI."""
    run_exec = subparsers.add_parser(
        "exec",
        help="run a command in the project's VM (starting it if needed)",
        description="Run COMMAND in the project's VM, starting the session if needed. "
        "Arguments arrive exactly as given; stdin, stdout and stderr pass through; vibebox "
        "exits with the command's status. Put `--` before the command.",
        usage="vibebox exec [-C DIR] -- COMMAND [ARG...]",
    )
    run_exec.add_argument("--directory", "-C", metavar="DIR", help="project directory")
    run_exec.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    run_exec.set_defaults(handler=run_exec_command)

    stop = subparsers.add_parser(
        "stop",
        help="shut the project's VM down (the instance disk is kept)",
        description="Shut the project's VM down (ACPI, forced after a timeout). Attached "
        "vibebox processes are let go; the instance disk is kept for the next start.",
    )
    stop.add_argument("directory", nargs="?", metavar="DIR", help="project directory")
    stop.set_defaults(handler=run_stop)

    config = subparsers.add_parser(
        "ssh-config",
        help="print an OpenSSH Host block for the project's VM",
        description="Print an OpenSSH `Host vibebox-<project>` block (address, user, vibebox's "
        "key, a known-hosts file with the pinned host key, strict checking, no agent, X11 or "
        "port forwarding, no proxy or local command) for plain ssh, scp and editors. It is "
        "also written to .vibebox/ssh_config: `ssh -F .vibebox/ssh_config vibebox-<project>` "
        "reads it alone, without your ~/.ssh/config.",
    )
    config.add_argument("directory", nargs="?", metavar="DIR", help="project directory")
    config.set_defaults(handler=run_ssh_config)

    shell = subparsers.add_parser(
        "shell",
        help="open a plain SSH shell in the project's VM (starting it if needed)",
        description="Open an interactive shell in the project's VM over OpenSSH, starting the "
        "session if needed; the session counts as attached while the shell runs. ssh runs "
        "with vibebox's own config (`ssh -F .vibebox/ssh_config`): nothing in ~/.ssh/config "
        "applies, and agent, X11 and port forwarding are off.",
    )
    shell.add_argument("directory", nargs="?", metavar="DIR", help="project directory")
    shell.set_defaults(handler=run_shell)


def _directory(args: argparse.Namespace) -> str:
    return str(getattr(args, "directory", None) or os.getcwd())


def with_access_prompt(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()``; when QEMU cannot reach the files, ask (on a terminal) and retry once.

    Explain, then fix with consent (README.md, "Sessions, the VM and SSH"): the grant is
    search permission only (:mod:`vibebox_core.hypervisor.access`).
    """
    try:
        return asyncio.run(make())
    except access.QemuAccessError as exc:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise
        print(f"vibebox: {clean(exc.message, None)}", file=sys.stderr)
        print(f"  command: {clean(exc.hint, None)}", file=sys.stderr)
        if not console.ask_yes_no("Allow it now? [y/N] "):
            raise
        access.grant_qemu_access(exc.path)
        return asyncio.run(make())


def run_exec_command(args: argparse.Namespace) -> int:
    """``vibebox exec -- COMMAND...``."""
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: vibebox exec [-C DIR] -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    project = ProjectPaths.for_directory(_directory(args))
    return with_access_prompt(
        lambda: execute.exec_command(
            project, argv, progress=console.progress_on_terminal(), notice=console.print_notice
        )
    )


def run_stop(args: argparse.Namespace) -> int:
    """``vibebox stop``."""
    project = ProjectPaths.for_directory(_directory(args))
    was_running = asyncio.run(teardown.stop(project))
    root = clean(project.root)
    print(f"stopped {root}" if was_running else f"{root}: not running")
    return 0


def run_ssh_config(args: argparse.Namespace) -> int:
    """``vibebox ssh-config``: print the Host block (the session must have booted once)."""
    project = ProjectPaths.for_directory(_directory(args))
    ipv4 = project.recorded_ipv4()
    if ipv4 is None or not project.known_hosts.is_file():
        raise SSHError(
            f"the session of {project.root} has not booted yet, so it has no address",
            hint="start it once (`vibebox` or `vibebox exec -- true`), then run this again",
        )
    block = openssh.ssh_config_block(project, ipv4)
    openssh.write_openssh_config(project, ipv4)
    print(block, end="")
    return 0


def run_shell(args: argparse.Namespace) -> int:
    """``vibebox shell``: an interactive OpenSSH session while attached."""
    if shutil.which("ssh") is None:
        raise VibeboxError(
            "the OpenSSH client (ssh) is not installed",
            hint="apt-get install openssh-client, or use the dashboard (`vibebox`)",
        )
    project = ProjectPaths.for_directory(_directory(args))

    async def session() -> int:
        async with start.attach(
            project, console.progress_on_terminal(), client="shell", notice=console.print_notice
        ) as running:
            if running.connection is not None:
                running.connection.close()  # OpenSSH takes over; the attachment stays
            argv = openssh.openssh_argv(running.project, running.ipv4, "-t")
            # -F: the user's ~/.ssh/config is not read; no agent socket is even offered.
            env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
            process = await asyncio.to_thread(subprocess.run, argv, env=env)
            return process.returncode

    return with_access_prompt(session)
