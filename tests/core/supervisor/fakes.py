"""Fakes of the supervisor's roles (``vibebox_core.supervisor.roles``) shared by tests."""

from __future__ import annotations


class RunningVM:
    """A :class:`~vibebox_core.supervisor.roles.VMControl` whose VM runs and stops cleanly."""

    def state(self) -> str:
        return "running"

    def start(self) -> None:
        pass

    def stop(self, timeout: float) -> bool:
        return True
