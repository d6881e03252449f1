"""The record of a session's provisioning, and what it says now (the inspector, ``explain``).

``.vibebox/provision-pending`` marks a fresh instance disk that waits for ``[provision] run``
(:func:`vibebox_core.session.boot.prepare_and_start` makes it); ``.vibebox/provision.json`` is
what the last run did: the list's digest, when, each step's exit status. Comparing the list in
``vibebox.toml`` with the record's digest says whether it changed since it ran
(:func:`status`). Running the list is :mod:`vibebox_core.session.provision`.

Both files are the host's (``.vibebox/`` is hidden from the guest), read bounded all the same;
a damaged record counts as none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from vibebox_core.config.load import load_config
from vibebox_core.errors import ConfigError
from vibebox_core.fileio import ProjectFileError, read_bounded, write_atomic
from vibebox_core.paths import ProjectPaths

#: The record is small: a digest, times, and each step's first characters.
RECORD_LIMIT = 256 * 1024
#: Characters of a step the record and the progress keep (the list itself is in vibebox.toml).
SHOWN_CHARS = 120
RECORD_VERSION = 1

State = Literal["running", "done", "failed", "interrupted"]


def steps_digest(steps: Sequence[str]) -> str:
    """``sha256:`` over the list, to tell whether it changed since it ran."""
    data = json.dumps(list(steps), ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def shorten(command: str, limit: int = SHOWN_CHARS) -> str:
    """A step as one line: its first line, cut to ``limit`` characters (``…`` when cut)."""
    lines = command.strip().splitlines() or [""]
    first = lines[0]
    cut = len(lines) > 1 or len(first) > limit
    return first[:limit] + ("…" if cut else "")


@dataclass(frozen=True)
class StepResult:
    """One step as it ran.

    Attributes:
        number: 1-based position in the list.
        command: the step, shortened (:func:`shorten`).
        status: its exit status (128 + signal when a signal ended it); None when it did not
            finish (interrupted).
        seconds: how long it ran.
    """

    number: int
    command: str
    status: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "command": self.command,
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Record:
    """What the last provisioning of a session did (``.vibebox/provision.json``).

    Attributes:
        session_id: the session it ran in.
        state: ``running`` (or vibebox stopped during it), ``done``, ``failed`` or
            ``interrupted`` (the connection or vibebox went away during a step).
        digest: :func:`steps_digest` of the list that ran.
        total: how many steps the list had.
        steps: the steps that started, in order.
        started, finished: ISO 8601 UTC (``finished`` empty while running).
    """

    session_id: str
    state: State
    digest: str
    total: int
    steps: tuple[StepResult, ...] = ()
    started: str = ""
    finished: str = ""

    @property
    def failed_step(self) -> StepResult | None:
        """The step that stopped the list (failed or interrupted), None when none did."""
        if self.state in ("failed", "interrupted", "running") and self.steps:
            last = self.steps[-1]
            if last.status != 0:
                return last
        return None

    def summary(self) -> str:
        """One line: how the last run ended."""
        when = self.finished or self.started
        at = f" ({when})" if when else ""
        if self.state == "done":
            return f"{self.total} step{'s' if self.total != 1 else ''} succeeded{at}"
        failed = self.failed_step
        if self.state == "failed" and failed is not None:
            return (
                f"step {failed.number} of {self.total} failed with exit status {failed.status}: "
                f"{failed.command}{at}"
            )
        number = failed.number if failed is not None else len(self.steps) + 1
        if self.state == "running":
            return f"running, or vibebox stopped during step {number} of {self.total}{at}"
        return f"interrupted during step {number} of {self.total}{at}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "session": self.session_id,
            "state": self.state,
            "digest": self.digest,
            "total": self.total,
            "steps": [s.to_dict() for s in self.steps],
            "started": self.started,
            "finished": self.finished,
        }


def _step_of(item: Any) -> StepResult:
    if not isinstance(item, dict):
        raise ValueError("a step is not an object")
    number, command, status, seconds = (
        item.get("number"),
        item.get("command"),
        item.get("status"),
        item.get("seconds", 0.0),
    )
    if not isinstance(number, int) or not isinstance(command, str):
        raise ValueError("a step without number or command")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise ValueError("a step's status is not a number")
    if not isinstance(seconds, (int, float)):
        raise ValueError("a step's time is not a number")
    return StepResult(number, command[: SHOWN_CHARS + 1], status, float(seconds))


def read_record(project: ProjectPaths) -> Record | None:
    """The last provisioning's record; None when there is none or it is damaged."""
    try:
        raw = read_bounded(project.provision_record, limit=RECORD_LIMIT, what="provision record")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            return None
        state, session, digest, total = (
            data.get("state"),
            data.get("session"),
            data.get("digest"),
            data.get("total"),
        )
        if state not in ("running", "done", "failed", "interrupted"):
            return None
        if not isinstance(session, str) or not isinstance(digest, str):
            return None
        if not isinstance(total, int) or isinstance(total, bool):
            return None
        steps = data.get("steps")
        if not isinstance(steps, list):
            return None
        return Record(
            session_id=session,
            state=state,
            digest=digest,
            total=total,
            steps=tuple(_step_of(item) for item in steps),
            started=str(data.get("started", "")),
            finished=str(data.get("finished", "")),
        )
    except (OSError, ProjectFileError, UnicodeDecodeError, ValueError):
        return None


