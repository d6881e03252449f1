"""``vibebox provision`` and provisioning on the command line (no VM: the core is faked).

The run itself is tested against a real SSH server in tests/core/session/test_provision.py;
here: the exit status, what is printed where, and that guest text arrives escaped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vibebox_cli import console
from vibebox_cli import main as cli
from vibebox_cli.commands import provision as provision_command
from vibebox_core import paths
from vibebox_core.errors import SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressEvent
from vibebox_core.session import execute, provision
from vibebox_core.session.provision_record import Record, StepResult

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectPaths]:
    home = Path(tempfile.mkdtemp(prefix="vbx-prov-", dir="/tmp"))
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    root = home / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    yield ProjectPaths.for_directory(root)
    shutil.rmtree(home, ignore_errors=True)


def _outcome(state: str, *steps: tuple[str, int | None], total: int | None = None) -> Any:
    results = tuple(StepResult(n, cmd, status, 0.5) for n, (cmd, status) in enumerate(steps, 1))
    record = Record(
        SID,
        state,  # type: ignore[arg-type]
        "sha256:x",
        len(steps) if total is None else total,
        results,
        "2026-12-01T12:00:00Z",
        "2026-12-01T12:00:05Z",
    )
    return provision.Outcome(record)


def _fake(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> list[ProjectPaths]:
    seen: list[ProjectPaths] = []

    async def again(project: ProjectPaths) -> Any:
        seen.append(project)
        console.print_progress(ProgressEvent("provisioning", "step 1/2: echo hi", 1.0))
        console.print_progress(
            ProgressEvent("provisioning", "step 1/2: echo hi", 1.2, output=("hi\x1b]0;x\x07",))
        )
        return outcome

    monkeypatch.setattr(provision_command, "provision_again", again)
    return seen


def test_provision_runs_the_list_and_says_so(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _fake(monkeypatch, _outcome("done", ("echo hi", 0), ("make", 0)))
    assert cli.main(["provision"]) == 0
    captured = capsys.readouterr()
    assert seen == [project]
    assert captured.out == "provisioned: 2 steps succeeded (2026-12-01T12:00:05Z)\n"
    # Progress and the guest's output on stderr, escaped.
    assert "[   1.0s] provisioning: step 1/2: echo hi" in captured.err
    assert "│ hi\\x1b]0;x\\x07" in captured.err
    assert "\x1b" not in captured.err


def test_provision_in_another_directory(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _fake(monkeypatch, _outcome("done", ("true", 0)))
    assert cli.main(["provision", str(tmp_path)]) == 0
    assert seen[0].root == tmp_path.resolve()


def test_an_empty_list_has_nothing_to_run(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake(monkeypatch, _outcome("done"))
    assert cli.main(["provision"]) == 0
    assert "nothing to provision" in capsys.readouterr().out


def test_a_failing_step_exits_1_naming_it(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake(monkeypatch, _outcome("failed", ("true", 0), ("exit 7", 7), total=3))
    assert cli.main(["provision"]) == 1
    err = capsys.readouterr().err
    assert (
        "vibebox: error: provisioning step 2 of 3 failed with exit status 7: exit 7 "
        "(2026-12-01T12:00:05Z)"
    ) in err
    assert "hint: its output is in .vibebox/provision.log" in err
    assert "Traceback" not in err


def test_no_ssh_is_one_clear_error(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def again(project: ProjectPaths) -> Any:
        raise SSHError("cannot reach the guest's SSH server at 10.0.0.2", hint="is it running?")

    monkeypatch.setattr(provision_command, "provision_again", again)
    assert cli.main(["provision"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vibebox: error: cannot reach the guest's SSH server")


def test_provision_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "provision" in capsys.readouterr().out


def test_exec_says_a_failed_provisioning_on_stderr(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fake_exec(project: ProjectPaths, argv: list[str], **kwargs: Any) -> int:
        said = provision.notice(_outcome("failed", ("make\x1b[2J", 2)))
        kwargs["notice"](said)
        return 0

    monkeypatch.setattr(execute, "exec_command", fake_exec)
    assert cli.main(["exec", "--", "true"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "vibebox: Provisioning step 1 of 1 failed with exit status 2: make\\x1b[2J" in (
        captured.err
    )
    assert "The session is usable" in captured.err


def test_a_failed_step_is_marked_on_its_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    console.print_progress(
        ProgressEvent("provisioning", "step 2/2 failed with exit status 2", 3.0, True, failed=True)
    )
    assert capsys.readouterr().err == (
        "[   3.0s] provisioning: step 2/2 failed with exit status 2 ✗\n"
    )
