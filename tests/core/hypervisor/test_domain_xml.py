"""The domain XML builder, and the fake hypervisor that reads it back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import domain_xml, names, network_xml, virtiofs
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.hypervisor.fake import FakeHypervisor

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
SID2 = "019bf290-dddd-7c23-8a1d-0123456789ab"  # same first 8 hex (created in the same minute)
DNSMASQ = "{" + network_xml.DNSMASQ_XMLNS + "}"


def make_domain(**overrides: object) -> domain_xml.DomainSpec:
    values: dict[str, object] = {
        "session_id": SID,
        "name": names.domain_name("my project", SID),
        "cpus": 3,
        "memory_mb": 1536,
        "accel": "tcg",
        "kernel": Path("/img/vmlinuz"),
        "initrd": Path("/img/initrd.img"),
        "disk": Path("/p/.vibebox/disk.qcow2"),
        "console_log": Path("/p/.vibebox/console.log"),
        "network": names.network_name(SID),
        "mac": names.mac_address(SID),
        "filesystems": (
            virtiofs.Share(Path("/p"), "vibebox-project", False),
            virtiofs.Share(Path("/p/.vibebox/seed"), "vibebox-seed", True),
        ),
        "virtiofsd_readonly": Path("/h/bin/virtiofsd-ro"),
        "project_dir": Path("/p"),
    }
    values.update(overrides)
    return domain_xml.DomainSpec(**values)  # type: ignore[arg-type]


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


# --------------------------------------------------------------------------- domain XML


def test_domain_xml_core_elements() -> None:
    root = parse(domain_xml.domain_xml(make_domain()))
    assert root.tag == "domain"
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "vibebox-my-project-019bf290"
    assert root.findtext("uuid") == SID
    memory = root.find("memory")
    assert memory is not None and memory.get("unit") == "MiB" and memory.text == "1536"
    assert root.findtext("vcpu") == "3"
    assert root.findtext("os/type") == "hvm"
    assert root.findtext("os/kernel") == "/img/vmlinuz"
    assert root.findtext("os/initrd") == "/img/initrd.img"
    assert root.findtext("os/cmdline") == "console=ttyS0 root=/dev/vda rw"
    assert root.find("features/acpi") is not None  # ACPI shutdown
    cpu = root.find("cpu")
    assert cpu is not None and cpu.get("mode") == "maximum"


def test_domain_xml_kvm() -> None:
    root = parse(domain_xml.domain_xml(make_domain(accel="kvm")))
    assert root.get("type") == "kvm"
    cpu = root.find("cpu")
    assert cpu is not None and cpu.get("mode") == "host-passthrough"


def test_domain_xml_disk_net_rng_serial() -> None:
    root = parse(domain_xml.domain_xml(make_domain()))
    disk = root.find("devices/disk")
    assert disk is not None and disk.get("device") == "disk"
    driver, source, target = disk.find("driver"), disk.find("source"), disk.find("target")
    assert driver is not None and driver.get("type") == "qcow2"
    assert source is not None and source.get("file") == "/p/.vibebox/disk.qcow2"
    assert target is not None and target.get("dev") == "vda" and target.get("bus") == "virtio"

    iface = root.find("devices/interface")
    assert iface is not None and iface.get("type") == "network"
    mac, src, model = iface.find("mac"), iface.find("source"), iface.find("model")
    assert mac is not None and mac.get("address") == names.mac_address(SID)
    assert src is not None and src.get("network") == names.network_name(SID)
    assert model is not None and model.get("type") == "virtio"
    assert iface.find("filterref") is None

    rng = root.find("devices/rng")
    assert rng is not None and rng.get("model") == "virtio"
    assert rng.findtext("backend") == "/dev/urandom"

    log = root.find("devices/serial/log")
    assert log is not None
    assert log.get("file") == "/p/.vibebox/console.log"
    assert log.get("append") == "off"
    console_target = root.find("devices/console/target")
    assert console_target is not None and console_target.get("type") == "serial"
    assert domain_xml.parse_console_log(domain_xml.domain_xml(make_domain())) == Path(
        "/p/.vibebox/console.log"
    )
    assert domain_xml.parse_domain_interface(domain_xml.domain_xml(make_domain())) == (
        names.mac_address(SID),
        names.network_name(SID),
    )


def test_domain_xml_virtiofs_shares() -> None:
    root = parse(domain_xml.domain_xml(make_domain()))
    backing = root.find("memoryBacking")
    assert backing is not None
    source, access = backing.find("source"), backing.find("access")
    assert source is not None and source.get("type") == "memfd"
    assert access is not None and access.get("mode") == "shared"

    shares = root.findall("devices/filesystem")
    assert [fs.get("type") for fs in shares] == ["mount", "mount"]
    assert all(fs.get("accessmode") == "passthrough" for fs in shares)
    by_tag = {}
    for fs in shares:
        target, src, driver, binary = (
            fs.find("target"),
            fs.find("source"),
            fs.find("driver"),
            fs.find("binary"),
        )
        assert target is not None and src is not None and driver is not None
        assert binary is not None
        assert driver.get("type") == "virtiofs"
        # libvirt 9.0 refuses <readonly/> on virtiofs; the wrapper enforces it instead.
        assert fs.find("readonly") is None
        by_tag[target.get("dir")] = (src.get("dir"), binary.get("path"))
    # With the wrappers in use, read-write shares take the one that hides .vibebox/ too.
    assert by_tag == {
        "vibebox-project": ("/p", "/h/bin/virtiofsd-rw"),
        "vibebox-seed": ("/p/.vibebox/seed", "/h/bin/virtiofsd-ro"),
    }


def test_domain_xml_virtiofsd_choice() -> None:
    def binaries(spec: domain_xml.DomainSpec) -> list[str | None]:
        root = parse(domain_xml.domain_xml(spec))
        return [b.get("path") for b in root.iter("binary")]

    rw_only = (virtiofs.Share(Path("/p"), "vibebox-project", False),)
    bare = make_domain(filesystems=rw_only, virtiofsd_readonly=None)
    assert binaries(bare) == ["/usr/lib/qemu/virtiofsd"]
    explicit = make_domain(filesystems=rw_only, virtiofsd=Path("/w/virtiofsd-rw"))
    assert binaries(explicit) == ["/w/virtiofsd-rw"]


def test_domain_xml_per_share_binary_wins() -> None:
    """A share with its own (share guard) wrapper runs that, whatever the spec's defaults."""
    guarded = (
        virtiofs.Share(
            Path("/p"), "vibebox-project", False, Path("/h/bin/shares/s-vibebox-project")
        ),
        virtiofs.Share(Path("/d,ata"), "vibebox-m1", True, Path("/h/bin/shares/s-vibebox-m1")),
    )
    root = parse(domain_xml.domain_xml(make_domain(filesystems=guarded, virtiofsd_readonly=None)))
    found = {
        fs.find("target").get("dir"): (fs.find("source").get("dir"), fs.find("binary").get("path"))  # type: ignore[union-attr]
        for fs in root.findall("devices/filesystem")
    }
    # a comma is fine here: the guard's launcher undoes libvirt's ",," escaping
    assert found == {
        "vibebox-project": ("/p", "/h/bin/shares/s-vibebox-project"),
        "vibebox-m1": ("/d,ata", "/h/bin/shares/s-vibebox-m1"),
    }
    with pytest.raises(VMError, match="must be absolute"):
        domain_xml.domain_xml(
            make_domain(
                filesystems=(virtiofs.Share(Path("/p"), "vibebox-project", False, Path("w")),)
            )
        )


