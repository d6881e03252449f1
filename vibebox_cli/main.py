"""The ``vibebox`` command line: the parser, its command list, the error boundary.

Subcommands live in ``vibebox_cli/commands/*.py``, registered in the order of
:data:`COMMANDS`; each module exposes ``register(subparsers) -> None`` and sets ``handler`` (a
function of the parsed arguments that returns the exit status) on its parsers. Plain
``vibebox`` runs ``vibebox_cli.commands.attach.run`` (the dashboard). Textual is only imported
by the command that opens the dashboard, so ``vibebox list`` starts fast and works anywhere.

Every :class:`~vibebox_core.errors.VibeboxError` ends here as one line
``vibebox: error: <message>`` plus ``hint: <next step>``, exit status 1; never a traceback
(:func:`vibebox_cli.console.print_error`, which escapes the message's control characters).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from vibebox_cli import console
from vibebox_core import __version__
from vibebox_core.errors import VibeboxError

#: The command modules under ``vibebox_cli.commands``, in the order ``--help`` lists them.
COMMANDS = (
    "attach",
    "sessions",
    "vm",
    "provision",
    "checkpoint",
    "image",
    "approve",
    "steer",
    "doctor",
)

#: Set to show the traceback of an unexpected error instead of the one-line message.
DEBUG_ENV = "VIBEBOX_DEBUG"

Handler = Callable[[argparse.Namespace], int]


def _command_modules() -> list[ModuleType]:
    """Import the modules of :data:`COMMANDS` (those this build ships)."""
    modules = []
    for name in COMMANDS:
        module = _import_optional(f"vibebox_cli.commands.{name}")
        if module is not None:
            modules.append(module)
    return modules


def _import_optional(name: str) -> ModuleType | None:
    """Import a module, or return None when that module (not one it imports) is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="vibebox",
        description="A Linux VM per project directory, with a terminal dashboard to live in "
        "it. Without a command: open the dashboard on this directory's session.",
    )
    parser.add_argument("--version", action="version", version=f"vibebox {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def _default_handler(args: argparse.Namespace) -> int:
    """Plain ``vibebox``: open the dashboard (when the dashboard is installed)."""
    attach = _import_optional("vibebox_cli.commands.attach")
    run: Any = getattr(attach, "run", None)
    if run is None:
        print(
            "vibebox: the dashboard is not available in this build; try `vibebox --help`",
            file=sys.stderr,
        )
        return 1
    result: int = run(args)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it).

    Exit statuses: 0 success, 1 a vibebox error (message and hint on stderr), 2 bad usage
    (argparse), 130 interrupted with Ctrl-C. An unexpected exception is reported the same
    way (one line and a hint); ``VIBEBOX_DEBUG=1`` shows its traceback instead.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        handler: Handler = getattr(args, "handler", None) or _default_handler
        return handler(args)
    except VibeboxError as exc:
        console.print_error(exc)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `vibebox list | head`: the reader went away. Point stdout at /dev/null so the
        # interpreter's final flush does not print another traceback (Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        # A file or socket problem no module translated: still one line, no traceback.
        console.print_error(
            VibeboxError(str(exc), hint="check the path named above and its permissions")
        )
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        console.print_error(
            VibeboxError(
                f"unexpected {type(exc).__name__}: {exc}",
                hint=f"this is a bug in vibebox: run again with {DEBUG_ENV}=1 to see the "
                "traceback, and report it",
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
