"""Checkpoints of the guest disk (vibebox_core/session/checkpoint.py) on small real qcow2 files:
save, list, restore and remove on a stopped disk with qemu-img; the running path on the fake
hypervisor (pause, QEMU's snapshot, resume); the name rules. No VM."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vibebox_core.errors import CheckpointError, SessionNotFoundError, VibeboxError
from vibebox_core.hypervisor.fake import FakeDomain, FakeHypervisor
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import checkpoint, checkpoint_record

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
    reason="needs qemu-img and qemu-io (qemu-utils)",
)

SESSION_ID = "019bf291-0001-7c23-ba1d-dce7e6d40693"
MiB = 1 << 20


def _io(disk: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-c", command, str(disk)], capture_output=True, text=True)


def write(disk: Path, pattern: int, offset: int = 0, length: int = MiB) -> None:
    """Write ``length`` bytes of ``pattern`` into the guest disk, as the guest would."""
    done = _io(disk, f"write -P {pattern:#x} {offset} {length}")
    assert done.returncode == 0, done.stderr


def holds(disk: Path, pattern: int, offset: int = 0, length: int = MiB) -> bool:
    """True when the disk reads ``pattern`` there."""
    done = _io(disk, f"read -P {pattern:#x} {offset} {length}")
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout


@pytest.fixture
def session(project: ProjectPaths, tmp_path: Path) -> ProjectPaths:
    """The project (its .vibebox/ made) with a session id, a base image and a 64 MiB instance
    overlay on it."""
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    write(base, 0xAA, 0, 4 * MiB)
    project.session_id.write_text(SESSION_ID + "\n")
    backed = ["-b", str(base), "-F", "qcow2", str(project.disk), "64M"]
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *backed], check=True)
    (project.root / "main.py").write_text("print('project file on the host')\n")
    return project


def project_hash(project: ProjectPaths) -> str:
    return hashlib.sha256((project.root / "main.py").read_bytes()).hexdigest()


def running_hv() -> FakeHypervisor:
    hv = FakeHypervisor()
    hv.domains[SESSION_ID] = FakeDomain(SESSION_ID, "vibebox-proj", "<domain/>", None, None, None)
    hv.set_status(SESSION_ID, "running")
    return hv


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "before-upgrade", "v1.2_rc-3", "2026-12-01", "x" * 40])
def test_good_names(name: str) -> None:
    assert checkpoint.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 41,
        "12",  # qemu-img would take it for a snapshot's numeric id
        "-a",  # an option to qemu-img
        ".hidden",
        "with space",
        "a,b",  # a separator in qemu-img's -l options
        "a/b",
        "snap\x1b[2J",
        "naïve",
        "a\n",
    ],
)
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        checkpoint.check_name(name)
    assert "letters, digits" in caught.value.hint


def test_default_name_is_the_utc_time_and_never_taken() -> None:
    now = datetime(2026, 12, 1, 12, 5, 9, tzinfo=UTC)
    assert checkpoint.default_name(set(), now) == "ckpt-20261201-120509"
    taken = {"ckpt-20261201-120509", "ckpt-20261201-120509-2"}
    assert checkpoint.default_name(taken, now) == "ckpt-20261201-120509-3"
    assert checkpoint.valid_name(checkpoint.default_name(set()))


# -- a stopped disk, with qemu-img -------------------------------------------------------------


def test_save_list_restore_rm_on_a_stopped_disk(session: ProjectPaths) -> None:
    hv = FakeHypervisor()  # no domain defined yet: "missing", like a stopped VM
    before = project_hash(session)
    write(session.disk, 0x11)
    saved = asyncio.run(checkpoint.save(session, "first", hypervisor=hv))
    assert saved == checkpoint.Saved("first", None, None)  # nothing was paused
    write(session.disk, 0x22, 0, 2 * MiB)
    asyncio.run(checkpoint.save(session, "second", hypervisor=hv))
    write(session.disk, 0x33)

    listed = asyncio.run(checkpoint.list_checkpoints(session, hypervisor=hv))
    assert [c.name for c in listed] == ["first", "second"]
    first, second = listed
    assert first.data is not None and second.data is not None
    # The guest's own data on top of the base (1 MiB, then 2 MiB), not the base's 4 MiB.
    assert MiB <= first.data < 2 * MiB
    assert 2 * MiB <= second.data < 3 * MiB
    assert abs((first.created - datetime.now(UTC)).total_seconds()) < 60
    assert checkpoint.disk_usage(session) > 2 * MiB

    restored = asyncio.run(checkpoint.restore(session, "first", hypervisor=hv))
    assert restored == checkpoint.Restored("first", was_running=False, started=False)
    assert holds(session.disk, 0x11)
    assert holds(session.disk, 0xAA, 2 * MiB, 2 * MiB)  # the base shows through again
    asyncio.run(checkpoint.restore(session, "second", hypervisor=hv))
    assert holds(session.disk, 0x22, 0, 2 * MiB)

    asyncio.run(checkpoint.remove(session, "first", hypervisor=hv))
    names = [c.name for c in asyncio.run(checkpoint.list_checkpoints(session, hypervisor=hv))]
    assert names == ["second"]
    assert project_hash(session) == before  # never touched
    assert hv.calls == [c for c in hv.calls if c[0] == "status"]  # qemu-img did it all


def test_save_without_a_name_picks_the_default(session: ProjectPaths) -> None:
    saved = asyncio.run(checkpoint.save(session, hypervisor=FakeHypervisor()))
    assert saved.name.startswith("ckpt-") and checkpoint.valid_name(saved.name)


def test_a_taken_name_and_an_unknown_one_are_refused(session: ProjectPaths) -> None:
    hv = FakeHypervisor()
    asyncio.run(checkpoint.save(session, "one", hypervisor=hv))
    with pytest.raises(CheckpointError, match="already has a checkpoint 'one'"):
        asyncio.run(checkpoint.save(session, "one", hypervisor=hv))
    with pytest.raises(CheckpointError, match="no checkpoint 'two'") as caught:
        asyncio.run(checkpoint.restore(session, "two", hypervisor=hv))
    assert "checkpoint list" in caught.value.hint
    with pytest.raises(CheckpointError, match="no checkpoint 'two'"):
        asyncio.run(checkpoint.remove(session, "two", hypervisor=hv))
    with pytest.raises(CheckpointError, match="invalid checkpoint name"):
        asyncio.run(checkpoint.restore(session, "1", hypervisor=hv))


def test_no_session_and_no_disk_are_clear_errors(project: ProjectPaths) -> None:
    with pytest.raises(SessionNotFoundError):
        asyncio.run(checkpoint.list_checkpoints(project, hypervisor=FakeHypervisor()))
    project.session_id.write_text(SESSION_ID + "\n")
    with pytest.raises(CheckpointError, match="no disk yet") as caught:
        asyncio.run(checkpoint.save(project, "x", hypervisor=FakeHypervisor()))
    assert "vibebox exec -- true" in caught.value.hint


def test_a_symlinked_disk_is_refused(session: ProjectPaths, tmp_path: Path) -> None:
    other = tmp_path / "someone-elses.qcow2"
    session.disk.rename(other)
    session.disk.symlink_to(other)
    with pytest.raises(VibeboxError, match="symlink"):
        asyncio.run(checkpoint.save(session, "x", hypervisor=FakeHypervisor()))
    assert (
        "Snapshot list"
        not in subprocess.run(
            ["qemu-img", "snapshot", "-l", str(other)], capture_output=True, text=True
        ).stdout
    )


def test_qemu_img_failure_is_quoted(session: ProjectPaths) -> None:
    session.disk.write_bytes(b"not a qcow2 image")
    with pytest.raises(CheckpointError, match="qemu-img could not") as caught:
        asyncio.run(checkpoint.save(session, "x", hypervisor=FakeHypervisor()))
    assert caught.value.hint


# -- a running VM, on the fake hypervisor ------------------------------------------------------


def test_save_of_a_running_vm_pauses_snapshots_in_qemu_and_resumes(session: ProjectPaths) -> None:
    hv = running_hv()
    write(session.disk, 0x44)
    events: list[str] = []
    saved = asyncio.run(
        checkpoint.save(session, "live", hypervisor=hv, progress=lambda e: events.append(e.detail))
    )
    assert saved.held is not None and 0 <= saved.held < 5
    assert saved.synced is False  # no recorded address: the guest could not be asked to sync
    order = [c[0] for c in hv.calls if c[0] in ("suspend", "snapshot_disk", "resume")]
    assert order == ["suspend", "snapshot_disk", "resume"]
    assert hv.state(SESSION_ID) == "running"
    assert any("paused" in e and "live" in e for e in events)
    assert [c.name for c in asyncio.run(checkpoint.list_checkpoints(session, hypervisor=hv))] == [
        "live"
    ]


def test_a_failed_snapshot_still_resumes_the_vm(session: ProjectPaths) -> None:
    hv = running_hv()
    hv.fail("snapshot_disk")
    with pytest.raises(Exception, match="fake failure"):
        asyncio.run(checkpoint.save(session, "live", hypervisor=hv))
    assert hv.state(SESSION_ID) == "running"  # not left paused
    assert ("resume", SESSION_ID) in hv.calls


def test_remove_on_a_running_vm_goes_through_qemu(session: ProjectPaths) -> None:
    hv = FakeHypervisor()
    asyncio.run(checkpoint.save(session, "old", hypervisor=hv))
    hv = running_hv()
    asyncio.run(checkpoint.remove(session, "old", hypervisor=hv))
    assert ("delete_disk_snapshot", SESSION_ID, "old") in hv.calls
    assert asyncio.run(checkpoint.list_checkpoints(session, hypervisor=hv)) == []


def test_restore_of_a_running_vm_stops_it_first(session: ProjectPaths) -> None:
    write(session.disk, 0x55)
    asyncio.run(checkpoint.save(session, "good", hypervisor=FakeHypervisor()))
    write(session.disk, 0x66)
    hv = running_hv()
    restored = asyncio.run(checkpoint.restore(session, "good", hypervisor=hv, start_again=False))
    assert restored == checkpoint.Restored("good", was_running=True, started=False)
    assert ("stop", SESSION_ID) in hv.calls
    assert hv.state(SESSION_ID) == "shut off"
    assert holds(session.disk, 0x55)


def test_a_vm_in_between_states_is_not_checkpointed(session: ProjectPaths) -> None:
    hv = running_hv()
    hv.set_status(SESSION_ID, "stopping")
    with pytest.raises(CheckpointError, match="VM is stopping") as caught:
        asyncio.run(checkpoint.save(session, "x", hypervisor=hv))
    assert "vibebox list" in caught.value.hint
    assert not any(c[0] == "suspend" for c in hv.calls)


def test_restore_brings_back_whether_the_disk_was_provisioned(session: ProjectPaths) -> None:
    hv = FakeHypervisor()
    # Saved before provisioning (a fresh disk, due), then provisioned, then saved again.
    session.provision_pending.write_text(SESSION_ID + "\n")
    asyncio.run(checkpoint.save(session, "fresh", hypervisor=hv))
    session.provision_pending.unlink()
    session.provision_record.write_text('{"version": 1, "state": "done"}\n')
    asyncio.run(checkpoint.save(session, "provisioned", hypervisor=hv))
    session.provision_record.write_text('{"version": 1, "state": "failed"}\n')

    asyncio.run(checkpoint.restore(session, "fresh", hypervisor=hv))
    assert not session.provision_record.exists()  # the disk never ran the list: due again
    assert session.provision_pending.read_text().strip() == SESSION_ID
    asyncio.run(checkpoint.restore(session, "provisioned", hypervisor=hv))
    assert session.provision_record.read_text() == '{"version": 1, "state": "done"}\n'
    assert not session.provision_pending.exists()
    asyncio.run(checkpoint.remove(session, "fresh", hypervisor=hv))
    assert sorted(p.name for p in session.checkpoint_records.iterdir()) == ["provisioned.json"]


def test_a_symlinked_records_directory_is_never_written(
    session: ProjectPaths, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    session.checkpoint_records.symlink_to(elsewhere)  # as a cloned .vibebox/ could ship it
    session.provision_record.write_text("{}\n")
    with pytest.raises(VibeboxError, match="symlink"):  # the cache check refuses it first
        asyncio.run(checkpoint.save(session, "one", hypervisor=FakeHypervisor()))
    assert list(elsewhere.iterdir()) == []
    # And the records themselves never follow it, should the cache check let one through.
    checkpoint_record.keep(session, "two")
    assert list(elsewhere.iterdir()) == []
