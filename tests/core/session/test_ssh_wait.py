"""Waiting for SSH (vibebox_core.ssh.wait, on the session fixtures): the boot timeout and the
error that quotes the console."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from vibebox_core.errors import SSHAuthError, SSHError, VibeboxError
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressClock
from vibebox_core.ssh import wait as ssh_wait
from vibebox_core.ssh.connect import ssh_error


def test_boot_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ssh_wait.boot_timeout("tcg") > ssh_wait.boot_timeout("kvm")
    monkeypatch.setenv(ssh_wait.BOOT_TIMEOUT_ENV, "42")
    assert ssh_wait.boot_timeout("tcg") == 42.0


async def test_boot_error_quotes_the_console_and_names_accel(
    entry: SessionEntry, defined: FakeHypervisor
) -> None:
    hv = defined
    hv.set_console(entry.id, "Booting Linux\nkvm: hang")
    error = await ssh_wait._boot_error(hv, entry.id, "kvm", 90, "no DHCP lease")
    assert "accel=kvm" in error.message and "    kvm: hang" in error.message
    assert 'accel = "tcg"' in error.hint


def test_a_refused_key_either_way_is_an_auth_error(tmp_path: Path) -> None:
    project = ProjectPaths.for_directory(tmp_path)
    mismatch = ssh_error(asyncssh.HostKeyNotVerifiable("no match"), "10.0.0.2", project)
    refused = ssh_error(asyncssh.PermissionDenied("no"), "10.0.0.2", project)
    assert isinstance(mismatch, SSHAuthError) and isinstance(refused, SSHAuthError)
    assert not isinstance(ssh_error(TimeoutError(), "10.0.0.2", project), SSHAuthError)


@pytest.mark.parametrize("error", [SSHAuthError("the other side said no"), SSHError("not up yet")])
async def test_warm_attach_gives_up_only_on_an_auth_error(
    entry: SessionEntry,
    defined: FakeHypervisor,
    monkeypatch: pytest.MonkeyPatch,
    error: SSHError,
) -> None:
    """A guest that refused our key (or another machine at its address) is never waited for;
    any other failure takes the slow path (the lease, then SSH again)."""
    project = entry.project
    project.cache.mkdir(exist_ok=True)
    project.ipv4.write_text("10.0.0.2\n")
    attempts: list[str] = []

    async def fake_connect(_project: ProjectPaths, ipv4: str, **_: object) -> object:
        attempts.append(ipv4)
        raise error

    monkeypatch.setattr(ssh_wait, "connect", fake_connect)
    monkeypatch.setenv(ssh_wait.BOOT_TIMEOUT_ENV, "5")
    with pytest.raises(VibeboxError) as raised:
        await ssh_wait.wait_for_ssh(
            project, entry.id, defined, ProgressClock(None), "tcg", booted=False
        )
    if isinstance(error, SSHAuthError):
        assert raised.value is error and attempts == ["10.0.0.2"]
    else:
        assert not isinstance(raised.value, SSHAuthError)  # it waited for the lease instead
