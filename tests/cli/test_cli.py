"""The host CLI's parser and error boundary (``vibebox_cli/main.py``), run as a user would:
`python -m vibebox_cli.main` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli.cli_run import (
    REPO,
    assert_clean_error,
    assert_no_raw_controls,
    vibebox,
)

import vibebox_core
from vibebox_cli import main as cli
from vibebox_cli.commands import sessions as sessions_command


def test_version_and_help(tmp_path: Path) -> None:
    result = vibebox("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"vibebox {vibebox_core.__version__}"
    result = vibebox("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("list", "delete", "explain"):
        assert command in result.stdout
    for command in ("list", "delete", "explain"):
        sub = vibebox(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and f"usage: vibebox {command}" in sub.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = vibebox("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert vibebox("delete", cwd=tmp_path).returncode == 2


def test_damaged_index_is_one_clear_error(tmp_path: Path, vibebox_home: Path) -> None:
    (vibebox_home / "sessions.toml").write_text("[[sessions]\n")
    result = vibebox("list", cwd=tmp_path)
    assert_clean_error(result, str(vibebox_home / "sessions.toml"), "line 1")
    assert (vibebox_home / "sessions.toml").read_text() == "[[sessions]\n"


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(sessions_command, "run_list", interrupted)
    assert cli.main(["list"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_cli_does_not_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom vibebox_cli import main as cli\ncli.build_parser()\n"
        "bad = sorted(m for m in ('textual', 'rich') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_unexpected_errors_are_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("boom")

    def unreadable(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/some/file")

    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.setattr(sessions_command, "run_list", broken)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vibebox: error: unexpected RuntimeError: boom\nhint: ")
    assert cli.DEBUG_ENV in err
    monkeypatch.setattr(sessions_command, "run_list", unreadable)
    assert cli.main(["list"]) == 1
    assert "Permission denied: '/some/file'" in capsys.readouterr().err
    monkeypatch.setattr(sessions_command, "run_list", broken)
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError):
        cli.main(["list"])


def test_plain_vibebox_opens_the_dashboard_or_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    seen: list[object] = []

    def run(args: object) -> int:
        seen.append(args)
        return 7

    attach = types.SimpleNamespace(run=run)
    real = cli._import_optional
    monkeypatch.setattr(
        cli,
        "_import_optional",
        lambda name: attach if name == "vibebox_cli.commands.attach" else real(name),
    )
    assert cli.main([]) == 7 and len(seen) == 1
    monkeypatch.setattr(
        cli,
        "_import_optional",
        lambda name: None if name == "vibebox_cli.commands.attach" else real(name),
    )
    assert cli.main([]) == 1
    assert "dashboard is not available" in capsys.readouterr().err


def test_optional_import_hides_only_the_missing_module_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli._import_optional("vibebox_cli.commands.no_such_command") is None
    (tmp_path / "vbx_broken_command.py").write_text("import vbx_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="vbx_no_such_dependency"):
        cli._import_optional("vbx_broken_command")


def test_an_error_naming_a_hostile_path_is_printed_escaped(hostile_project: Path) -> None:
    (hostile_project / "vibebox.toml").write_text("[box]\ncpus = 0\n")
    result = vibebox("explain", cwd=hostile_project)
    assert_clean_error(result, "box.cpus")
    assert_no_raw_controls(result.stdout, result.stderr)
    assert "proj\\x1b[2J" in result.stderr
