"""``vibebox exec|stop|ssh-config|shell`` argument handling (no VM needed)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vibebox_cli import main as cli
from vibebox_core import paths
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import execute
from vibebox_core.ssh import keys, openssh


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectPaths]:
    home = Path(tempfile.mkdtemp(prefix="vbx-cmd-", dir="/tmp"))
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    root = home / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    yield ProjectPaths.for_directory(root)
    shutil.rmtree(home, ignore_errors=True)


def test_exec_passes_the_command_exactly(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    async def fake_exec(project: ProjectPaths, argv: list[str], **kwargs: Any) -> int:
        seen["directory"], seen["argv"] = project.root, argv
        return 7

    monkeypatch.setattr(execute, "exec_command", fake_exec)
    status = cli.main(["exec", "--", "sh", "-c", "exit 7", "--", "-C"])
    assert status == 7
    assert seen["argv"] == ["sh", "-c", "exit 7", "--", "-C"]
    assert Path(seen["directory"]) == project.root


def test_exec_without_a_command_is_a_usage_error(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["exec"]) == 2
    assert "usage: vibebox exec" in capsys.readouterr().err


def test_ssh_config_before_the_first_boot_explains(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["ssh-config"]) == 1
    err = capsys.readouterr().err
    assert "has not booted yet" in err and "hint:" in err


def test_ssh_config_prints_the_block(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    keys.ensure_keys(project)
    project.ipv4.write_text("10.213.9.2\n")
    assert cli.main(["ssh-config"]) == 0
    assert capsys.readouterr().out == openssh.ssh_config_block(project, "10.213.9.2")
