"""Waiting for SSH: the boot timeout and the error that quotes the console."""

from __future__ import annotations

import pytest

from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.session import ssh_wait


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
