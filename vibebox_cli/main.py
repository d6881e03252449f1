"""The ``vibebox`` command line.

Subcommands live in ``vibebox_cli/commands/*.py``; each module exposes
``register(subparsers) -> None`` and sets ``handler`` (a function of the parsed arguments that
returns the exit status) on its parsers. Plain ``vibebox`` runs
``vibebox_cli.commands.attach.run`` (the dashboard). Textual is only imported by the
commands that open the dashboard, so ``vibebox list`` starts fast and works anywhere.

Every :class:`~vibebox_core.errors.VibeboxError` ends here as one line
``vibebox: error: <message>`` plus ``hint: <next step>``, exit status 1; never a traceback.
Messages embed paths, names and guest output, so :func:`print_error` escapes their control
characters (:mod:`vibebox_core.sanitize`) before they reach the terminal.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from vibebox_core import __version__
from vibebox_core.errors import VibeboxError
from vibebox_core.sanitize import clean_lines

#: Command modules registered first, in this order; any other module in the package follows.
_FIRST = ("attach", "sessions", "vm", "image")

#: Set to show the traceback of an unexpected error instead of the one-line message.
DEBUG_ENV = "VIBEBOX_DEBUG"

Handler = Callable[[argparse.Namespace], int]


def _command_modules() -> list[ModuleType]:
    """Import every module in ``vibebox_cli.commands`` (those that exist)."""
    import vibebox_cli.commands as package

    found = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    order = [name for name in _FIRST if name in found]
    order += [name for name in found if name not in order]
    modules = []
    for name in order:
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


def print_error(error: VibeboxError) -> None:
    """Print a VibeboxError the way every command does: message, then the hint (escaped)."""
    message = "\n  ".join(clean_lines(error.message, limit=None))
    print(f"vibebox: error: {message}", file=sys.stderr)
    if error.hint:
        hint = "\n  ".join(clean_lines(error.hint, limit=None))
        print(f"hint: {hint}", file=sys.stderr)


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
        print_error(exc)
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
        print_error(VibeboxError(str(exc), hint="check the path named above and its permissions"))
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print_error(
            VibeboxError(
                f"unexpected {type(exc).__name__}: {exc}",
                hint=f"this is a bug in vibebox: run again with {DEBUG_ENV}=1 to see the "
                "traceback, and report it",
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
