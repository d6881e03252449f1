"""The approved snapshot outside the project: first starts, changes, pending diffs, new sessions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vibebox_core.config import approval, snapshot
from vibebox_core.config.edit import set_value
from vibebox_core.config.grants import PolicyNotApprovedError, policy_digest
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import ACCEL_ENV
from vibebox_core.config.snapshot import read_approved
from vibebox_core.errors import ConfigError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve
from vibebox_core.session.hypervisors import libvirt_uri

pytestmark = pytest.mark.usefixtures("no_accel_env")


@pytest.fixture
def project(project: ProjectPaths) -> ProjectPaths:
    """The core tests' empty project (tests/core/conftest.py), with the commented defaults."""
    load_config(project)
    return project


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_default_file_starts_without_asking_and_is_recorded(project: ProjectPaths) -> None:
    entry = SessionIndex().ensure(project.root)
    assert approval.review(project).status == "new"
    assert not approval.review(project).needs_approval
    config = approve.gate(project, entry.id)
    assert config.box.libvirt_uri == "qemu:///system"
    path = snapshot.snapshot_path(project)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.is_relative_to(project.root)  # outside the guest-writable project
    assert approval.review(project).status == "approved"
    # The running supervisor reads the approved policy from the index entry.
    approved = read_approved(SessionIndex().get(entry.id).extra)
    assert approved is not None and approved["box"]["cpus"] == 2


def test_first_start_that_grants_more_asks(project: ProjectPaths, data: Path) -> None:
    set_value(project, "box", "mounts", [f"{data}:/data"])
    set_value(project, "box", "cpus", 8)
    set_value(project, "network", "ports", ["8000"])
    entry = SessionIndex().ensure(project.root)
    with pytest.raises(PolicyNotApprovedError) as refused:
        approve.gate(project, entry.id)
    diff = refused.value.check.diff
    assert f"+ mount: {data} → /data (rw)" in diff
    assert "~ cpus: 2 → 8" in diff
    assert "+ port forward: host 127.0.0.1:8000 → guest 8000" in diff
    assert refused.value.first and "never approved" in refused.value.message
    assert "vibebox approve" in refused.value.hint
    assert not snapshot.snapshot_path(project).exists()
    # Nothing of it is enforced yet.
    enforced = approval.enforced_config(project)
    assert enforced.box.cpus == 2 and enforced.box.mounts == () and enforced.network.ports == ()
    # Approved on the host, the start goes ahead with it.
    assert approve.approve(project, expected=refused.value.check.digest) == "next start"
    config = approve.gate(project, entry.id)
    assert config.box.cpus == 8 and config.box.mounts[0].host == data


@pytest.mark.parametrize(
    ("table", "key", "value", "asks"),
    [
        ("network", "mode", "allowlist", False),  # narrower than the default blocklist
        ("network", "entries", ["ads.example"], False),  # a blocklist entry narrows
        ("box", "cpus", 1, False),
        ("box", "memory_mb", 1024, False),
        ("box", "cpus", 3, True),
        ("box", "memory_mb", 4096, True),
        ("box", "disk_gb", 11, True),
        ("box", "accel", "tcg", True),
        ("box", "libvirt_uri", "qemu:///session", True),
        ("supervisor", "auto_shutdown_ms", 3_600_000, True),
        ("supervisor", "auto_shutdown_ms", 0, False),
    ],
)
def test_first_start_rule(
    project: ProjectPaths, table: str, key: str, value: object, asks: bool
) -> None:
    set_value(project, table, key, value)
    assert approval.review(project).needs_approval is asks


def test_allowlist_entries_need_approval_once_approved(project: ProjectPaths) -> None:
    set_value(project, "network", "mode", "allowlist")
    approve.gate(project)  # narrower: approved by the first start
    set_value(project, "network", "entries", ["evil.example"])
    found = approval.review(project)
    assert found.status == "changed" and found.needs_approval
    assert found.diff == ("+ network entry: evil.example",)
    assert approval.enforced_config(project).network.entries == ()
    with pytest.raises(PolicyNotApprovedError):
        approve.gate(project)


def test_a_change_is_pending_until_approved(project: ProjectPaths, data: Path) -> None:
    approve.gate(project)
    set_value(project, "box", "memory_mb", 8192)
    set_value(project, "box", "mounts", [f"{data}:/data:ro"])
    found = approval.review(project)
    assert found.status == "changed"
    assert set(found.diff) == {"~ memory_mb: 2048 → 8192", f"+ mount: {data} → /data (ro)"}
    # The host keeps running from the approved values meanwhile.
    assert approval.enforced_config(project).box.memory_mb == 2048
    assert found.enforced_config().box.memory_mb == 2048
    with pytest.raises(PolicyNotApprovedError) as refused:
        approve.gate(project)
    assert not refused.value.first and "changed" in refused.value.message
    assert approve.approve(project) == "next start"
    assert approval.enforced_config(project).box.memory_mb == 8192
    assert approval.review(project).status == "approved"


def test_approve_records_exactly_what_was_shown(project: ProjectPaths) -> None:
    approve.gate(project)
    set_value(project, "box", "cpus", 4)
    shown = approval.review(project).check()
    set_value(project, "box", "cpus", 64)  # the guest changes it again meanwhile
    with pytest.raises(PolicyNotApprovedError) as refused:
        approve.approve(project, expected=shown.digest)
    assert "~ cpus: 2 → 64" in refused.value.check.diff
    assert approval.enforced_config(project).box.cpus == 2


