"""The libvirt error table, fed with the errors libvirt really gave in the lab.

Each case below is one ``virError`` (code, domain, errno in ``int1``, message) captured on the
lab's libvirt 9.0 by provoking the failure for real: a share whose source is a symlink (bookworm's
virtiofsd: "source is not a directory"), a share that does not exist, a missing kernel, a disk
under a directory libvirt-qemu may not enter, a file that is not qcow2, a second network on a
subnet that is in use, a filter the domain references but nobody defined, a filter redefined
with another UUID, a domain name taken by another UUID, an unknown domain / network / filter,
libvirtd down (a socket nobody listens on), a refused TCP connection and an unknown driver.
Only the UUIDs and the per-run paths were shortened.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from vibebox_core.errors import (
    HostNetworkError,
    LibvirtUnreachableError,
    NwfilterError,
    QemuError,
    StorageAccessError,
    SubnetInUseError,
    VirtiofsdError,
    VMError,
)
from vibebox_core.hypervisor.errors import ERROR_TABLE, libvirt_error, translate_libvirt_error
from vibebox_core.hypervisor.failure import failed_component
from vibebox_core.hypervisor.virtiofs import virtiofsd_log_reason

URI = "qemu:///system"

# (label, code, domain, errno, message) as libvirt gave them.
REAL = {
    "virtiofs-symlink": (
        1,
        10,
        None,
        "internal error: qemu unexpectedly closed the monitor: 2026-12-01T08:24:46.464713Z "
        "qemu-system-x86_64: -chardev socket,id=chr-vu-fs0,path=/var/lib/libvirt/qemu/"
        "domain-5-vbxh-probe-9ed51f07/fs0-fs.sock: Failed to connect to '/var/lib/libvirt/qemu/"
        "domain-5-vbxh-probe-9ed51f07/fs0-fs.sock': Connection refused",
    ),
    "virtiofs-missing": (
        1,
        10,
        None,
        "internal error: the virtiofs export directory '/tmp/h-probe/work/gone' does not exist",
    ),
    "missing-kernel": (
        38,
        24,
        2,
        "unable to stat: /tmp/h-probe/work/nope/vmlinuz: No such file or directory",
    ),
    "perm-disk": (
        38,
        18,
        13,
        "Cannot access storage file '/tmp/h-probe/work/private/disk.qcow2' "
        "(as uid:64055, gid:64055): Permission denied",
    ),
    "bad-disk": (
        1,
        10,
        None,
        "internal error: process exited while connecting to monitor: 2026-12-01T08:24:44.376468Z "
        'qemu-system-x86_64: -blockdev {"node-name":"libvirt-1-format","read-only":false,'
        '"discard":"unmap","driver":"qcow2","file":"libvirt-1-storage","backing":null}: '
        "Image is not in qcow2 format",
    ),
    "busy-network": (
        1,
        0,
        None,
        "internal error: Network is already in use by interface vbxhprobe0",
    ),
    "missing-nwfilter": (
        1,
        33,
        None,
        "internal error: referenced filter 'vibebox-nope-filter' is missing",
    ),
    "filter-uuid": (
        9,
        33,
        None,
        "operation failed: filter 'vbxh-probe-filter' already exists with uuid "
        "d498dc8e-bb73-4076-a7f5-954c7be09f0d",
    ),
    "name-clash": (
        9,
        20,
        None,
        "operation failed: domain 'vbxh-probe-561cdc54' already exists with uuid "
        "561cdc54-ccbd-44fc-99f6-2f96fe6f6146",
    ),
    "unknown-domain": (
        42,
        10,
        None,
        "Domain not found: no domain with matching uuid '5bb7f9ed-1205-45e7-abb5-43a51f170003'",
    ),
    "unknown-network": (
        43,
        19,
        None,
        "Network not found: no network with matching name "
        "'vibebox-de042bae-9206-42bd-bb7f-1aa2407030e9'",
    ),
    "unknown-nwfilter": (
        62,
        33,
        None,
        "Network filter not found: no nwfilter with matching name "
        "'vibebox-5c0f14f2-3f6e-4153-becc-de44677db36a'",
    ),
    "daemon-down": (
        38,
        7,
        2,
        "Failed to connect socket to '/tmp/h-probe/nobody.sock': No such file or directory",
    ),
    "connection-refused": (
        38,
        7,
        111,
        "unable to connect to server at '127.0.0.1:1': Connection refused",
    ),
    "no-driver": (5, 0, None, "no connection driver available for bogus:///system"),
    "bad-xml": (27, 20, None, "XML error: an os <type> must be specified"),
}


def translate(label: str, action: str = "start VM vibebox-p-0192abcd") -> VMError:
    code, domain, number, message = REAL[label]
    return libvirt_error(code, message, action=action, uri=URI, domain=domain, errno_value=number)


@pytest.mark.parametrize(
    ("label", "cls", "component", "in_message", "in_hint"),
    [
        ("virtiofs-symlink", VirtiofsdError, "virtiofsd", "virtiofsd refused", "symlink"),
        ("virtiofs-missing", VirtiofsdError, "virtiofsd", "does not exist", "mounts"),
        ("missing-kernel", StorageAccessError, "storage", "vmlinuz is missing", "image build"),
        ("perm-disk", StorageAccessError, "storage", "disk.qcow2", "setfacl -m u:libvirt-qemu:x"),
        ("bad-disk", QemuError, "qemu", "QEMU refused it", "/var/log/libvirt/qemu/"),
        ("busy-network", SubnetInUseError, "subnet", "already in use", "free subnet"),
        ("missing-nwfilter", NwfilterError, "nwfilter", "vibebox-nope-filter", "vibebox stop"),
        ("filter-uuid", NwfilterError, "nwfilter", "already exists", "nwfilter-undefine"),
        ("name-clash", VMError, "definition", "already exists", "undefine vbxh-probe-561cdc54"),
        ("unknown-domain", VMError, "domain", "the VM is gone", "defines it again"),
        ("unknown-network", HostNetworkError, "network", "Network not found", "vibebox stop"),
        ("unknown-nwfilter", NwfilterError, "nwfilter", "not found", "defines it again"),
        ("daemon-down", LibvirtUnreachableError, "connection", "not running", "libvirtd -d"),
        ("connection-refused", LibvirtUnreachableError, "connection", "not running", "libvirtd"),
        ("no-driver", LibvirtUnreachableError, "connection", "cannot reach", "libvirt_uri"),
        ("bad-xml", VMError, "definition", "XML error", "report it"),
    ],
)
def test_real_libvirt_errors(
    label: str, cls: type[VMError], component: str, in_message: str, in_hint: str
) -> None:
    code, domain, _, message = REAL[label]
    assert failed_component(code, domain, message) == component
    err = translate(label)
    assert type(err) is cls
    assert in_message in err.message
    assert in_hint in err.hint
    assert err.hint  # every one names a next step


def test_a_refused_virtiofsd_is_not_a_libvirt_connection_problem() -> None:
    """The reported bug: the share's refusal said "cannot reach libvirt … is libvirtd running?"."""
    err = translate("virtiofs-symlink")
    text = f"{err.message} {err.hint}".lower()
    assert "cannot reach libvirt" not in text
    assert "libvirtd running" not in text
    assert "virtiofsd" in text


