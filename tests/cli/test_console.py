"""``vibebox_cli.console``: the lines every command prints and the y/N question."""

from __future__ import annotations

import io

import pytest

from vibebox_cli import console
from vibebox_core.errors import VibeboxError
from vibebox_core.progress import ProgressEvent


def test_an_error_is_a_message_line_then_a_hint_line_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.print_error(VibeboxError("cannot read /tmp/x\x1b[2J", hint="fix it\rnow"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "vibebox: error: cannot read /tmp/x\\x1b[2J\nhint: fix it\\rnow\n"


def test_progress_lines_go_to_stderr_and_mark_a_finished_step_only_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.print_progress(ProgressEvent("debootstrap", "", 12.34, done=True))
    console.print_progress(ProgressEvent("debootstrap", "", 12.34, done=True), mark_done=True)
    console.print_progress(ProgressEvent("boot", "kernel\x07", 1.0, done=True), mark_done=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "[  12.3s] debootstrap",
        "[  12.3s] debootstrap ✓",
        "[   1.0s] boot: kernel\\x07",
    ]


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert console.progress_on_terminal() is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert console.progress_on_terminal() is console.print_progress


@pytest.mark.parametrize(
    ("typed", "yes"), [("y\n", True), (" YES \n", True), ("n\n", False), ("\n", False), ("", False)]
)
def test_only_y_or_yes_is_yes_and_end_of_input_is_no(
    typed: str, yes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert console.ask_yes_no("Delete it? [y/N] ") is yes
