"""Progress reports for long steps (image build, boot, connect).

Core functions that take a while accept a ``progress`` callback and call it with a
:class:`ProgressEvent` at each step, so the CLI can print lines and the dashboard can draw a
progress view without core knowing which one is listening.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation.

    Attributes:
        step: short name of the step, e.g. ``"debootstrap"`` or ``"waiting for SSH"``.
        detail: one line of detail (may be empty).
        elapsed: seconds since the operation began.
        done: True on the last event of a step.
        output: lines a step's program printed since the last event (raw: the guest chose
            them, so each front end escapes them before it shows them); e.g. provisioning.
        failed: with ``done``, the step ended in failure (the start goes on, e.g. a failing
            provisioning step).
    """

    step: str
    detail: str = ""
    elapsed: float = 0.0
    done: bool = False
    output: tuple[str, ...] = ()
    failed: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """A progress callback that drops every event."""


def continued(callback: ProgressCallback | None, since: float) -> ProgressCallback | None:
    """``callback`` for a later part of an operation that began at ``since``
    (``time.monotonic()``): its events' elapsed times go on from the operation's start, so
    the steps of both parts line up."""
    if callback is None:
        return None
    offset = time.monotonic() - since

    def shifted(event: ProgressEvent) -> None:
        callback(dataclasses.replace(event, elapsed=event.elapsed + offset))

    return shifted


class ProgressClock:
    """Stamps events with the time elapsed since the clock was made."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback or ignore_progress
        self._start = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.monotonic() - self._start

    def __call__(
        self,
        step: str,
        detail: str = "",
        *,
        done: bool = False,
        output: tuple[str, ...] = (),
        failed: bool = False,
    ) -> None:
        """Send one event to the callback."""
        self._callback(ProgressEvent(step, detail, self.elapsed, done, output, failed))
