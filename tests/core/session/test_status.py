"""Session states as lists show them: the hypervisor's view with the supervisor's count."""

from __future__ import annotations

import socket
import threading

from vibebox_core import paths
from vibebox_core.errors import VMError
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.paths import ProjectPaths
from vibebox_core.session.status import list_statuses, session_status


def test_status_of_a_session_never_started(entry: SessionEntry) -> None:
    status = session_status(entry, FakeHypervisor())
    assert status.state == "shut off" and "no VM defined" in status.reason
    assert status.attached == 0 and status.ipv4 is None


def test_status_running_reads_the_address(
    entry: SessionEntry, project: ProjectPaths, defined: FakeHypervisor
) -> None:
    hv = defined
    hv.start(entry.id)
    project.ipv4.write_text("10.213.1.2\n")
    status = session_status(entry, hv)
    assert (status.state, status.ipv4, status.attached) == ("running", "10.213.1.2", 0)
    assert status.to_dict()["id"] == entry.id


def test_status_broken_keeps_the_reason(entry: SessionEntry, defined: FakeHypervisor) -> None:
    hv = defined
    hv.set_status(entry.id, "broken", "paused after a disk I/O error")
    status = session_status(entry, hv)
    assert status.state == "broken" and "disk I/O" in status.reason


def test_status_never_raises(entry: SessionEntry) -> None:
    hv = FakeHypervisor()
    hv.fail("status", VMError("cannot reach libvirt", hint="start libvirtd"))
    status = session_status(entry, hv)
    assert status.state == "broken"
    assert status.reason == "cannot reach libvirt (start libvirtd)"


def test_status_without_cache_is_broken(entry: SessionEntry, project: ProjectPaths) -> None:
    project.cache.rmdir()
    assert session_status(entry, FakeHypervisor()).state == "broken"


def test_status_counts_attachments_from_the_supervisor(
    entry: SessionEntry, defined: FakeHypervisor
) -> None:
    hv = defined
    hv.start(entry.id)
    sock_path = paths.supervisor_socket_path(entry.id)
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
        status = session_status(entry, hv)
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
    [status] = list_statuses(Index(), hv)  # type: ignore[arg-type]
    assert status.state == "broken" and "libvirt is down" in status.reason
