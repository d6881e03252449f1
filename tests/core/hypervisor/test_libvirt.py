"""LibvirtHypervisor against libvirt's in-process test driver, and error translation.

``test:///default`` is libvirt's mock hypervisor inside this process: no daemon, no QEMU, so
these stay unit tests. It has no DHCP leases; tests/e2e/test_hypervisor_e2e.py covers those on
the real stack.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import domain_xml, libvirt_networks, names, network_xml
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.hypervisor.console import read_console_tail
from vibebox_core.hypervisor.errors import libvirt_error
from vibebox_core.hypervisor.failure import ERR_NO_CONNECT, ERR_OPERATION_FAILED, ERR_SYSTEM_ERROR
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor, _status_from

URI = "qemu:///system"


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor("test:///default", poll_interval=0.01)
    yield hypervisor
    hypervisor.close()


def define(
    hv: LibvirtHypervisor, sid: str, project: str = "p", *, isolated: bool = False
) -> network_xml.NetworkSpec:
    used = hv.used_subnets(exclude_session=sid)
    spec = network_xml.NetworkSpec.for_session(sid, used, isolated=isolated)
    dom = domain_xml.DomainSpec(
        session_id=sid,
        name=names.domain_name(project, sid),
        cpus=1,
        memory_mb=256,
        accel="tcg",
        kernel=Path("/img/vmlinuz"),
        initrd=Path("/img/initrd.img"),
        disk=Path("/p/disk.qcow2"),
        console_log=Path("/p/console.log"),
        network=spec.name,
        mac=spec.mac,
    )
    hv.define(domain_xml.domain_xml(dom), network_xml.network_xml(spec))
    return spec


def test_libvirt_hypervisor_conforms() -> None:
    assert isinstance(LibvirtHypervisor(), Hypervisor)


def test_lifecycle_on_the_test_driver(hv: LibvirtHypervisor) -> None:
    sid = str(uuid.uuid4())
    assert hv.state(sid) == "missing"
    assert not hv.exists(sid)
    spec = define(hv, sid)
    assert hv.exists(sid)
    assert hv.status(sid) == hv.statuses()[sid]
    assert hv.status(sid).name == names.domain_name("p", sid)
    assert hv.state(sid) == "shut off"
    assert spec.subnet in hv.used_subnets()
    assert spec.subnet not in hv.used_subnets(exclude_session=sid)
    assert hv.network_subnet(sid) == spec.subnet
    hv.start(sid)
    assert hv.state(sid) == "running"
    hv.start(sid)  # already running: no-op
    hv.shutdown(sid)
    assert hv.state(sid) == "shut off"
    hv.shutdown(sid)  # not running: no-op
    hv.destroy(sid)
    hv.start(sid)
    assert hv.stop(sid, timeout=1) is True
    hv.undefine(sid)
    assert hv.state(sid) == "missing"
    assert hv.network_subnet(sid) is None
    hv.undefine(sid)  # tolerant of missing domain and network
    hv.undefine_network(sid)


def test_capability_queries(hv: LibvirtHypervisor) -> None:
    assert hv.kvm_available() is False  # the test driver has no KVM
    assert isinstance(hv.host_is_virtual(), bool)


def test_start_network_restart_and_missing(hv: LibvirtHypervisor) -> None:
    sid = str(uuid.uuid4())
    define(hv, sid, isolated=True)
    hv.start_network(sid)
    hv.start_network(sid)  # already active
    hv.start_network(sid, restart=True)
    hv.undefine(sid)
    with pytest.raises(VMError, match="not defined"):
        hv.start_network(sid)
    with pytest.raises(VMError, match="no VM defined"):
        hv.start(sid)


def test_domain_without_network_is_broken(hv: LibvirtHypervisor) -> None:
    sid = str(uuid.uuid4())
    define(hv, sid)
    hv.undefine_network(sid)
    status = hv.status(sid)
    assert status.state == "broken"
    assert "network" in status.reason
    assert hv.statuses()[sid] == status
    hv.undefine(sid)


def test_renamed_project_renames_the_inactive_domain(hv: LibvirtHypervisor) -> None:
    sid = str(uuid.uuid4())
    define(hv, sid, project="old")
    define(hv, sid, project="new")
    assert hv.status(sid).name == names.domain_name("new", sid)
    hv.undefine(sid)


def test_name_taken_by_another_session(hv: LibvirtHypervisor) -> None:
    sid, other = str(uuid.uuid4()), str(uuid.uuid4())
    define(hv, sid, project="same")
    spec = network_xml.NetworkSpec.for_session(other, hv.used_subnets())
    xml = domain_xml.domain_xml(
        domain_xml.DomainSpec(
            session_id=other,
            name=names.domain_name("same", sid),
            cpus=1,
            memory_mb=256,
            accel="tcg",
            kernel=Path("/k"),
            initrd=Path("/i"),
            disk=Path("/d"),
            console_log=Path("/c"),
            network=spec.name,
            mac=spec.mac,
        )
    )
    with pytest.raises(VMError, match="already exists") as info:
        hv.define_domain(xml)
    assert "virsh -c test:///default undefine" in info.value.hint
    hv.undefine(sid)


def test_connection_failure_is_translated_and_silent(capfd: pytest.CaptureFixture[str]) -> None:
    bad = LibvirtHypervisor("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    with pytest.raises(VMError, match="cannot reach libvirt") as info:
        bad.state(str(uuid.uuid4()))
    assert "libvirtd" in info.value.hint
    assert capfd.readouterr().err == ""  # libvirt's own stderr printing is silenced


def test_unknown_driver_is_translated() -> None:
    with pytest.raises(VMError) as info:
        LibvirtHypervisor("nosuchdriver:///x").statuses()
    assert "libvirt_uri" in info.value.hint


def test_connection_is_reused_and_reopened(hv: LibvirtHypervisor) -> None:
    first = hv._connection()
    assert hv._connection() is first
    hv.close()
    second = hv._connection()
    assert second is not first
    second.close()  # as if libvirtd went away under us: the next call reconnects
    assert hv.state(str(uuid.uuid4())) == "missing"
    assert hv._connection() is not second


# --------------------------------------------------------------------------- translation


def test_translate_permission_denied_names_setfacl(tmp_path: Path) -> None:
    message = (
        "Cannot access storage file '/root/proj/.vibebox/disk.qcow2' "
        "(as uid:64055, gid:64055): Permission denied"
    )
    err = libvirt_error(ERR_SYSTEM_ERROR, message, action="start VM x", uri=URI)
    assert "disk.qcow2" in err.message
    assert "setfacl -m u:libvirt-qemu:x" in err.hint


def test_translate_connect_permission() -> None:
    message = "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied"
    err = libvirt_error(ERR_SYSTEM_ERROR, message, action="connect", uri=URI)
    assert "libvirt group" in err.hint


@pytest.mark.parametrize(
    ("message", "hint_word"),
    [
        ("operation failed: domain 'vibebox-p-1' already exists with uuid 1234", "undefine"),
        ("internal error: Network is already in use by interface virbr0", "subnet"),
        ("invalid argument: could not find capabilities for domaintype=kvm", "tcg"),
        ("Cannot find 'dnsmasq' in path: No such file or directory", "dnsmasq-base"),
        ("internal error: Failed to apply firewall rules /usr/sbin/iptables", "iptables"),
        ("Unable to find a satisfying virtiofsd", "virtiofsd"),
        ("cannot allocate memory for guest", "memory_mb"),
        ("Timed out during operation: cannot acquire state change lock", "destroy"),
        ("something new", "virsh -c qemu:///system list --all"),
    ],
)
def test_translate_known_messages(message: str, hint_word: str) -> None:
    err = libvirt_error(ERR_OPERATION_FAILED, message, action="do it", uri=URI)
    assert isinstance(err, VMError)
    assert err.message.startswith("could not do it: ")
    assert hint_word in err.hint


def test_translate_no_connect() -> None:
    err = libvirt_error(ERR_NO_CONNECT, "no connection driver available", action="x", uri=URI)
    assert err.message.startswith("cannot reach libvirt")


# --------------------------------------------------------------------------- states, console


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        (1, 0, "running"),
        (2, 0, "running"),
        (5, 1, "shut off"),
        (4, 0, "stopping"),
        (3, 11, "starting"),
        (3, 8, "stopping"),
        (3, 5, "broken"),
        (3, 1, "broken"),
        (6, 0, "broken"),
        (7, 0, "broken"),
    ],
)
def test_state_mapping(state: int, reason: int, expected: str) -> None:
    status = _status_from(state, reason, "n")
    assert status.state == expected
    if expected == "broken":
        assert status.reason


def test_read_console_tail(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    assert read_console_tail(log) == ""
    log.write_bytes(
        b"old line\r\n" * 100 + b"\x1b[0;32m  OK  \x1b[0m] Started ssh\r\nlogin: \x07\xff\r\n"
    )
    tail = read_console_tail(log, max_lines=2)
    assert tail.splitlines() == ["OK  ] Started ssh", "login: \ufffd"] or tail.splitlines() == [
        "  OK  ] Started ssh",
        "login: \ufffd",
    ]
    assert "\x1b" not in tail


def test_used_subnets_hold_the_hosts_routes(
    hv: LibvirtHypervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On this host (a ``qemu:///`` URI) an interface's route counts as used: libvirt refuses
    a network on its subnet, whether or not it is a libvirt network. Routes broader than a
    session's /24 (a VPN's 10.0.0.0/8) and the session's own bridge do not."""
    sid = str(uuid.uuid4())
    own = network_xml.pick_subnet(sid, ())
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "vbxleftover1\t0007D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "tun0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
        f"{names.bridge_name(sid)}\t{int(own.network_address).to_bytes(4, 'little').hex()}"
        "\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    monkeypatch.setattr(libvirt_networks, "ROUTES", str(table))
    networks = hv.used_subnets()  # the test driver's own network; not this host's routes
    monkeypatch.setattr(hv, "uri", URI)  # the connection to the test driver stays open
    leftover = ipaddress.IPv4Network("10.213.7.0/24")
    assert hv.used_subnets(exclude_session=sid) == networks | {leftover}
    assert hv.used_subnets() == networks | {leftover, own}
    table.unlink()
    assert hv.used_subnets() == networks  # no table to read: only libvirt's networks
