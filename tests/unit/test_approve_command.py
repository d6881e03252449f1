"""``vibebox approve``: the CLI side of policy approval, on a real index and vibebox.toml."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vibebox_core.config import load_config, set_value
from vibebox_core.errors import SessionNotFoundError
from vibebox_core.netpolicy import PolicyNotApprovedError, require_approval
from vibebox_core.paths import ProjectPaths
from vibebox_core.sessions import SessionIndex
from vibebox_tui.commands import approve


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    monkeypatch.setenv("VIBEBOX_HOME", str(tmp_path / "home"))
    root = tmp_path / "proj"
    root.mkdir()
    return ProjectPaths.for_directory(root)


def _args(project: ProjectPaths, yes: bool) -> argparse.Namespace:
    return argparse.Namespace(directory=str(project.root), yes=yes)


def test_changed_policy_is_refused_until_approved(
    project: ProjectPaths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = SessionIndex()
    entry = index.ensure(project.root)
    assert require_approval(index, entry.id, load_config(project)).status == "new"

    # The guest edits vibebox.toml through the project mount.
    set_value(project, "network", "mode", "allowlist")
    set_value(project, "network", "entries", ["evil.example"])
    with pytest.raises(PolicyNotApprovedError) as refused:
        require_approval(index, entry.id, load_config(project), project=str(project.root))
    assert f"vibebox approve` in {project.root}" in refused.value.hint

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert approve.run(_args(project, yes=False)) == 1  # no terminal to ask, no --yes
    out = capsys.readouterr().out
    assert "~ network mode: blocklist → allowlist" in out
    assert "+ network entry: evil.example" in out

    assert approve.run(_args(project, yes=True)) == 0
    assert "next start" in capsys.readouterr().out  # a mode change needs a restart
    assert require_approval(index, entry.id, load_config(project)).status == "approved"

    set_value(project, "network", "entries", ["evil.example", "more.example"])
    assert approve.run(_args(project, yes=True)) == 0
    assert "applies it now" in capsys.readouterr().out  # entries only: live
    assert approve.run(_args(project, yes=True)) == 0
    assert "nothing to approve" in capsys.readouterr().out


def test_interactive_no_keeps_the_old_policy(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = SessionIndex()
    entry = index.ensure(project.root)
    require_approval(index, entry.id, load_config(project))
    set_value(project, "network", "entries", ["x.example"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert approve.run(_args(project, yes=False)) == 1
    with pytest.raises(PolicyNotApprovedError):
        require_approval(index, entry.id, load_config(project))


def test_no_session_is_a_clear_error(project: ProjectPaths) -> None:
    with pytest.raises(SessionNotFoundError, match="has no session yet"):
        approve.run(_args(project, yes=True))


def test_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    approve.register(parser.add_subparsers())
    args = parser.parse_args(["approve", "--yes", "/tmp"])
    assert args.handler is approve.run and args.yes and args.directory == "/tmp"
