"""Provisioning: once per new session, in order, stopping at a failing step, recorded, logged
bounded (vibebox_core.session.provision, provision_record, provision_output).

The steps run over a real asyncssh connection to a server in the test that hands the command
line to a local ``bash -c``, so the quoting (``bash -lc STEP`` in the project's guest
directory) is what a guest's shell would get.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
import tomlkit
from asyncssh.packet import UInt32
from core.session.conftest import SID

from vibebox_core.config import approval
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import PROVISION_MAX_STEPS, Config
from vibebox_core.errors import ConfigError, ProvisionError, SSHError
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressClock, ProgressEvent, continued
from vibebox_core.session import approve, provision, provision_output, provision_record, start
from vibebox_core.session.explain import build_explain
from vibebox_core.session.explain_text import render_text
from vibebox_core.ssh import keys


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def _bash(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """The guest: run the command line in a local bash, stdout and stderr as they come.

    As OpenSSH's sshd does, the exit status goes out when the shell exits, and the channel
    stays open while something it left in the background still holds its output. (Popen in
    threads: asyncio's ``wait()`` would wait for the output to end too.)
    """
    child = subprocess.Popen(
        ["bash", "-c", process.command or ""],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert child.stdout is not None
    output = child.stdout

    async def forward() -> None:
        while chunk := await asyncio.to_thread(os.read, output.fileno(), 65536):
            process.stdout.write(chunk)

    forwarding = asyncio.create_task(forward())
    status = await asyncio.to_thread(child.wait)
    if status < 0:  # as sshd says it: the signal's name
        await forwarding
        process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        return
    await asyncio.sleep(0.05)  # what was printed before the exit goes first, as from sshd
    process.channel._send_request(b"exit-status", UInt32(status))
    await forwarding
    output.close()
    process.close()


@pytest.fixture
async def guest(project: ProjectPaths) -> AsyncIterator[asyncssh.SSHClientConnection]:
    keys.ensure_keys(project)
    acceptor = await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        0,
        server_host_keys=[str(project.host_key)],
        authorized_client_keys=str(project.client_pubkey),
        process_factory=_bash,
        encoding=None,
    )
    port = acceptor.sockets[0].getsockname()[1]
    conn = await asyncssh.connect(
        "127.0.0.1",
        port,
        username="vibecoder",
        client_keys=[str(project.client_key)],
        known_hosts=None,  # the test's own server; the real connect pins (ssh/connect.py)
        config=None,
    )
    yield conn
    conn.close()
    acceptor.close()


def _write_steps(project: ProjectPaths, *steps: str) -> None:
    project.config.write_text(tomlkit.dumps({"provision": {"run": list(steps)}}))


def _mark_new(project: ProjectPaths) -> None:
    project.provision_pending.write_text(SID + "\n")


async def _provision(
    project: ProjectPaths,
    conn: asyncssh.SSHClientConnection,
    events: list[ProgressEvent] | None = None,
    *,
    only_if_new: bool = True,
) -> provision.Outcome:
    async def connect() -> asyncssh.SSHClientConnection:
        return conn

    sink = events.append if events is not None else None
    return await provision.provision(
        connect, project, SID, str(project.root), sink, only_if_new=only_if_new
    )


# -- config ---------------------------------------------------------------------------------


def _load(project: ProjectPaths, text: str) -> tuple[str, ...]:
    project.config.write_text(text)
    return load_config(project, create=False).provision.run


def test_the_list_is_read_in_order(project: ProjectPaths) -> None:
    steps = _load(project, '[provision]\nrun = ["echo a", "echo \'b c\'", """\nset -e\nls\n"""]\n')
    assert steps == ("echo a", "echo 'b c'", "set -e\nls\n")
    assert _load(project, "[box]\ncpus = 2\n") == ()


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ('[provision]\nrun = "echo a"\n', "expected an array of command strings", 2),
        ('[provision]\nrun = [\n  "echo a",\n  7,\n]\n', "found the integer 7", 4),
        ('[provision]\nrun = ["echo a", "  "]\n', "step 2: an empty command", 2),
        ('[provision]\nrun = ["a\\u0007b"]\n', "step 1: holds the control character", 2),
        ('[provision]\nrun = ["a\\u0000b"]\n', "step 1: holds the control character '\\x00'", 2),
        ('[provision]\nruns = ["echo"]\n', "unknown key (did you mean 'run'?)", 2),
    ],
)
def test_a_bad_list_is_refused_with_its_line(
    project: ProjectPaths, text: str, problem: str, line: int
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(project, text)
    assert problem in info.value.message
    assert f"line {line}:" in info.value.message
    assert "provision.run" in info.value.message


def test_the_list_is_bounded(project: ProjectPaths) -> None:
    many = ", ".join('"true"' for _ in range(PROVISION_MAX_STEPS + 1))
    with pytest.raises(ConfigError, match="expected at most 64 commands"):
        _load(project, f"[provision]\nrun = [{many}]\n")
    long = "x" * 4097
    with pytest.raises(ConfigError, match="step 1: 4097 characters; expected at most 4096"):
        _load(project, f'[provision]\nrun = ["{long}"]\n')


def test_changing_the_list_needs_no_approval(project: ProjectPaths) -> None:
    project.config.write_text("[box]\ncpus = 2\n")
    approve.approve(project)
    _write_steps(project, "sudo apt-get install -y jq")
    found = approval.review(project)
    assert found.status == "approved"
    assert not found.needs_approval


# -- once, in order, recorded ---------------------------------------------------------------


async def test_a_new_session_runs_the_list_once(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "echo one >> ran.txt", 'echo "it\'s $((1+1))" >> ran.txt; pwd')
    _mark_new(project)
    events: list[ProgressEvent] = []
    outcome = await _provision(project, guest, events)
    assert outcome.ok and outcome.ran
    assert (project.root / "ran.txt").read_text() == "one\nit's 2\n"
    record = provision_record.read_record(project)
    assert record is not None and record.state == "done" and record.total == 2
    assert [s.status for s in record.steps] == [0, 0]
    assert record.digest == provision_record.steps_digest(provision_record.file_steps(project))
    assert not project.provision_pending.exists()
    # The step started in the project's directory (the guest directory passed in).
    output = [line for e in events for line in e.output]
    assert str(project.root) in output
    assert events[-1].done and not events[-1].failed
    assert events[-1].detail == "2 steps done"
    # A stop and start: nothing is due, nothing runs again.
    again = await _provision(project, guest)
    assert not again.ran and again.record == record
    assert (project.root / "ran.txt").read_text() == "one\nit's 2\n"
    log = project.provision_log.read_text()
    assert "==> step 1/2: echo one >> ran.txt" in log
    assert "exit status 0" in log


async def test_vibebox_provision_runs_it_again(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "echo x >> ran.txt")
    outcome = await _provision(project, guest, only_if_new=False)
    assert outcome.ok
    outcome = await _provision(project, guest, only_if_new=False)
    assert outcome.ok
    assert (project.root / "ran.txt").read_text() == "x\nx\n"
    assert provision.failure(outcome) is None


async def test_a_failing_step_stops_the_list_and_says_which(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "true", "echo broken; exit 7", "touch never")
    _mark_new(project)
    events: list[ProgressEvent] = []
    outcome = await _provision(project, guest, events)
    assert not outcome.ok
    record = outcome.record
    assert record is not None and record.state == "failed"
    assert [(s.number, s.status) for s in record.steps] == [(1, 0), (2, 7)]
    assert not (project.root / "never").exists()
    last = events[-1]
    assert last.done and last.failed
    assert last.detail == "step 2/3 failed with exit status 7"
    assert "broken" in [line for e in events for line in e.output]
    said = provision.notice(outcome)
    assert "step 2 of 3 failed with exit status 7: echo broken; exit 7" in said
    assert "usable" in said and "vibebox provision" in said
    error = provision.failure(outcome)
    assert isinstance(error, ProvisionError)
    assert "step 2 of 3 failed with exit status 7" in error.message
    assert ".vibebox/provision.log" in error.hint
    # Not repeated by itself.
    assert not (await _provision(project, guest)).ran


async def test_a_signal_counts_as_128_plus_it(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "kill -TERM $$")
    outcome = await _provision(project, guest, only_if_new=False)
    assert outcome.record is not None
    assert outcome.record.steps[-1].status == 128 + signal.SIGTERM


async def test_an_empty_list_is_recorded_so_a_later_one_shows_as_changed(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    project.config.write_text("[box]\ncpus = 2\n")
    _mark_new(project)
    assert provision_record.status(project, SID).state == "pending"
    outcome = await _provision(project, guest)
    assert outcome.ok and outcome.record is not None and outcome.record.total == 0
    assert provision.notice(outcome, success=True) == ""
    assert not project.provision_log.exists()
    assert provision_record.status(project, SID).state == "done"
    _write_steps(project, "echo new")
    now = provision_record.status(project, SID)
    assert now.changed and now.steps == 1
    assert "the list changed since" in now.summary
    assert now.to_dict()["changed"] is True


def test_status_before_any_run(project: ProjectPaths) -> None:
    assert provision_record.status(project, SID).state == "none"
    _write_steps(project, "echo a")
    assert provision_record.status(project, SID).state == "never"
    assert provision_record.status(project, None).state == "pending"  # no session yet
    project.config.write_text("[provision]\nrun = 1\n")
    assert provision_record.status(project, SID).steps is None


async def test_a_refused_file_leaves_it_due(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    project.config.write_text("[provision]\nrun = [1]\n")
    _mark_new(project)
    events: list[ProgressEvent] = []
    outcome = await _provision(project, guest, events)
    assert isinstance(outcome.problem, ConfigError)
    assert project.provision_pending.exists()
    assert events[-1].failed
    assert "did not finish" in provision.notice(outcome)
    with pytest.raises(ConfigError):
        await _provision(project, guest, only_if_new=False)


async def test_no_ssh_leaves_it_due(project: ProjectPaths) -> None:
    _write_steps(project, "echo a")
    _mark_new(project)

    async def unreachable() -> asyncssh.SSHClientConnection:
        raise SSHError("cannot reach the guest")

    outcome = await provision.provision(unreachable, project, SID, "/x", None, only_if_new=True)
    assert isinstance(outcome.problem, SSHError)
    assert project.provision_pending.exists()


async def test_a_closed_connection_is_recorded_as_interrupted(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "sleep 3")
    _mark_new(project)
    task = asyncio.create_task(_provision(project, guest))
    for _ in range(100):
        record = provision_record.read_record(project)
        if record is not None and record.state == "running":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = provision_record.read_record(project)
    assert record is not None and record.state == "interrupted"
    assert record.summary().startswith("interrupted during step 1 of 1")
    assert not project.provision_pending.exists()  # it ran: not repeated by itself


async def test_another_vibebox_provisioning_is_waited_for(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "sleep 0.5; echo once >> ran.txt")
    _mark_new(project)
    waited: list[ProgressEvent] = []
    first = asyncio.create_task(_provision(project, guest))
    await asyncio.sleep(0.2)
    second = await _provision(project, guest, waited)
    assert (await first).ran and not second.ran
    assert (project.root / "ran.txt").read_text() == "once\n"
    assert "waiting for another vibebox" in waited[0].detail
    assert waited[-1].done and waited[-1].detail.startswith("by another vibebox: 1 step succeeded")


async def test_a_background_program_does_not_hold_the_step(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provision, "EXIT_GRACE", 0.3)
    _write_steps(project, "sleep 4 & echo started", "echo next")
    events: list[ProgressEvent] = []
    started = time.monotonic()
    outcome = await _provision(project, guest, events, only_if_new=False)
    assert time.monotonic() - started < 3
    assert outcome.ok and outcome.record is not None
    assert [s.status for s in outcome.record.steps] == [0, 0]
    output = [line for e in events for line in e.output]
    assert "started" in output and "next" in output
    assert any("not waited for" in line for line in output)


def test_a_damaged_record_counts_as_none(project: ProjectPaths) -> None:
    project.provision_record.write_text("{not json")
    assert provision_record.read_record(project) is None
    project.provision_record.write_text('{"version": 1, "state": "done"}')
    assert provision_record.read_record(project) is None
    project.provision_pending.symlink_to("/etc/hostname")
    assert not provision_record.is_pending(project, SID)


# -- output: bounded in the log and in the progress -----------------------------------------


async def test_a_flood_is_batched_and_counted_and_the_log_keeps_it(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "seq 1 20000; printf 'no newline\\r\\033[31mred'")
    events: list[ProgressEvent] = []
    outcome = await _provision(project, guest, events, only_if_new=False)
    assert outcome.ok
    batches = [e.output for e in events if e.output]
    assert all(len(batch) <= provision_output.BATCH_LINES + 1 for batch in batches)
    assert len(batches) < 2000  # nowhere near one event per line
    assert any(line.startswith("[") and "more lines" in line for b in batches for line in b)
    assert batches[-1][-1] == "\x1b[31mred"  # raw: the front ends escape it
    log = project.provision_log.read_bytes()
    assert b"\n20000\n" in log and b"\n1\n" in log


def test_the_log_holds_the_guest_output_escaped() -> None:
    """``cat`` of provision.log must not run what the guest printed in a host terminal."""
    chunk = b"ok\r\nA\x1b]0;pwned\x07B\x1b[2J\rover\xff\n"
    assert provision_output.escaped(chunk) == b"ok\nA\\x1b]0;pwned\\x07B\\x1b[2J\\rover\\xff\n"


def test_the_log_keeps_its_last_mib(tmp_path: Path) -> None:
    path = tmp_path / "provision.log"
    log = provision_output.BoundedLog(path, limit=10_000, keep=6_000)
    for number in range(5_000):
        log.write(f"line {number}\n".encode())
        assert path.stat().st_size <= 10_000
    log.write(b"x" * 50_000 + b"\nlast\n")  # one write larger than the limit
    log.close()
    data = path.read_bytes()
    assert len(data) <= 10_000
    assert data.startswith(provision_output.BoundedLog.TRIMMED)
    assert data.endswith(b"\nlast\n")
    assert provision_output.LOG_LIMIT == 1024 * 1024


def test_the_log_is_never_followed_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "provision.log").symlink_to(target)
    log = provision_output.BoundedLog(tmp_path / "provision.log")
    with pytest.raises(OSError):
        log.write(b"x")
    assert target.read_text() == "keep"


def test_a_long_line_is_cut() -> None:
    seen: list[ProgressEvent] = []
    lines = provision_output.OutputLines(ProgressClock(seen.append), "provisioning", "step 1/1")
    lines.feed(b"a" * (provision_output.MAX_LINE * 3))
    lines.flush(end=True)
    assert all(len(line) <= provision_output.MAX_LINE for line in seen[0].output)
    assert sum(len(line) for line in seen[0].output) == provision_output.MAX_LINE * 3


# -- wired into the starts ------------------------------------------------------------------


class _Running:
    def __init__(self, project: ProjectPaths) -> None:
        self.project, self.session_id, self.connection = project, SID, None
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    async def attached_count(self) -> int:
        return 1


async def test_starts_provision_a_new_session_first(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    failed = provision.Outcome(
        provision_record.Record(SID, "failed", "d", 1, (provision_record.StepResult(1, "x", 3, 0),))
    )

    async def ensure_running(*args: object, **kwargs: object) -> _Running:
        return _Running(project)

    async def provision_session(running: object, progress: object, *, only_if_new: bool) -> object:
        calls.append(f"provision only_if_new={only_if_new}")
        return failed

    async def open_terminal(running: object, cols: int, rows: int) -> object:
        calls.append("terminal")
        return object()

    async def forward(running: object, progress: object) -> None:
        return None

    monkeypatch.setattr(start, "ensure_running", ensure_running)
    monkeypatch.setattr(provision, "provision_session", provision_session)
    monkeypatch.setattr(start, "open_terminal", open_terminal)
    monkeypatch.setattr(start, "_forward", forward)
    said: list[str] = []
    async with start.attach(project, notice=said.append) as running:
        assert isinstance(running, _Running)
    assert calls == ["provision only_if_new=True"]
    assert "step 1 of 1 failed with exit status 3" in said[0]
    shell = await start.open_shell(project, 80, 24, lambda e: None, client="test")
    await shell.release()
    assert calls[1:] == ["provision only_if_new=True", "terminal"]  # provisioned, then a shell
    assert shell.provisioned is failed


def test_explain_says_the_list_changed_since_it_ran(project: ProjectPaths) -> None:
    _write_steps(project, "echo a")
    record = provision_record.Record(SID, "done", provision_record.steps_digest(["old"]), 1)
    provision_record.write_record(project, record)
    status = provision_record.status(project, SID)
    assert status.changed and status.state == "done"
    explain = build_explain(project, Config(path=project.config), session_id=SID, provision=status)
    text = render_text(explain)
    assert "provision  1 step in [provision] run" in text
    assert "the list changed since: `vibebox provision` runs it again" in text
    assert explain.to_dict()["provision"]["changed"] is True
    # Nothing to say without a list or a run.
    project.config.write_text("[box]\ncpus = 2\n")
    project.provision_record.unlink()
    quiet = build_explain(
        project,
        Config(path=project.config),
        session_id=SID,
        provision=provision_record.status(project, SID),
    )
    assert "provision " not in render_text(quiet)


async def test_an_unusable_cache_is_a_clear_error_and_no_failed_start(
    project: ProjectPaths, guest: asyncssh.SSHClientConnection
) -> None:
    _write_steps(project, "echo a")
    _mark_new(project)
    project.provision_lock.mkdir()  # cannot be opened as the lock file
    outcome = await _provision(project, guest)
    assert isinstance(outcome.problem, ProvisionError)
    assert "provisioning record, log or lock" in outcome.problem.message
    with pytest.raises(ProvisionError):
        await _provision(project, guest, only_if_new=False)


def test_a_later_part_of_a_start_goes_on_with_its_clock() -> None:
    seen: list[ProgressEvent] = []
    later = continued(seen.append, time.monotonic() - 30.0)
    assert later is not None and continued(None, 0.0) is None
    later(ProgressEvent("provisioning", "step 1/1", 1.5, output=("x",)))
    assert 31.4 < seen[0].elapsed < 32.5 and seen[0].output == ("x",)
