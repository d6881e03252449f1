"""vibebox.toml writes through tomlkit (set_value): comments kept, values validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from core.config.configfiles import write

from vibebox_core.config.edit import set_value
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import Mount
from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.usefixtures("no_accel_env")


# ---------------------------------------------------------------------------------------------
# Writes keep comments


def test_set_value_keeps_comments_and_validates(project: ProjectPaths, data: Path) -> None:
    write(project, "# my box\n[box]\ncpus = 2  # enough\n\n[network]\n# allow nothing\n")
    config = set_value(project, "box", "cpus", 6)
    assert config.box.cpus == 6
    text = project.config.read_text()
    assert "# my box" in text and "# enough" in text and "# allow nothing" in text
    assert "cpus = 6" in text
    set_value(project, "box", "mounts", [f"{data}:/data:ro"])
    assert load_config(project).box.mounts == (Mount(data, "/data", True),)
    assert "# enough" in project.config.read_text()


def test_set_value_refused_writes_nothing(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2  # enough\n")
    before = project.config.read_bytes()
    with pytest.raises(ConfigError, match=r"box\.cpus"):
        set_value(project, "box", "cpus", 0)
    with pytest.raises(ConfigError, match=r"unknown key box\.cpu"):
        set_value(project, "box", "cpu", 2)
    with pytest.raises(ConfigError, match=r"unknown table \[boxx\]"):
        set_value(project, "boxx", "cpus", 2)
    assert project.config.read_bytes() == before
    assert sorted(p.name for p in project.root.iterdir()) == ["vibebox.toml"]


def test_set_value_creates_missing_table(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2\n")
    set_value(project, "supervisor", "auto_shutdown_ms", 500)
    assert load_config(project).supervisor.auto_shutdown_ms == 500
