"""CoreBackend's checkpoints on a small real qcow2 disk whose VM is off (no VM needed): the
dashboard's rows and lines come from the core (vibebox_core/session/checkpoint.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressEvent
from vibebox_tui.backend.core import CoreBackend

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

SESSION_ID = "019bf291-0003-7c23-ba1d-dce7e6d40693"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    paths = ProjectPaths.for_directory(tmp_path / "webshop")
    paths.cache.mkdir(parents=True)
    paths.session_id.write_text(SESSION_ID + "\n")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(paths.disk), "64M"], check=True)
    return paths.root


def test_save_list_restore_remove(project: Path) -> None:
    backend = CoreBackend(project, hypervisor=FakeHypervisor())
    line = backend.save_checkpoint(project, lambda _event: None)
    assert line.startswith("saved checkpoint ckpt-") and line.endswith("(the VM is off)")
    listed = backend.checkpoints(project)
    (row,) = listed.rows
    assert row.name == line.split()[2]
    assert row.size.endswith(("B", "KiB", "MiB"))
    assert listed.disk_usage.endswith(("KiB", "MiB"))
    events: list[ProgressEvent] = []
    assert backend.restore_checkpoint(project, row.name, events.append) is False  # it was off
    assert any(e.step == "restoring checkpoint" and e.done for e in events)
    backend.remove_checkpoint(project, row.name)
    assert backend.checkpoints(project).rows == ()
