"""Choosing the accelerator (KVM or TCG) and the hint for a stalled boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import accelerator


def test_resolve_accel() -> None:
    assert accelerator.resolve_accel("tcg", kvm_available=True) == "tcg"
    assert accelerator.resolve_accel("auto", kvm_available=True) == "kvm"
    assert accelerator.resolve_accel("auto", kvm_available=False) == "tcg"
    # A nested host: /dev/kvm may exist, but guests can hang (seen on the lab machines).
    assert accelerator.resolve_accel("auto", kvm_available=True, nested=True) == "tcg"
    assert accelerator.resolve_accel("kvm", kvm_available=True, nested=True) == "kvm"
    assert accelerator.resolve_accel(" KVM ", kvm_available=True) == "kvm"
    with pytest.raises(VMError) as info:
        accelerator.resolve_accel("kvm", kvm_available=False)
    assert "tcg" in info.value.hint
    with pytest.raises(VMError, match="unknown accel"):
        accelerator.resolve_accel("hvf", kvm_available=True)


def test_boot_stalled_hint_names_accel() -> None:
    assert "accel" in accelerator.boot_stalled_hint(
        "kvm"
    ) and "tcg" in accelerator.boot_stalled_hint("kvm")
    assert "accel=tcg" in accelerator.boot_stalled_hint("tcg")


def test_kvm_device_usable(tmp_path: Path) -> None:
    assert not accelerator.kvm_device_usable(tmp_path / "missing")
    device = tmp_path / "kvm"
    device.write_text("")
    assert accelerator.kvm_device_usable(device)