def test_connection_permission_names_the_group() -> None:
    err = libvirt_error(
        38,
        "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied",
        action="connect",
        uri=URI,
        domain=7,
        errno_value=errno.EACCES,
    )
    assert isinstance(err, LibvirtUnreachableError)
    assert "libvirt group" in err.hint


def test_every_component_has_a_default_rule() -> None:
    components = {component for component, _ in ERROR_TABLE}
    for component in components:
        assert (component, None) in ERROR_TABLE
    for args in [(0, 0, ""), (999, 999, "?"), (38, 0, "weird"), (1, 1234, "x")]:
        assert failed_component(*args) in components


@pytest.mark.parametrize("code", [0, 1, 3, 5, 8, 9, 27, 38, 39, 42, 43, 45, 55, 62, 63, 68, 88])
@pytest.mark.parametrize("domain", [0, 7, 9, 10, 13, 18, 19, 20, 24, 33, 59, 60, 999])
@pytest.mark.parametrize("message", ["", "x", "Permission denied '/a/b'", "virtiofsd"])
def test_no_input_escapes_the_table(code: int, domain: int, message: str) -> None:
    err = libvirt_error(code, message, action="do it", uri=URI, domain=domain)
    assert isinstance(err, VMError)
    assert err.message and err.hint


class _FakeLibvirtError(Exception):
    def __init__(self, code: int, domain: int, number: int, message: str) -> None:
        super().__init__(message)
        self.err = (code, domain, message, 2, "%s", message, None, number, -1)

    def get_error_code(self) -> int:
        return self.err[0]

    def get_error_domain(self) -> int:
        return self.err[1]

    def get_error_message(self) -> str:
        return self.err[2]


def test_translate_libvirt_error_reads_the_errno() -> None:
    exc = _FakeLibvirtError(38, 7, 111, "unable to connect to server at 'h:1': whatever")
    err = translate_libvirt_error(exc, action="connect", uri=URI)
    assert isinstance(err, LibvirtUnreachableError)
    assert "not running" in err.message


def test_virtiofsd_log_reason(tmp_path: Path) -> None:
    (tmp_path / "vibebox-p-1-fs0-virtiofsd.log").write_text("source is not a directory\n")
    (tmp_path / "other-fs0-virtiofsd.log").write_text("unrelated\n")
    assert virtiofsd_log_reason("vibebox-p-1", tmp_path) == "source is not a directory"
    assert virtiofsd_log_reason("vibebox-p-2", tmp_path) == ""
    assert virtiofsd_log_reason("vibebox-[p", tmp_path / "missing") == ""