def test_domain_xml_without_shares_has_no_shared_memory() -> None:
    root = parse(domain_xml.domain_xml(make_domain(filesystems=())))
    assert root.find("memoryBacking") is None
    assert root.find("devices/filesystem") is None


def test_domain_xml_nwfilter_and_metadata() -> None:
    spec = make_domain(nwfilter="vibebox-allow", nwfilter_params={"GATEWAY": "10.213.4.1"})
    assert domain_xml.parse_domain_filter(domain_xml.domain_xml(spec)) == "vibebox-allow"
    assert domain_xml.parse_domain_filter(domain_xml.domain_xml(make_domain())) is None
    root = parse(domain_xml.domain_xml(spec))
    ref = root.find("devices/interface/filterref")
    assert ref is not None and ref.get("filter") == "vibebox-allow"
    param = ref.find("parameter")
    assert param is not None
    assert (param.get("name"), param.get("value")) == ("GATEWAY", "10.213.4.1")
    session = root.find(f"metadata/{{{domain_xml.VIBEBOX_XMLNS}}}session")
    assert session is not None and session.get("directory") == "/p"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"session_id": "nope"}, "not a UUID"),
        ({"cpus": 0}, "at least one CPU"),
        ({"memory_mb": 64}, "at least 128"),
        ({"accel": "auto"}, "resolved"),
        ({"mac": "zz"}, "MAC"),
        ({"kernel": Path("vmlinuz")}, "absolute"),
        ({"virtiofsd_readonly": None}, "read-only virtiofsd wrapper"),
        (
            {
                "filesystems": (
                    virtiofs.Share(Path("/a"), "t", False),
                    virtiofs.Share(Path("/b"), "t", False),
                )
            },
            "twice",
        ),
        ({"filesystems": (virtiofs.Share(Path("/a"), "x" * 37, False),)}, "invalid"),
        ({"filesystems": (virtiofs.Share(Path("/a"), "bad tag", False),)}, "invalid"),
        ({"filesystems": (virtiofs.Share(Path("/a,b"), "t", True),)}, "comma"),
    ],
)
def test_domain_xml_refuses_bad_specs(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(VMError, match=match):
        domain_xml.domain_xml(make_domain(**overrides))


def test_console_append_option() -> None:
    root = parse(domain_xml.domain_xml(make_domain(console_append=True)))
    log = root.find("devices/serial/log")
    assert log is not None and log.get("append") == "on"


# --------------------------------------------------------------------------- fake hypervisor


def define_fake(hv: FakeHypervisor, sid: str = SID, project: str = "p") -> network_xml.NetworkSpec:
    net = network_xml.NetworkSpec.for_session(sid, hv.used_subnets(exclude_session=sid))
    dom = make_domain(
        session_id=sid, name=names.domain_name(project, sid), mac=net.mac, network=net.name
    )
    hv.define(domain_xml.domain_xml(dom), network_xml.network_xml(net))
    return net


def test_fake_conforms_to_the_protocol() -> None:
    assert isinstance(FakeHypervisor(), Hypervisor)


def test_fake_lifecycle() -> None:
    hv = FakeHypervisor()
    assert hv.state(SID) == "missing"
    assert hv.lease_ipv4(SID) is None
    net = define_fake(hv)
    assert hv.exists(SID)
    assert hv.state(SID) == "shut off"
    assert hv.status(SID).name == "vibebox-p-019bf290"
    hv.start(SID)
    assert hv.state(SID) == "running"
    assert hv.lease_ipv4(SID) == str(net.guest_ip)
    hv.shutdown(SID)
    assert hv.state(SID) == "shut off"
    hv.undefine(SID)
    assert hv.state(SID) == "missing"
    assert hv.used_subnets() == set()
    hv.undefine(SID)  # tolerant of missing
    hv.destroy(SID)
    hv.shutdown(SID)


def test_fake_subnets_do_not_collide() -> None:
    hv = FakeHypervisor()
    a, b = define_fake(hv, SID, "a"), define_fake(hv, SID2, "b")
    assert not a.subnet.overlaps(b.subnet)
    assert hv.used_subnets() == {a.subnet, b.subnet}
    assert hv.used_subnets(exclude_session=SID) == {b.subnet}
    assert hv.network_subnet(SID) == a.subnet


def test_fake_statuses_broken_and_errors() -> None:
    hv = FakeHypervisor(shutdown_completes=False, lease_on_start=False)
    define_fake(hv)
    hv.start(SID)
    assert hv.lease_ipv4(SID) is None
    hv.set_lease(SID, "10.213.0.99")
    assert hv.lease_ipv4(SID) == "10.213.0.99"
    hv.shutdown(SID)
    assert hv.state(SID) == "stopping"
    hv.finish_shutdown(SID)
    assert hv.state(SID) == "shut off"
    hv.set_status(SID, "broken", "paused after a disk I/O error")
    assert hv.statuses() == {
        SID: hv.status(SID),
    }
    assert hv.status(SID).reason == "paused after a disk I/O error"
    hv.fail("start", VMError("boom", hint="fix it"), times=2)
    for _ in range(2):
        with pytest.raises(VMError, match="boom"):
            hv.start(SID)
    hv.set_status(SID, "shut off")
    hv.start(SID)
    assert ("start", SID) in hv.calls
    hv.undefine_network(SID)
    hv.destroy(SID)
    assert hv.status(SID).state == "broken"  # domain without its network


def test_fake_refuses_a_name_used_by_another_session() -> None:
    hv = FakeHypervisor()
    define_fake(hv, SID, "same")
    other = "119bf290-0000-7000-8000-000000000000"
    with pytest.raises(VMError, match="already exists"):
        net = network_xml.NetworkSpec.for_session(other, hv.used_subnets())
        dom = make_domain(
            session_id=other, name=names.domain_name("same", SID), mac=net.mac, network=net.name
        )
        hv.define(domain_xml.domain_xml(dom), network_xml.network_xml(net))


def test_fake_start_without_definition_and_console() -> None:
    hv = FakeHypervisor()
    with pytest.raises(VMError, match="no VM defined"):
        hv.start(SID)
    hv.set_console(SID, "a\nb\nc")
    assert hv.console_tail(SID, max_lines=2) == "b\nc"
    assert hv.stop(SID) is True


def test_fake_undefine_removes_the_session_filter() -> None:
    hv = FakeHypervisor()
    net = network_xml.NetworkSpec.for_session(SID, set(), isolated=True)
    hv.define_nwfilter("<filter name='vibebox-f1' chain='root'/>")
    hv.define_nwfilter("<filter name='shared' chain='root'/>")
    for sid, name in ((SID, "vibebox-f1"), (SID2, "shared")):
        spec = make_domain(
            session_id=sid,
            name=names.domain_name(sid, sid),
            nwfilter=name,
            mac=net.mac,
            network=net.name,
        )
        hv.define_domain(domain_xml.domain_xml(spec))
    hv.undefine(SID)
    hv.undefine(SID2)
    assert set(hv.nwfilters) == {"shared"}  # only vibebox-* filters are vibebox's to remove
