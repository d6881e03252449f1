"""``vibebox approve``: the CLI side of policy approval, on a real index and vibebox.toml."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from cli.cli_run import TEST_CONFIG, assert_no_raw_controls, vibebox

from vibebox_cli.commands import approve
from vibebox_core.config import approval
from vibebox_core.config.edit import set_value
from vibebox_core.config.grants import PolicyNotApprovedError
from vibebox_core.config.load import load_config
from vibebox_core.errors import ConfigError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session.approve import gate


def _args(project: ProjectPaths, yes: bool) -> argparse.Namespace:
    return argparse.Namespace(directory=str(project.root), yes=yes)


def test_changed_policy_is_refused_until_approved(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = SessionIndex().ensure(project.root)
    load_config(project)
    gate(project, entry.id)  # defaults: the first start approves them

    # The guest edits vibebox.toml through the project mount.
    set_value(project, "network", "mode", "allowlist")
    set_value(project, "network", "entries", ["evil.example"])
    with pytest.raises(PolicyNotApprovedError) as refused:
        gate(project, entry.id)
    assert f"vibebox approve` in {project.root}" in refused.value.hint

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert approve.run(_args(project, yes=False)) == 1  # no terminal to ask, no --yes
    out = capsys.readouterr().out
    assert "~ network mode: blocklist → allowlist" in out
    assert "+ network entry: evil.example" in out

    assert approve.run(_args(project, yes=True)) == 0
    assert "next start" in capsys.readouterr().out  # a mode change needs a restart
    assert gate(project, entry.id).network.entries == ("evil.example",)

    set_value(project, "network", "entries", ["evil.example", "more.example"])
    assert approve.run(_args(project, yes=True)) == 0
    assert "applies it now" in capsys.readouterr().out  # entries only: live
    assert approve.run(_args(project, yes=True)) == 0
    assert "nothing to approve" in capsys.readouterr().out


def test_resources_and_uri_are_approved_too(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    load_config(project)
    gate(project)
    set_value(project, "box", "cpus", 6)
    set_value(project, "box", "libvirt_uri", "qemu:///session")
    set_value(project, "supervisor", "auto_shutdown_ms", 600000)
    assert approve.run(_args(project, yes=True)) == 0
    out = capsys.readouterr().out
    assert "~ cpus: 2 → 6" in out
    assert "~ libvirt_uri: qemu:///system → qemu:///session" in out
    assert "~ auto_shutdown_ms: 20000 → 600000" in out
    assert "next start" in out
    assert approval.enforced_config(project).box.cpus == 6


def test_interactive_no_keeps_the_old_policy(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = SessionIndex().ensure(project.root)
    load_config(project)
    gate(project, entry.id)
    set_value(project, "network", "entries", ["x.example"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert approve.run(_args(project, yes=False)) == 1
    with pytest.raises(PolicyNotApprovedError):
        gate(project, entry.id)


def test_a_change_made_while_asking_is_not_approved(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_config(project)
    gate(project)
    set_value(project, "box", "cpus", 4)

    def answer(prompt: str) -> str:
        set_value(project, "box", "cpus", 64)  # the guest edits the file while the user reads
        return "y"

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", answer)
    with pytest.raises(PolicyNotApprovedError) as refused:
        approve.run(_args(project, yes=False))
    assert "~ cpus: 2 → 64" in refused.value.check.diff
    assert approval.enforced_config(project).box.cpus == 2


def test_before_any_session_a_project_can_be_approved(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    set_value(project, "box", "mounts", [f"{data}:/data:ro"])  # e.g. a cloned repository's
    assert approve.run(_args(project, yes=True)) == 0
    out = capsys.readouterr().out
    assert "was never approved" in out and f"+ mount: {data} → /data (ro)" in out
    assert approval.review(project).status == "approved"


def test_defaults_need_nothing(project: ProjectPaths, capsys: pytest.CaptureFixture[str]) -> None:
    load_config(project)
    assert approve.run(_args(project, yes=False)) == 0
    assert "nothing to approve" in capsys.readouterr().out


def test_no_directory_is_a_clear_error(tmp_path: Path) -> None:
    args = argparse.Namespace(directory=str(tmp_path / "missing"), yes=True)
    with pytest.raises(ConfigError, match="is not a directory"):
        approve.run(args)


def test_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    approve.register(parser.add_subparsers())
    args = parser.parse_args(["approve", "--yes", "/tmp"])
    assert args.handler is approve.run and args.yes and args.directory == "/tmp"


def test_approve_shows_every_diff_line_escaped(hostile_project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data\x1b[2K\rhidden"
    data.mkdir()
    (hostile_project / "vibebox.toml").write_text(
        TEST_CONFIG + f"mounts = [{json.dumps(str(data) + ':/data:ro')}]\n"
        '[network]\nentries = ["pypi.org"]\n'
    )
    result = vibebox("approve", cwd=hostile_project)
    assert_no_raw_controls(result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert "data\\x1b[2K\\rhidden" in result.stdout + result.stderr
