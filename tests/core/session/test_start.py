"""The pure parts of the session lifecycle: status mapping, seed contract, disks, quoting."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.errors import VMError
from vibebox_core.hypervisor import domain_xml as vm
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import boot as provision
from vibebox_core.session import start as runtime
from vibebox_core.session import status as sessionctl
from vibebox_core.ssh import connect as ssh

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vbx-rt-", dir="/tmp"))  # short socket paths
    monkeypatch.setenv(paths.HOME_ENV, str(directory))
    monkeypatch.delenv("VIBEBOX_ACCEL", raising=False)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def project(home: Path) -> ProjectPaths:
    root = home / "my-proj"
    (root / paths.PROJECT_CACHE).mkdir(parents=True)
    return ProjectPaths.for_directory(root)


@pytest.fixture
def entry(project: ProjectPaths) -> SessionEntry:
    return SessionEntry(SID, project.root, datetime(2026, 11, 27, tzinfo=UTC))


def _define(hv: FakeHypervisor, project: ProjectPaths) -> None:
    spec = vm.NetworkSpec.for_session(SID)
    domain = vm.DomainSpec(
        session_id=SID,
        name=vm.domain_name(project.name, SID),
        cpus=1,
        memory_mb=512,
        accel="tcg",
        kernel=Path("/k"),
        initrd=Path("/i"),
        disk=project.disk,
        console_log=project.console_log,
        network=spec.name,
        mac=spec.mac,
    )
    hv.define(vm.domain_xml(domain), vm.network_xml(spec))


# ---------------------------------------------------------------- status mapping


def test_status_of_a_session_never_started(entry: SessionEntry) -> None:
    status = sessionctl.session_status(entry, FakeHypervisor())
    assert status.state == "shut off" and "no VM defined" in status.reason
    assert status.attached == 0 and status.ipv4 is None


def test_status_running_reads_the_address(entry: SessionEntry, project: ProjectPaths) -> None:
    hv = FakeHypervisor()
    _define(hv, project)
    hv.start(SID)
    project.ipv4.write_text("10.213.1.2\n")
    status = sessionctl.session_status(entry, hv)
    assert (status.state, status.ipv4, status.attached) == ("running", "10.213.1.2", 0)
    assert status.to_dict()["id"] == SID


def test_status_broken_keeps_the_reason(entry: SessionEntry, project: ProjectPaths) -> None:
    hv = FakeHypervisor()
    _define(hv, project)
    hv.set_status(SID, "broken", "paused after a disk I/O error")
    status = sessionctl.session_status(entry, hv)
    assert status.state == "broken" and "disk I/O" in status.reason


def test_status_never_raises(entry: SessionEntry) -> None:
    hv = FakeHypervisor()
    hv.fail("status", VMError("cannot reach libvirt", hint="start libvirtd"))
    status = sessionctl.session_status(entry, hv)
    assert status.state == "broken"
    assert status.reason == "cannot reach libvirt (start libvirtd)"


def test_status_without_cache_is_broken(entry: SessionEntry, project: ProjectPaths) -> None:
    project.cache.rmdir()
    assert sessionctl.session_status(entry, FakeHypervisor()).state == "broken"


def test_status_counts_attachments_from_the_supervisor(
    entry: SessionEntry, project: ProjectPaths
) -> None:
    hv = FakeHypervisor()
    _define(hv, project)
    hv.start(SID)
    sock_path = paths.supervisor_socket_path(SID)
    sock_path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen()

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b'{"ok": true, "attached": 2, "phase": "running"}\n')

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        status = sessionctl.session_status(entry, hv)
    finally:
        thread.join(5)
        server.close()
    assert (status.state, status.attached) == ("running", 2)


def test_list_statuses_marks_all_broken_when_libvirt_fails(entry: SessionEntry) -> None:
    class Index:
        def entries(self) -> list[SessionEntry]:
            return [entry]

    hv = FakeHypervisor()
    hv.fail("statuses", VMError("libvirt is down"))
    [status] = sessionctl.list_statuses(Index(), hv)  # type: ignore[arg-type]
    assert status.state == "broken" and "libvirt is down" in status.reason


# ---------------------------------------------------------------- the seed contract


def test_guest_ids_map_root_to_1000() -> None:
    assert provision.guest_ids(0, 0) == (1000, 1000)
    assert provision.guest_ids(1234, 99) == (1234, 99)


def test_guest_json_follows_the_seed_contract(project: ProjectPaths, home: Path) -> None:
    extra = home / "data"
    extra.mkdir()
    project.config.write_text(f'[box]\nmounts = ["{extra}:~/data:ro", "{extra}:/srv/x"]\n')
    config = load_config(project)
    data = provision.guest_json(
        config, project, env={"http_proxy": "http://10.0.0.1:3128"}, uid=0, gid=0
    )
    assert data == {
        "uid": 1000,
        "gid": 1000,
        "hostname": "vibebox",
        "project_name": "my-proj",
        "project_guest_path": "/home/vibecoder/my-proj",
        "mounts": [
            {"tag": "vibebox-project", "guest": "/home/vibecoder/my-proj", "read_only": False},
            {"tag": "vibebox-m1", "guest": "/home/vibecoder/data", "read_only": True},
            {"tag": "vibebox-m2", "guest": "/srv/x", "read_only": False},
        ],
        "env": {"http_proxy": "http://10.0.0.1:3128"},
    }


def test_write_seed(project: ProjectPaths) -> None:
    ssh.ensure_keys(project)
    provision.write_seed(project, {"uid": 1000})
    seed = project.seed_dir
    assert sorted(p.name for p in seed.iterdir()) == [
        "authorized_keys",
        "guest.json",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ]
    assert stat.S_IMODE((seed / "ssh_host_ed25519_key").stat().st_mode) == 0o600
    assert (seed / "authorized_keys").read_bytes() == project.client_pubkey.read_bytes()
    assert json.loads((seed / "guest.json").read_text()) == {"uid": 1000}


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_overlay_is_made_once_on_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    disk = tmp_path / "disk.qcow2"
    assert provision.create_overlay(disk, base, 2) is True
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(disk)], capture_output=True, check=True
        ).stdout
    )
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 2 * 1024**3
    assert provision.create_overlay(disk, base, 5) is False  # kept: the guest's disk persists


def test_overlay_failure_is_explained(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img")
    with pytest.raises(VMError, match="instance disk"):
        provision.create_overlay(tmp_path / "d.qcow2", tmp_path / "missing.qcow2", 1)


def test_boot_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime.boot_timeout("tcg") > runtime.boot_timeout("kvm")
    monkeypatch.setenv(runtime.BOOT_TIMEOUT_ENV, "42")
    assert runtime.boot_timeout("tcg") == 42.0


async def test_boot_error_quotes_the_console_and_names_accel(project: ProjectPaths) -> None:
    hv = FakeHypervisor()
    _define(hv, project)
    hv.set_console(SID, "Booting Linux\nkvm: hang")
    error = await runtime._boot_error(hv, SID, "kvm", 90, "no DHCP lease")
    assert "accel=kvm" in error.message and "    kvm: hang" in error.message
    assert 'accel = "tcg"' in error.hint


def test_a_disk_made_on_another_base_build_is_refused(project: ProjectPaths) -> None:
    provision.check_disk_base(project, "debian-12", "a" * 64)  # no disk yet: fine
    project.disk.write_bytes(b"qcow2")
    provision.check_disk_base(project, "debian-12", "a" * 64)  # no record (older session): fine
    project.disk_base.write_text("a" * 64 + "\n")
    provision.check_disk_base(project, "debian-12", "a" * 64)
    with pytest.raises(VMError, match="was rebuilt") as info:
        provision.check_disk_base(project, "debian-12", "b" * 64)
    assert "recreate the session" in info.value.hint
