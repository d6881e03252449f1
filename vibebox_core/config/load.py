"""Reading ``vibebox.toml``: a project's settings, read safely, parsed and validated.

The file is meant to be committed, so people edit it by hand (vibebox changes it with
tomlkit, :mod:`vibebox_core.config.edit`, so their comments and layout survive). The file is
guest-writable, so it is read bounded (:func:`vibebox_core.fileio.read_bounded`), and every
value is checked (:mod:`vibebox_core.config.validate`) before anything starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from pathlib import Path

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError, TOMLKitError
from tomlkit.toml_document import TOMLDocument

from vibebox_core.config.lines import at_line, duplicate_line
from vibebox_core.config.schema import ACCEL_ENV, ACCELS, DEFAULT_CONFIG_TEXT, Config
from vibebox_core.config.validate import validate
from vibebox_core.errors import ConfigError
from vibebox_core.fileio import read_bounded, write_atomic
from vibebox_core.paths import PROJECT_CONFIG, ProjectPaths


def load_config(project: ProjectPaths, *, create: bool = True, env: bool = True) -> Config:
    """Read and validate ``<project>/vibebox.toml``.

    The file is guest-writable: what it says drives nothing on the host until it is approved
    (:mod:`vibebox_core.config.approval` keeps the approved values outside the project). Use this
    for what the *file* says; use :func:`vibebox_core.config.approval.enforced_config` for what is
    in force.

    Args:
        project: the project's paths.
        create: when the file is missing, write the commented defaults (True) or just use the
            defaults without writing anything (False).
        env: apply ``$VIBEBOX_ACCEL`` (True) or return the file's own values (False).

    Returns:
        The validated config. ``$VIBEBOX_ACCEL`` (auto|kvm|tcg), when set and ``env``,
        replaces ``[box] accel``.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or holds a bad value. The message
            names the file, the key, the line where known, and what was expected. Nothing is
            written in that case.
    """
    path = project.config
    if not path.exists() and not path.is_symlink():
        if create:
            _write_defaults(project)
        else:
            return apply_env(Config(path=path)) if env else Config(path=path)
    text = read_text(path)
    doc = parse_document(path, text)
    config = validate(project, path, text, doc)
    return apply_env(config) if env else config


def read_text(path: Path) -> str:
    """Read ``vibebox.toml`` as text: a regular file of bounded size, UTF-8, without NUL.

    Raises:
        ConfigError: the file is a symlink, a FIFO, too large, gone, or not UTF-8 text.
    """
    # The guest can replace the file (a symlink to /dev/zero, a FIFO, a huge file): only a
    # regular file of bounded size is read, and a symlink is refused (fileio).
    try:
        data = read_bounded(path, what=PROJECT_CONFIG)
    except FileNotFoundError:
        raise ConfigError(
            f"cannot read {path}: it was removed while vibebox read it",
            hint="run the command again; vibebox then writes the defaults",
        ) from None
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: a NUL byte; expected TOML text",
            hint="save vibebox.toml as UTF-8 text, or delete it to get the defaults",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: not valid UTF-8 text",
            hint="save vibebox.toml as UTF-8",
        ) from None


_DUPLICATE = re.compile(r'Key "(.*)" already exists')


def _set_twice(path: Path, text: str, message: str, line: int | None) -> ConfigError:
    """The error for a key set twice, from tomlkit's ``message`` (``line``: where it said)."""
    match = _DUPLICATE.search(message)
    key = match.group(1) if match else ""
    found = duplicate_line(text, key) if key else None
    return ConfigError(
        f"{path}{at_line(found or line)}: the key {key!r} is set twice; expected each key once",
        hint="remove one of the two lines",
    )


def parse_document(path: Path, text: str) -> TOMLDocument:
    """Parse ``text`` (read from ``path``) as a tomlkit document, comments kept.

    Raises:
        ConfigError: not TOML, a key set twice, or an empty file; names the line.
    """
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        if _DUPLICATE.search(reason):  # tomlkit >= 0.15.3 reports a key set twice this way
            raise _set_twice(path, text, reason, exc.line) from None
        if "\\x00" in reason or "\x00" in reason:
            reason = "the file ends in the middle of a value"
        raise ConfigError(
            f"{path}, line {exc.line}, column {exc.col}: not valid TOML: {reason}",
            hint="fix the syntax (see https://toml.io), or delete the file to get the defaults",
        ) from None
    except KeyAlreadyPresent as exc:
        raise _set_twice(path, text, str(exc), None) from None
    except (TOMLKitError, ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
        # tomlkit raises more than ParseError for some malformed documents.
        raise ConfigError(
            f"{path}: not valid TOML ({type(exc).__name__})",
            hint="fix the syntax (see https://toml.io), or delete the file to get the defaults",
        ) from None
    if not doc:
        raise ConfigError(
            f"{path} is empty: expected the tables [box], [network], [supervisor] and [provision]",
            hint="delete the file and vibebox writes a commented default one",
        )
    return doc


def apply_env(config: Config) -> Config:
    """Return ``config`` with ``$VIBEBOX_ACCEL`` (when set) in place of ``[box] accel``.

    Raises:
        ConfigError: the variable holds something other than auto, kvm or tcg.
    """
    raw = os.environ.get(ACCEL_ENV)
    if raw is None or raw == "":
        return config
    accel = raw.strip().lower()
    if accel not in ACCELS:
        raise ConfigError(
            f"environment variable {ACCEL_ENV}={raw!r}: expected one of {', '.join(ACCELS)}",
            hint=f"unset {ACCEL_ENV} or set it to auto, kvm or tcg",
        )
    if accel == config.box.accel:
        return config
    return dataclasses.replace(config, box=dataclasses.replace(config.box, accel=accel))


def _write_defaults(project: ProjectPaths) -> None:
    if not project.root.is_dir():
        raise ConfigError(
            f"project directory {project.root} does not exist",
            hint="create it, or run vibebox in an existing directory",
        )
    # Another vibebox may write it first (FileExistsError); then we read theirs.
    with contextlib.suppress(FileExistsError):
        write_file(project.config, DEFAULT_CONFIG_TEXT, exclusive=True)


def write_file(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``vibebox.toml`` whole (:func:`vibebox_core.fileio.write_atomic`), synced to disk.

    The file keeps its permission bits (a new one gets ``0666`` minus the umask).

    Raises:
        FileExistsError: ``exclusive`` and the file exists.
        ConfigError: the file cannot be written.
    """
    try:
        write_atomic(path, text, mode=None, durable=True, exclusive=exclusive)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} is writable",
        ) from None
