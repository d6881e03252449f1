"""vibebox.toml mounts: the project mount, mount specs, and the rules on what may be mounted."""

from __future__ import annotations

from pathlib import Path

import pytest
from core.config.configfiles import toml_str, write

from vibebox_core.config.load import load_config
from vibebox_core.config.mounts import all_mounts, parse_mount, project_mount
from vibebox_core.config.schema import GUEST_HOME, Mount
from vibebox_core.errors import ConfigError
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.usefixtures("no_accel_env")


# ---------------------------------------------------------------------------------------------
# Mounts


def test_project_mount(project: ProjectPaths) -> None:
    mount = project_mount(project)
    assert mount == Mount(project.root, f"{GUEST_HOME}/proj", read_only=False, default=True)
    assert mount.access == "rw"


def test_all_mounts_puts_the_project_first(project: ProjectPaths, data: Path) -> None:
    write(project, f'[box]\nmounts = ["{data}:/data:ro"]\n')
    config = load_config(project)
    mounts = all_mounts(config, project)
    assert mounts[0] == project_mount(project)
    assert mounts[1:] == config.box.mounts
    assert [m.default for m in mounts] == [True, False]


@pytest.mark.parametrize(
    ("suffix", "read_only"),
    [("", False), (":rw", False), (":ro", True), (":read-only", True), (":read-write", False)],
)
def test_mount_access_words(tmp_path: Path, data: Path, suffix: str, read_only: bool) -> None:
    assert parse_mount(f"{data}:/data{suffix}", tmp_path).read_only is read_only


def test_mount_tilde_on_both_sides(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_mount("~/data:~/data", tmp_path) == Mount(data, f"{GUEST_HOME}/data", False)
    assert parse_mount("~/data:~/a/../b/", tmp_path).guest == f"{GUEST_HOME}/b"
    assert parse_mount("~/data:/opt/x", tmp_path).guest == "/opt/x"


def test_mount_relative_host_is_relative_to_the_project(project: ProjectPaths, data: Path) -> None:
    assert parse_mount("../data:/data", project.root).host == data


# ---------------------------------------------------------------------------------------------
# Mount rules: resolved paths, never .vibebox/, vibebox's home or a parent of the project


def _mount_error(project: ProjectPaths, spec: str) -> str:
    write(project, f"[box]\nmounts = [{toml_str(spec)}]\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    assert "box.mounts" in str(refused.value) and "line 2" in str(refused.value)
    assert refused.value.hint
    return str(refused.value)


def test_mount_of_the_project_or_a_parent_is_refused(project: ProjectPaths) -> None:
    assert "the project itself" in _mount_error(project, ".:/data")
    assert "contains the project" in _mount_error(project, "..:/data")
    assert "contains the project" in _mount_error(project, "/:/data")
    (project.root / "sub").mkdir()
    assert "contains the project" in _mount_error(project, "./sub/../..:/data")
    assert "the project itself" in _mount_error(project, "./sub/..:/data")


def test_mount_under_vibebox_cache_is_refused(project: ProjectPaths) -> None:
    (project.cache / "seed").mkdir(parents=True)
    assert ".vibebox/" in _mount_error(project, "./.vibebox:/data")
    assert ".vibebox/" in _mount_error(project, "./.vibebox/seed:/data:ro")
    assert ".vibebox/" in _mount_error(project, f"{project.cache}/seed/../seed:/data")


def test_mount_through_a_symlink_is_resolved(project: ProjectPaths, tmp_path: Path) -> None:
    (project.cache / "seed").mkdir(parents=True)
    (project.root / "innocent").symlink_to(project.cache)  # the guest plants a symlink
    assert ".vibebox/" in _mount_error(project, "./innocent:/data")
    (project.root / "up").symlink_to(tmp_path)  # a symlinked parent of the project
    assert "contains the project" in _mount_error(project, "./up:/data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (project.root / "link").symlink_to(outside)
    write(project, '[box]\nmounts = ["./link:/data"]\n')
    assert load_config(project).box.mounts[0].host == outside  # the real directory is kept


def test_mount_of_vibebox_home_is_refused(
    project: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vibebox_home = tmp_path / "elsewhere" / "home"
    monkeypatch.setenv("VIBEBOX_HOME", str(vibebox_home))
    (vibebox_home / "images" / "debian-12").mkdir(parents=True)
    (vibebox_home / "approved").mkdir()
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}:/data")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home.parent}:/data")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/images:/data:ro")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/images/debian-12:/i")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/approved:/data")
    (project.root / "h").symlink_to(vibebox_home)
    assert "vibebox's home" in _mount_error(project, "./h:/data")


def test_mount_inside_the_project_is_allowed(project: ProjectPaths) -> None:
    (project.root / "sub" / "inner").mkdir(parents=True)
    write(project, '[box]\nmounts = ["./sub/inner:/data:ro"]\n')
    assert load_config(project).box.mounts[0].host == project.root / "sub" / "inner"
