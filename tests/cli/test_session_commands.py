"""``vibebox list``, ``delete`` and ``explain`` (``vibebox_cli/commands/sessions.py``), run as
a user would: `python -m vibebox_cli.main` in a subprocess."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli.cli_run import (
    TEST_CONFIG,
    assert_clean_error,
    assert_no_raw_controls,
    vibebox,
)

from vibebox_cli import main as cli
from vibebox_cli.commands import sessions as sessions_command
from vibebox_core.index.sessions import SessionIndex


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "vibebox.toml").write_text(TEST_CONFIG)
    return root


def test_list_empty(tmp_path: Path) -> None:
    result = vibebox("list", cwd=tmp_path)
    assert result.returncode == 0
    assert "no sessions yet" in result.stdout
    assert json.loads(vibebox("list", "--json", cwd=tmp_path).stdout) == []


def test_list_and_json(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "vibebox.toml").write_text(TEST_CONFIG)
    index = SessionIndex()
    a, b = index.create(project), index.create(other)
    result = vibebox("list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "DIRECTORY", "STATE", "ATTACHED", "LAST", "ACTIVE", "(UTC)"]
    assert lines[1].startswith(f"{a.id}  {project}")
    assert lines[2].startswith(f"{b.id}  {other}")
    data = json.loads(vibebox("list", "--json", cwd=tmp_path).stdout)
    assert [row["id"] for row in data] == [a.id, b.id]
    assert data[0]["directory"] == str(project)
    assert data[0]["last_active"] == a.last_active.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert set(data[0]) >= {"id", "directory", "state", "attached", "last_active"}
    assert isinstance(data[0]["state"], str) and data[0]["state"]


def test_list_says_when_it_drops_a_session(project: Path, tmp_path: Path) -> None:
    entry = SessionIndex().create(project)
    (project / ".vibebox" / "session-id").unlink()
    (project / ".vibebox" / ".gitignore").unlink()
    (project / ".vibebox").rmdir()
    result = vibebox("list", cwd=tmp_path)
    assert result.returncode == 0
    assert f"dropped session {entry.id} ({project}): its .vibebox/ is gone" in result.stderr
    assert "no sessions yet" in result.stdout


def test_without_sessionctl_state_is_unknown(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = SessionIndex().create(project)
    monkeypatch.setattr(sessions_command, "_sessionctl", lambda: (None, ""))
    assert cli.main(["list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["state"], row["attached"]) == (entry.id, "unknown", None)
    assert cli.main(["list"]) == 0
    assert f"{entry.id}  {project}  unknown  -" in capsys.readouterr().out


def test_delete_with_yes(project: Path) -> None:
    entry = SessionIndex().create(project)
    (project / ".vibebox" / "disk.qcow2").write_bytes(b"disk")
    result = vibebox("delete", entry.id[:8], "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"deleted session {entry.id}" in result.stdout
    assert not (project / ".vibebox").exists()
    assert (project / "vibebox.toml").read_text() == TEST_CONFIG
    assert SessionIndex().entries() == []


def test_delete_without_a_terminal_refuses(project: Path) -> None:
    entry = SessionIndex().create(project)
    result = vibebox("delete", entry.id, cwd=project)
    assert_clean_error(result, "no terminal", "--yes")
    assert (project / ".vibebox" / "session-id").exists()
    assert SessionIndex().get(entry.id) == entry


def test_delete_asks_on_a_terminal(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = SessionIndex().create(project)
    monkeypatch.setattr(sessions_command, "delete_session", lambda entry: None)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert cli.main(["delete", entry.id]) == 1
    assert "not deleted" in capsys.readouterr().out
    assert (project / ".vibebox").exists()
    assert cli.main(["delete", entry.id]) == 0
    assert not (project / ".vibebox").exists()
    assert SessionIndex().entries() == []


def test_delete_unknown_session(tmp_path: Path) -> None:
    assert_clean_error(vibebox("delete", "0190abcd", "--yes", cwd=tmp_path), "no session")


def test_delete_force_when_teardown_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vibebox_core.errors import VMError

    entry = SessionIndex().create(project)

    def teardown(entry: object) -> None:
        raise VMError("libvirt is not answering", hint="start libvirtd")

    monkeypatch.setattr(sessions_command, "delete_session", teardown)
    assert cli.main(["delete", entry.id, "--yes"]) == 1
    assert "libvirt is not answering" in capsys.readouterr().err
    assert SessionIndex().get(entry.id) == entry  # kept, so the delete can be repeated
    assert cli.main(["delete", entry.id, "--yes", "--force"]) == 0
    assert "may be left" in capsys.readouterr().err
    assert SessionIndex().entries() == [] and not (project / ".vibebox").exists()


def test_explain_text_and_json(project: Path, tmp_path: Path) -> None:
    result = vibebox("explain", cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"project  {project}" in result.stdout
    assert "(project, default)" in result.stdout
    assert "(none yet" in result.stdout
    assert not (project / ".vibebox").exists()  # explain creates nothing
    entry = SessionIndex().create(project)
    data = json.loads(
        vibebox("explain", "--json", "--directory", str(project), cwd=tmp_path).stdout
    )
    assert data["project"] == str(project)
    assert data["session_id"] == entry.id
    assert data["mounts"][0]["guest"] == "/home/vibecoder/proj"
    assert data["network"]["mode"] == "blocklist"
    positional = json.loads(vibebox("explain", str(project), "--json", cwd=tmp_path).stdout)
    assert positional["session_id"] == entry.id


def test_explain_without_vibebox_toml_writes_nothing(tmp_path: Path) -> None:
    result = vibebox("explain", cwd=tmp_path)
    assert result.returncode == 0
    assert "vibebox.toml  (not created yet)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_explain_bad_config_is_one_clear_error(project: Path) -> None:
    (project / "vibebox.toml").write_text("[box]\ncpus = 0\n")
    assert_clean_error(
        vibebox("explain", cwd=project), str(project / "vibebox.toml"), "line 2", "box.cpus"
    )


def test_explain_summarises_the_network_log(project: Path) -> None:
    from vibebox_core.network.log import NetEvent, VerdictName, append
    from vibebox_core.paths import ProjectPaths

    SessionIndex().create(project)
    log = ProjectPaths.for_directory(project).network_log
    decisions: list[tuple[str, VerdictName]] = [
        ("pypi.org", "allowed"),
        ("evil.test", "blocked"),
        ("evil.test", "blocked"),
    ]
    for host, verdict in decisions:
        append(log, NetEvent("proxy", host, 443, verdict, "test"))
    result = vibebox("explain", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "network log" in result.stdout
    assert "3 decisions since" in result.stdout and "1 allowed, 2 blocked" in result.stdout
    assert "most blocked: evil.test (2)" in result.stdout
    data = json.loads(vibebox("explain", "--json", cwd=project).stdout)
    summary = data["network_summary"]
    assert (summary["total"], summary["allowed"], summary["blocked"]) == (3, 1, 2)
    assert summary["top_blocked"] == [["evil.test", 2]]
    assert [event["host"] for event in data["recent_network"]] == [
        "pypi.org",
        "evil.test",
        "evil.test",
    ]


# -- guest-derived text never reaches the terminal raw ------------------------------------------


def test_list_prints_a_hostile_directory_escaped(hostile_project: Path, tmp_path: Path) -> None:
    entry = SessionIndex().create(hostile_project)
    result = vibebox("list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout, result.stderr)
    assert "proj\\x1b[2J\\x1b]0;owned\\x07\\r\\u202eevil" in result.stdout
    assert entry.id in result.stdout
    data = json.loads(vibebox("list", "--json", cwd=tmp_path).stdout)
    assert data[0]["directory"] == str(hostile_project)  # JSON keeps the exact value


def test_explain_prints_guest_chosen_host_names_escaped(hostile_project: Path) -> None:
    from vibebox_core.network.log import NetEvent, append
    from vibebox_core.paths import ProjectPaths

    SessionIndex().create(hostile_project)
    log = ProjectPaths.for_directory(hostile_project).network_log
    hostile_host = "ok.example\x1b[1A\x1b[2K\rpypi.org\u202e\u200b"
    for verdict in ("blocked", "blocked", "allowed"):
        append(log, NetEvent("dns", hostile_host, 53, verdict, "test\x07"))
    result = vibebox("explain", cwd=hostile_project)
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout, result.stderr)
    assert "ok.example\\x1b[1A\\x1b[2K\\rpypi.org\\u202e\\u200b" in result.stdout
    assert "proj\\x1b[2J" in result.stdout
    data = json.loads(vibebox("explain", "--json", cwd=hostile_project).stdout)
    assert data["recent_network"][0]["host"] == hostile_host


def test_delete_prompt_shows_a_hostile_directory_escaped(
    hostile_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = SessionIndex().create(hostile_project)
    monkeypatch.setattr(sessions_command, "_sessionctl", lambda: (None, ""))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    prompts: list[str] = []

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return "n"

    monkeypatch.setattr("builtins.input", answer)
    assert cli.main(["delete", entry.id]) == 1
    assert_no_raw_controls(*prompts, capsys.readouterr().out)
    assert "proj\\x1b[2J" in prompts[0]