def write_record(project: ProjectPaths, record: Record) -> None:
    """Replace the record (atomically, 0600)."""
    data = json.dumps(record.to_dict(), indent=2, ensure_ascii=True) + "\n"
    write_atomic(project.provision_record, data.encode(), mode=0o600)


def is_pending(project: ProjectPaths, session_id: str) -> bool:
    """True when a fresh instance disk of this session waits for provisioning."""
    try:
        marked = read_bounded(project.provision_pending, limit=256, what="provision marker")
    except (OSError, ProjectFileError):
        return False
    return marked.decode("utf-8", "replace").strip() == session_id


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clear_pending(project: ProjectPaths) -> None:
    """Say the session is no longer due (its provisioning started)."""
    with contextlib.suppress(FileNotFoundError):
        project.provision_pending.unlink()


def file_steps(project: ProjectPaths) -> tuple[str, ...]:
    """``[provision] run`` as ``vibebox.toml`` says now (never written, no approval needed).

    Raises:
        ConfigError: the file is refused.
    """
    return load_config(project, create=False, env=False).provision.run


@dataclass(frozen=True)
class Status:
    """What the inspector and ``vibebox explain`` say about provisioning.

    Attributes:
        steps: how many steps ``[provision] run`` lists now (None: the file is refused).
        state: ``none`` (no list, never ran), ``pending`` (runs at the next start, or at
            the first one: no session yet),
            ``never`` (a list, but it never ran in this session), or the last record's state.
        changed: the list differs from the one that last ran.
        summary: one line for people.
    """

    steps: int | None
    state: str
    changed: bool
    summary: str
    record: Record | None = None

    @property
    def needs_attention(self) -> bool:
        """The list changed since it ran, or its last run did not succeed."""
        return self.changed or self.state in ("failed", "interrupted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "state": self.state,
            "changed": self.changed,
            "summary": self.summary,
            "last_run": self.record.to_dict() if self.record is not None else None,
        }


def status(project: ProjectPaths, session_id: str | None) -> Status:
    """Compare ``[provision] run`` with the last run (blocking; reads, never writes)."""
    try:
        steps: tuple[str, ...] | None = file_steps(project)
    except ConfigError:
        steps = None
    count = len(steps) if steps is not None else None
    record = read_record(project)
    if record is not None and record.session_id != session_id:
        record = None
    if session_id is not None and is_pending(project, session_id):
        return Status(count, "pending", False, "runs once SSH answers at this start", record)
    if record is None:
        if session_id is None and steps:
            return Status(count, "pending", False, "runs once the new session's SSH answers")
        if not steps:
            return Status(count, "none", False, "nothing to run ([provision] run is empty)")
        return Status(
            count,
            "never",
            False,
            "never ran in this session: `vibebox provision` runs it",
        )
    changed = steps is not None and steps_digest(steps) != record.digest
    summary = f"last run: {record.summary()}"
    if changed:
        summary += "; the list changed since: `vibebox provision` runs it again"
    return Status(count, record.state, changed, summary, record)
