"""The virtiofsd wrappers that hide ``.vibebox/`` and make read-only shares read-only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vibebox_core.hypervisor import virtiofs


def test_install_readonly_virtiofsd_compat(tmp_path: Path) -> None:
    path = virtiofs.install_readonly_virtiofsd(tmp_path / "virtiofsd-ro")
    assert path == tmp_path / "virtiofsd-ro"
    assert (tmp_path / "virtiofsd-rw").exists()


def test_install_virtiofsd_wrappers(tmp_path: Path) -> None:
    wrappers = virtiofs.install_virtiofsd_wrappers(tmp_path / "bin", Path("/opt/virtiofsd"))
    assert wrappers == (tmp_path / "bin" / "virtiofsd-rw", tmp_path / "bin" / "virtiofsd-ro")
    rw, ro = wrappers.readwrite.read_text(), wrappers.readonly.read_text()
    for text in (rw, ro):
        assert text.startswith("#!/bin/sh")
        assert "exec /opt/virtiofsd" in text
        assert '"$src/.vibebox"' in text  # the session cache is hidden in both
    assert "remount,bind,ro" in ro
    assert "remount,bind,ro" not in rw
    for path in wrappers:
        assert os.access(path, os.X_OK)
        subprocess.run(["sh", "-n", str(path)], check=True)  # valid shell
    mtime = wrappers.readonly.stat().st_mtime_ns
    virtiofs.install_virtiofsd_wrappers(tmp_path / "bin", Path("/opt/virtiofsd"))
    assert wrappers.readonly.stat().st_mtime_ns == mtime  # unchanged content is not rewritten


def test_install_virtiofsd_wrappers_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIBEBOX_HOME", str(tmp_path))
    assert virtiofs.install_virtiofsd_wrappers() == (
        tmp_path / "bin" / "virtiofsd-rw",
        tmp_path / "bin" / "virtiofsd-ro",
    )
