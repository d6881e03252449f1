"""Changing ``vibebox.toml`` with tomlkit, so every comment and the layout survive."""

from __future__ import annotations

from typing import Any

import tomlkit

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
