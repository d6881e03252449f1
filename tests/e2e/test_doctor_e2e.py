"""``vibebox doctor`` on the lab, on a deliberately broken setup, and libvirt's real errors.

On the lab every check holds; the KVM line is a warning (this host is nested: ``accel=auto``
uses TCG), and the leftovers line is judged only for what this test owns, because other
engineers' sessions share this libvirt. The broken setup breaks one thing per check and each
must be named with its fix: a URI nobody answers, a remote URI, a ``VIBEBOX_HOME`` QEMU cannot
traverse, a missing virtiofsd (the test seam ``VIBEBOX_DOCTOR_VIRTIOFSD``), a leftover domain,
network and filter, and a full subnet pool (the seam ``VIBEBOX_DOCTOR_POOL`` names a /24 that an
inactive network of this test occupies).

Then the error table against the live libvirt: a share whose source is a symlink (virtiofsd
refuses it), a missing kernel, a disk QEMU may not reach; none starts, each says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.livesession import URI, cli, cli_env

from vibebox_core.errors import StorageAccessError, VirtiofsdError, VMError
from vibebox_core.hypervisor import domain_xml, virtiofs
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.hypervisor.names import domain_name, mac_address, network_name

pytestmark = pytest.mark.e2e


def doctor(cwd: Path, *args: str, **env: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    result = subprocess.run(
        cli("doctor", "--json", *args),
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    checks = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in checks}, result.stdout


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_doctor_on_the_lab(e2e_home: Path, e2e_project: Path) -> None:
    status, checks, raw = doctor(e2e_project, "-C", str(e2e_project))
    expected = [
        "uri",
        "libvirt",
        "capabilities",
        "kvm",
        "virtiofsd",
        "nwfilter",
        "bridge-netfilter",
        "subnet",
        "qemu-access",
        "disk",
        "group",
        "leftovers",
    ]
    assert list(checks) == expected
    assert checks["libvirt"]["summary"].startswith("libvirt ")
    assert checks["kvm"]["status"] == "warn"  # nested here: TCG with accel=auto
    assert "TCG" in checks["kvm"]["summary"]
    for name in expected:
        if name in ("kvm", "leftovers"):
            continue
        assert checks[name]["status"] == "ok", raw
    if checks["leftovers"]["status"] == "ok":
        assert status == 0
    else:  # other engineers' leftovers on the shared lab: honest, and not ours
        assert status == 1
    # Text form: one line per check, a mark first.
    text = subprocess.run(
        cli("doctor", "-C", str(e2e_project)),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = text.stdout.splitlines()
    assert len(lines) == len(expected)
    assert all(line[:2] in ("✓ ", "! ", "✗ ") for line in lines), text.stdout


@pytest.fixture
def broken(e2e_project: Path) -> Iterator[dict[str, str]]:
    """A leftover domain, network and filter, and an inactive network filling a /24."""
    names: dict[str, str] = {}
    sid = str(uuid.uuid4())
    gone = Path(tempfile.mkdtemp(prefix="vbx-gone-", dir="/tmp"))
    image = Path(os.environ.get("VIBEBOX_TEST_IMAGES", "/root/.vibebox/images")) / "debian-12"
    spec = domain_xml.DomainSpec(
        session_id=sid,
        name=domain_name("doctor-left", sid),
        cpus=1,
        memory_mb=256,
        accel="tcg",
        kernel=image / "vmlinuz",
        initrd=image / "initrd.img",
        disk=gone / ".vibebox" / "disk.qcow2",  # its project is gone
        console_log=gone / ".vibebox" / "console.log",
        network=network_name(sid),
        mac=mac_address(sid),
    )
    shutil.rmtree(gone)
    left_net = str(uuid.uuid4())
    full = f"vbxh-doctor-full-{uuid.uuid4().hex[:8]}"
    xml_dir = Path(tempfile.mkdtemp(prefix="vbx-doc-xml-", dir="/tmp"))
    files = {
        "domain": domain_xml.domain_xml(spec),
        "network": f"<network><name>{network_name(left_net)}</name>"
        "<ip address='10.251.66.1' netmask='255.255.255.0'/></network>",
        "full": f"<network><name>{full}</name><ip address='10.252.77.1' netmask='255.255.255.0'/>"
        "</network>",
        "filter": f"<filter name='vibebox-{left_net}' chain='root'>"
        "<rule action='accept' direction='inout'><all/></rule></filter>",
    }
    for key, text in files.items():
        (xml_dir / f"{key}.xml").write_text(text)
    names.update(domain=spec.name, network=network_name(left_net), filter=f"vibebox-{left_net}")
    names["full"] = full
    try:
        virsh("define", str(xml_dir / "domain.xml"))
        virsh("net-define", str(xml_dir / "network.xml"))
        virsh("net-define", str(xml_dir / "full.xml"))
        virsh("nwfilter-define", str(xml_dir / "filter.xml"))
        yield names
    finally:
        virsh("undefine", spec.name, check=False)
        virsh("net-undefine", names["network"], check=False)
        virsh("net-undefine", full, check=False)
        virsh("nwfilter-undefine", names["filter"], check=False)
        shutil.rmtree(xml_dir, ignore_errors=True)


def test_doctor_names_each_broken_thing(
    e2e_home: Path, e2e_project: Path, broken: dict[str, str]
) -> None:
    private = Path(tempfile.mkdtemp(prefix="vbx-private-", dir="/tmp"))  # 0700
    home = private / "home"
    home.mkdir()
    try:
        status, checks, raw = doctor(
            e2e_project,
            "-C",
            str(e2e_project),
            VIBEBOX_HOME=str(home),
            VIBEBOX_DOCTOR_VIRTIOFSD="/nonexistent/virtiofsd",
            VIBEBOX_DOCTOR_POOL="10.252.77.0/24",
        )
        assert status == 1
        assert checks["virtiofsd"]["status"] == "fail"
        assert "/nonexistent/virtiofsd is missing" in checks["virtiofsd"]["summary"]
        assert "qemu-system-x86" in checks["virtiofsd"]["fix"]
        assert checks["qemu-access"]["status"] == "fail"
        assert checks["qemu-access"]["fix"] == f"setfacl -m u:libvirt-qemu:x {private}"
        assert checks["subnet"]["status"] == "fail"
        assert "10.252.77.0/24" in checks["subnet"]["summary"]
        left = checks["leftovers"]
        assert left["status"] == "fail"
        # The summary line shortens a long list (other sessions' leftovers on a shared lab
        # can come first); the JSON names every one.
        for key in ("domain", "network", "filter"):
            assert broken[key] in left["items"], raw
        assert broken["full"] not in left["items"]  # not a vibebox-* name
        for name in ("uri", "libvirt", "capabilities", "nwfilter", "disk", "group"):
            assert checks[name]["status"] == "ok", raw
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_doctor_on_a_uri_nobody_answers_and_a_remote_one(e2e_home: Path, e2e_project: Path) -> None:
    sock = e2e_project / "nobody.sock"
    status, checks, _ = doctor(e2e_project, "--uri", f"qemu:///system?socket={sock}")
    assert status == 1
    assert checks["libvirt"]["status"] == "fail"
    assert "libvirtd is not running" in checks["libvirt"]["summary"]
    assert "libvirtd -d" in checks["libvirt"]["fix"]
    assert checks["capabilities"]["status"] == "skip"
    status, checks, _raw = doctor(e2e_project, "--uri", "qemu+ssh://root@192.0.2.1/system")
    assert status == 1
    assert checks["uri"]["status"] == "fail"
    assert "remote libvirt" in checks["uri"]["summary"]
    assert "local paths" in checks["uri"]["summary"]
    assert checks["libvirt"]["status"] == "skip"  # nothing was contacted


# --------------------------------------------------------------------------- the error table


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor(URI)
    yield hypervisor
    hypervisor.close()


def _start_failure(hv: LibvirtHypervisor, tmp: Path, **changes: Any) -> VMError:
    """Define a network-less domain with ``changes``, start it, return the error, clean up."""
    sid = str(uuid.uuid4())
    image = Path(os.environ.get("VIBEBOX_TEST_IMAGES", "/root/.vibebox/images")) / "debian-12"
    fields: dict[str, Any] = {
        "session_id": sid,
        "name": domain_name("errtable", sid),
        "cpus": 1,
        "memory_mb": 256,
        "accel": "tcg",
        "kernel": image / "vmlinuz",
        "initrd": image / "initrd.img",
        "disk": tmp / "disk.qcow2",
        "console_log": tmp / "console.log",
        "network": "unused",
        "mac": mac_address(sid),
    }
    fields.update(changes)
    disk = Path(fields["disk"])
    if disk.parent.is_dir() and not disk.exists():
        base = image / "base.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(disk)],
            check=True,
        )
    root = ET.fromstring(domain_xml.domain_xml(domain_xml.DomainSpec(**fields)))
    devices = root.find("devices")
    assert devices is not None
    for iface in devices.findall("interface"):
        devices.remove(iface)
    hv.define_domain(ET.tostring(root, encoding="unicode"))
    try:
        with pytest.raises(VMError) as info:
            hv.start(sid)
        return info.value
    finally:
        hv.undefine(sid)


def test_libvirt_errors_name_the_real_cause(hv: LibvirtHypervisor, e2e_project: Path) -> None:
    tmp = e2e_project
    real = tmp / "real"
    real.mkdir()
    (tmp / "link").symlink_to(real)
    share = virtiofs.Share(tmp / "link", "proj", False)
    err = _start_failure(hv, tmp, filesystems=(share,))
    assert isinstance(err, VirtiofsdError)
    assert "source is not a directory" in err.message  # virtiofsd's own words, from its log
    assert "libvirtd running" not in f"{err.message} {err.hint}"
    assert "symlink" in err.hint

    err = _start_failure(hv, tmp, kernel=tmp / "missing" / "vmlinuz")
    assert isinstance(err, StorageAccessError)
    assert "vmlinuz is missing" in err.message

    private = tmp / "private"
    private.mkdir()
    disk = private / "disk.qcow2"
    base = Path(os.environ.get("VIBEBOX_TEST_IMAGES", "/root/.vibebox/images")) / "debian-12"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(base / "base.qcow2"),
            str(disk),
        ],
        check=True,
    )
    private.chmod(0o700)
    err = _start_failure(hv, tmp, disk=disk)
    assert isinstance(err, StorageAccessError)
    assert f"setfacl -m u:libvirt-qemu:x {private}" in err.hint