def test_entries_apply_live_and_resources_next_start(project: ProjectPaths) -> None:
    approve.gate(project)
    set_value(project, "network", "entries", ["a.example"])
    assert approve.approve(project) == "live"
    set_value(project, "box", "cpus", 4)
    assert approve.approve(project) == "next start"


def test_a_fresh_session_keeps_the_projects_approval(project: ProjectPaths, data: Path) -> None:
    set_value(project, "box", "mounts", [f"{data}:/data"])
    approve.approve(project)
    first = SessionIndex().ensure(project.root)
    approve.gate(project, first.id)
    # `delete` + start, or `:new`: a new session id for the same directory.
    SessionIndex().remove(first.id)
    second = SessionIndex().create(project.root)
    assert second.id != first.id
    config = approve.gate(project, second.id)  # no question asked
    assert config.box.mounts[0].host == data
    assert read_approved(SessionIndex().get(second.id).extra) is not None


def test_another_clone_has_its_own_approval(
    project: ProjectPaths, data: Path, tmp_path: Path
) -> None:
    set_value(project, "box", "mounts", [f"{data}:/data"])
    approve.approve(project)
    clone_root = tmp_path / "clone"
    clone_root.mkdir()
    clone = ProjectPaths.for_directory(clone_root)
    clone.config.write_text(project.config.read_text())
    assert snapshot.snapshot_path(clone) != snapshot.snapshot_path(project)
    assert approval.review(clone).needs_approval


def test_a_symlinked_project_path_shares_the_real_paths_snapshot(
    project: ProjectPaths, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(project.root)
    assert snapshot.snapshot_path(ProjectPaths(link)) == snapshot.snapshot_path(project)


def test_a_swapped_symlink_in_a_mount_path_is_a_change(
    project: ProjectPaths, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (project.root / "sub").symlink_to(tmp_path / "a")
    set_value(project, "box", "mounts", ["./sub:/data"])
    approve.approve(project)
    assert approval.review(project).status == "approved"
    (project.root / "sub").unlink()
    (project.root / "sub").symlink_to(tmp_path / "b")  # the guest swaps it; the text is the same
    found = approval.review(project)
    assert found.status == "changed" and found.needs_approval
    assert any(str(tmp_path / "b") in line for line in found.diff)


def test_the_snapshot_pins_approved_mounts(project: ProjectPaths, data: Path) -> None:
    set_value(project, "box", "mounts", [f"{data}:/data"])
    approve.approve(project)
    pins = snapshot.approved_pins(project)
    info = data.stat()
    assert pins["/data"] == {"path": str(data), "dev": info.st_dev, "ino": info.st_ino}


def test_a_damaged_snapshot_counts_as_none(project: ProjectPaths) -> None:
    set_value(project, "box", "cpus", 4)
    approve.approve(project)
    path = snapshot.snapshot_path(project)
    document = json.loads(path.read_text())
    document["values"]["box"]["cpus"] = 64  # the digest no longer matches
    path.write_text(json.dumps(document))
    assert snapshot.read_snapshot(project) is None
    assert approval.enforced_config(project).box.cpus == 2
    path.write_text("{not json")
    assert approval.review(project).status == "new"
    os.unlink(path)
    path.symlink_to("/dev/zero")
    assert snapshot.read_snapshot(project) is None


def test_a_tampered_snapshot_uri_is_never_used(project: ProjectPaths) -> None:
    approve.gate(project)
    path = snapshot.snapshot_path(project)
    document = json.loads(path.read_text())
    document["values"]["box"]["libvirt_uri"] = "qemu+ext:///system?command=/tmp/x"
    document["digest"] = policy_digest(document["values"])
    path.write_text(json.dumps(document))
    assert approval.enforced_uri(project) == "qemu:///system"


def test_status_polls_never_use_the_files_uri(project: ProjectPaths) -> None:
    approve.gate(project)
    project.config.write_text('[box]\nlibvirt_uri = "qemu+ext:///system?command=./x.sh"\n')
    assert libvirt_uri(project) == "qemu:///system"
    assert approval.review(project).status == "unreadable"
    with pytest.raises(ConfigError, match="run a program"):
        approve.gate(project)
    # A valid but unapproved local URI is not used either.
    project.config.write_text('[box]\nlibvirt_uri = "qemu:///session"\n')
    assert libvirt_uri(project) == "qemu:///system"
    approve.approve(project)
    assert libvirt_uri(project) == "qemu:///session"


def test_accel_env_is_the_hosts_not_a_change(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCEL_ENV, "tcg")
    config = approve.gate(project)
    assert config.box.accel == "tcg"
    assert approval.review(project).status == "approved"
    assert approval.enforced_config(project).box.accel == "tcg"


def test_control_characters_in_mount_paths_are_refused(
    project: ProjectPaths, tmp_path: Path
) -> None:
    weird = tmp_path / "a\x1b[2Kb"
    weird.mkdir()
    project.config.write_text(f'[box]\nmounts = ["{tmp_path}/a\\u001b[2Kb:/data"]\n')
    found = approval.review(project)
    assert found.status == "unreadable" and found.error is not None
    assert "control character" in found.error.message
    assert "\x1b" not in found.error.message  # shown escaped
