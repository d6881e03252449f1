"""Changing ``vibebox.toml`` with tomlkit, so every comment and the layout survive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tomlkit
from tomlkit.items import Array

from vibebox_core.config.hostnames import normalize_entry
from vibebox_core.config.load import apply_env, load_config, parse_document, read_text, write_file
from vibebox_core.config.schema import Config
from vibebox_core.config.validate import check_key, validate
from vibebox_core.paths import ProjectPaths


def set_value(project: ProjectPaths, table: str, key: str, value: Any) -> Config:
    """Change one value in ``vibebox.toml``, keeping every comment and the layout.

    The new document is validated first; nothing is written when it is refused.

    Args:
        project: the project's paths (the file is created with the defaults if missing).
        table: ``"box"``, ``"network"`` or ``"supervisor"``.
        key: a key of that table, e.g. ``"cpus"``.
        value: a plain TOML value (int, str, list of str ...).

    Returns:
        The validated config as written.

    Raises:
        ConfigError: the table, key or value is not valid.
    """
    check_key(project.config, table, key)
    load_config(project, create=True)
    path = project.config
    doc = parse_document(path, read_text(path))
    section = doc.get(table)
    if section is None:
        section = tomlkit.table()
        doc[table] = section
    section[key] = value
    text = tomlkit.dumps(doc)
    config = apply_env(validate(project, path, text, parse_document(path, text)))
    write_file(path, text)
    return config


def edit_entries(
    project: ProjectPaths, *, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> Config:
    """Add and remove ``[network] entries`` in ``vibebox.toml``, keeping everything else.

    Only the named entries change: the comments, the layout and every other value stay as
    the file has them, including changes nobody approved yet (they stay pending). An entry is
    matched by its normal form (:func:`~vibebox_core.config.hostnames.normalize_entry`), so
    removing ``example.com`` also removes a written ``"*.Example.com"``; one already there is
    not added again. The new document is validated first; nothing is written when the file
    (or the result) is refused.

    Args:
        project: the project's paths (the file is created with the defaults if missing).
        add: normalised entries to append.
        remove: normalised entries to take out.

    Returns:
        The validated config as written.

    Raises:
        ConfigError: the file is refused (it cannot be read, is not TOML, holds a bad value).
    """
    load_config(project, create=True)
    path = project.config
    doc = parse_document(path, read_text(path))
    section = doc.get("network")
    if section is None:
        section = tomlkit.table()
        doc["network"] = section
    entries = section.get("entries")
    if not isinstance(entries, Array):
        entries = tomlkit.array()
        section["entries"] = entries
    gone = set(remove)
    for i in reversed(range(len(entries))):
        if _normal(entries[i]) in gone:
            del entries[i]
    present = {_normal(item) for item in entries}
    for entry in add:
        if entry not in present:
            entries.append(entry)
            present.add(entry)
    text = tomlkit.dumps(doc)
    config = apply_env(validate(project, path, text, parse_document(path, text)))
    write_file(path, text)
    return config


def _normal(item: Any) -> str | None:
    """An entry's normal form (None: not a valid entry, so nothing to match)."""
    try:
        return normalize_entry(str(item))
    except ValueError:
        return None
