"""Domain and network XML builders, names, subnets, accel and the fake hypervisor."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import access
from vibebox_core.hypervisor import domain_xml as vm
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.hypervisor.libvirt import Hypervisor

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
SID2 = "019bf290-dddd-7c23-8a1d-0123456789ab"  # same first 8 hex (created in the same minute)
DNSMASQ = "{" + vm.DNSMASQ_XMLNS + "}"


def make_domain(**overrides: object) -> vm.DomainSpec:
    values: dict[str, object] = {
        "session_id": SID,
        "name": vm.domain_name("my project", SID),
        "cpus": 3,
        "memory_mb": 1536,
        "accel": "tcg",
        "kernel": Path("/img/vmlinuz"),
        "initrd": Path("/img/initrd.img"),
        "disk": Path("/p/.vibebox/disk.qcow2"),
        "console_log": Path("/p/.vibebox/console.log"),
        "network": vm.network_name(SID),
        "mac": vm.mac_address(SID),
        "filesystems": (
            vm.Share(Path("/p"), "vibebox-project", False),
            vm.Share(Path("/p/.vibebox/seed"), "vibebox-seed", True),
        ),
        "virtiofsd_readonly": Path("/h/bin/virtiofsd-ro"),
        "project_dir": Path("/p"),
    }
    values.update(overrides)
    return vm.DomainSpec(**values)  # type: ignore[arg-type]


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("myproj", "vibebox-myproj-019bf290"),
        ("My Project!", "vibebox-my-project-019bf290"),
        ("über/../x", "vibebox-ber-..-x-019bf290"),
        ("...", "vibebox-project-019bf290"),
        ("a" * 80, f"vibebox-{'a' * vm.MAX_PROJECT_PART}-019bf290"),
        ("web_app.v2", "vibebox-web_app.v2-019bf290"),
    ],
)
def test_domain_name_is_sanitised(project: str, expected: str) -> None:
    assert vm.domain_name(project, SID) == expected


def test_domain_name_has_only_safe_characters() -> None:
    name = vm.domain_name("x y;z$(rm -rf)'\"\\ é", SID)
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert "/" not in name


def test_domain_name_accepts_uppercase_and_unhyphenated_ids() -> None:
    assert vm.domain_name("p", SID.upper()) == "vibebox-p-019bf290"
    assert vm.domain_name("p", SID.replace("-", "")) == "vibebox-p-019bf290"


def test_bad_session_id_is_a_vm_error() -> None:
    with pytest.raises(VMError, match="not a UUID"):
        vm.domain_name("p", "not-a-uuid")


def test_per_session_names_differ_for_ids_sharing_a_prefix() -> None:
    assert SID[:8] == SID2[:8]
    assert vm.network_name(SID) != vm.network_name(SID2)
    assert vm.bridge_name(SID) != vm.bridge_name(SID2)
    assert vm.mac_address(SID) != vm.mac_address(SID2)


def test_bridge_name_fits_ifnamsiz() -> None:
    for _ in range(50):
        name = vm.bridge_name(str(uuid.uuid4()))
        assert len(name) <= 15
        assert name.startswith("vbx")


def test_mac_address_is_stable_and_qemu_local() -> None:
    mac = vm.mac_address(SID)
    assert mac == vm.mac_address(SID.upper())
    assert mac.startswith("52:54:00:")
    assert len(mac.split(":")) == 6


def test_network_name_round_trips_to_session_id() -> None:
    assert vm.session_id_from_network_name(vm.network_name(SID)) == SID
    assert vm.session_id_from_network_name("default") is None
    assert vm.session_id_from_network_name("vibebox-nope") is None


# --------------------------------------------------------------------------- subnets


def test_pick_subnet_is_derived_from_the_session() -> None:
    first = vm.pick_subnet(SID, set())
    assert first == vm.pick_subnet(SID, set())
    assert first.prefixlen == 24
    assert first.subnet_of(vm.SUBNET_POOL)


def test_pick_subnet_skips_used_and_overlapping_networks() -> None:
    first = vm.pick_subnet(SID, set())
    second = vm.pick_subnet(SID, {first})
    assert second != first
    assert second.subnet_of(vm.SUBNET_POOL)
    # A bigger network that covers the first choice counts as used too.
    covering = ipaddress.IPv4Network(f"{first.network_address}/23", strict=False)
    third = vm.pick_subnet(SID, {covering})
    assert not third.overlaps(covering)


def test_pick_subnet_wraps_around_and_fails_when_full() -> None:
    pool = ipaddress.IPv4Network("10.9.0.0/22")  # four /24s
    every = list(pool.subnets(new_prefix=24))
    for free in every:
        used = set(every) - {free}
        assert vm.pick_subnet(SID, used, pool=pool) == free
    with pytest.raises(VMError, match="no free /24"):
        vm.pick_subnet(SID, set(every), pool=pool)


def test_network_spec_keeps_its_current_subnet() -> None:
    current = ipaddress.IPv4Network("10.213.7.0/24")
    spec = vm.NetworkSpec.for_session(SID, {ipaddress.IPv4Network("10.1.0.0/16")}, current=current)
    assert spec.subnet == current
    moved = vm.NetworkSpec.for_session(SID, {current}, current=current)
    assert moved.subnet != current


# --------------------------------------------------------------------------- network XML


def test_nat_network_xml() -> None:
    spec = vm.NetworkSpec.for_session(SID, set())
    root = parse(vm.network_xml(spec))
    assert root.tag == "network"
    assert root.findtext("name") == vm.network_name(SID)
    assert root.findtext("uuid") == vm.network_uuid(SID)  # stable, so redefining works
    assert vm.network_uuid(SID) not in (SID, vm.network_uuid(SID2))
    forward = root.find("forward")
    assert forward is not None and forward.get("mode") == "nat"
    bridge = root.find("bridge")
    assert bridge is not None
    assert bridge.get("name") == spec.bridge and len(spec.bridge) <= 15
    ip = root.find("ip")
    assert ip is not None
    assert ip.get("address") == str(spec.subnet.network_address + 1)
    assert ip.get("netmask") == "255.255.255.0"
    rng = ip.find("dhcp/range")
    assert rng is not None
    assert rng.get("start") == str(spec.subnet.network_address + 2)
    assert rng.get("end") == str(spec.subnet.broadcast_address - 1)
    host = ip.find("dhcp/host")
    assert host is not None
    assert host.get("mac") == vm.mac_address(SID)
    assert host.get("ip") == str(spec.guest_ip)
    assert host.get("name") == "vibebox"
    assert root.find("dns") is None  # libvirt's DNS on by default
    assert root.find(f"{DNSMASQ}options") is None
    assert vm.parse_network_subnets(vm.network_xml(spec)) == [spec.subnet]


def test_isolated_network_has_no_forward() -> None:
    spec = vm.NetworkSpec.for_session(SID, set(), isolated=True)
    root = parse(vm.network_xml(spec))
    assert root.find("forward") is None
    assert root.find("ip/dhcp/host") is not None


def test_dns_forwarder_uses_dnsmasq_options() -> None:
    spec = vm.NetworkSpec.for_session(SID, set(), dns_forwarder="127.0.0.1#5353")
    root = parse(vm.network_xml(spec))
    options = root.find(f"{DNSMASQ}options")
    assert options is not None
    values = [o.get("value") for o in options.findall(f"{DNSMASQ}option")]
    assert values == ["no-resolv", "no-hosts", "server=127.0.0.1#5353"]


@pytest.mark.parametrize("bad", ["localhost#53", "127.0.0.1#0", "127.0.0.1#x", "1.2.3.4#70000"])
def test_bad_dns_forwarder_is_refused(bad: str) -> None:
    spec = vm.NetworkSpec.for_session(SID, set(), dns_forwarder=bad)
    with pytest.raises(VMError, match="DNS forwarder"):
        vm.network_xml(spec)


def test_dns_can_be_disabled_and_extra_options_pass_through() -> None:
    spec = vm.NetworkSpec.for_session(SID, set(), dns_enabled=False, dnsmasq_options=("log-dhcp",))
    root = parse(vm.network_xml(spec))
    dns = root.find("dns")
    assert dns is not None and dns.get("enable") == "no"
    options = root.find(f"{DNSMASQ}options")
    assert options is not None
    assert [o.get("value") for o in options] == ["log-dhcp"]


def test_network_xml_refuses_long_bridge_and_bad_mac() -> None:
    spec = vm.NetworkSpec.for_session(SID, set())
    with pytest.raises(VMError, match="longer than 15"):
        vm.network_xml(vm.NetworkSpec(**{**spec.__dict__, "bridge": "vbx0123456789abc"}))
    with pytest.raises(VMError, match="MAC"):
        vm.network_xml(vm.NetworkSpec(**{**spec.__dict__, "mac": "52:54:00:zz:00:00"}))


# --------------------------------------------------------------------------- domain XML


def test_domain_xml_core_elements() -> None:
    root = parse(vm.domain_xml(make_domain()))
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
    root = parse(vm.domain_xml(make_domain(accel="kvm")))
    assert root.get("type") == "kvm"
    cpu = root.find("cpu")
    assert cpu is not None and cpu.get("mode") == "host-passthrough"


def test_domain_xml_disk_net_rng_serial() -> None:
    root = parse(vm.domain_xml(make_domain()))
    disk = root.find("devices/disk")
    assert disk is not None and disk.get("device") == "disk"
    driver, source, target = disk.find("driver"), disk.find("source"), disk.find("target")
    assert driver is not None and driver.get("type") == "qcow2"
    assert source is not None and source.get("file") == "/p/.vibebox/disk.qcow2"
    assert target is not None and target.get("dev") == "vda" and target.get("bus") == "virtio"

    iface = root.find("devices/interface")
    assert iface is not None and iface.get("type") == "network"
    mac, src, model = iface.find("mac"), iface.find("source"), iface.find("model")
    assert mac is not None and mac.get("address") == vm.mac_address(SID)
    assert src is not None and src.get("network") == vm.network_name(SID)
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
    assert vm.parse_console_log(vm.domain_xml(make_domain())) == Path("/p/.vibebox/console.log")
    assert vm.parse_domain_interface(vm.domain_xml(make_domain())) == (
        vm.mac_address(SID),
        vm.network_name(SID),
    )


def test_domain_xml_virtiofs_shares() -> None:
    root = parse(vm.domain_xml(make_domain()))
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
    def binaries(spec: vm.DomainSpec) -> list[str | None]:
        root = parse(vm.domain_xml(spec))
        return [b.get("path") for b in root.iter("binary")]

    rw_only = (vm.Share(Path("/p"), "vibebox-project", False),)
    bare = make_domain(filesystems=rw_only, virtiofsd_readonly=None)
    assert binaries(bare) == ["/usr/lib/qemu/virtiofsd"]
    explicit = make_domain(filesystems=rw_only, virtiofsd=Path("/w/virtiofsd-rw"))
    assert binaries(explicit) == ["/w/virtiofsd-rw"]


def test_domain_xml_per_share_binary_wins() -> None:
    """A share with its own (share guard) wrapper runs that, whatever the spec's defaults."""
    guarded = (
        vm.Share(Path("/p"), "vibebox-project", False, Path("/h/bin/shares/s-vibebox-project")),
        vm.Share(Path("/d,ata"), "vibebox-m1", True, Path("/h/bin/shares/s-vibebox-m1")),
    )
    root = parse(vm.domain_xml(make_domain(filesystems=guarded, virtiofsd_readonly=None)))
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
        vm.domain_xml(
            make_domain(filesystems=(vm.Share(Path("/p"), "vibebox-project", False, Path("w")),))
        )


def test_install_readonly_virtiofsd_compat(tmp_path: Path) -> None:
    path = vm.install_readonly_virtiofsd(tmp_path / "virtiofsd-ro")
    assert path == tmp_path / "virtiofsd-ro"
    assert (tmp_path / "virtiofsd-rw").exists()


def test_domain_xml_without_shares_has_no_shared_memory() -> None:
    root = parse(vm.domain_xml(make_domain(filesystems=())))
    assert root.find("memoryBacking") is None
    assert root.find("devices/filesystem") is None


def test_domain_xml_nwfilter_and_metadata() -> None:
    spec = make_domain(nwfilter="vibebox-allow", nwfilter_params={"GATEWAY": "10.213.4.1"})
    assert vm.parse_domain_filter(vm.domain_xml(spec)) == "vibebox-allow"
    assert vm.parse_domain_filter(vm.domain_xml(make_domain())) is None
    root = parse(vm.domain_xml(spec))
    ref = root.find("devices/interface/filterref")
    assert ref is not None and ref.get("filter") == "vibebox-allow"
    param = ref.find("parameter")
    assert param is not None
    assert (param.get("name"), param.get("value")) == ("GATEWAY", "10.213.4.1")
    session = root.find(f"metadata/{{{vm.VIBEBOX_XMLNS}}}session")
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
            {"filesystems": (vm.Share(Path("/a"), "t", False), vm.Share(Path("/b"), "t", False))},
            "twice",
        ),
        ({"filesystems": (vm.Share(Path("/a"), "x" * 37, False),)}, "invalid"),
        ({"filesystems": (vm.Share(Path("/a"), "bad tag", False),)}, "invalid"),
        ({"filesystems": (vm.Share(Path("/a,b"), "t", True),)}, "comma"),
    ],
)
def test_domain_xml_refuses_bad_specs(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(VMError, match=match):
        vm.domain_xml(make_domain(**overrides))


def test_console_append_option() -> None:
    root = parse(vm.domain_xml(make_domain(console_append=True)))
    log = root.find("devices/serial/log")
    assert log is not None and log.get("append") == "on"


# --------------------------------------------------------------------------- accel


def test_resolve_accel() -> None:
    assert vm.resolve_accel("tcg", kvm_available=True) == "tcg"
    assert vm.resolve_accel("auto", kvm_available=True) == "kvm"
    assert vm.resolve_accel("auto", kvm_available=False) == "tcg"
    # A nested host: /dev/kvm may exist, but guests can hang (DESIGN §6).
    assert vm.resolve_accel("auto", kvm_available=True, nested=True) == "tcg"
    assert vm.resolve_accel("kvm", kvm_available=True, nested=True) == "kvm"
    assert vm.resolve_accel(" KVM ", kvm_available=True) == "kvm"
    with pytest.raises(VMError) as info:
        vm.resolve_accel("kvm", kvm_available=False)
    assert "tcg" in info.value.hint
    with pytest.raises(VMError, match="unknown accel"):
        vm.resolve_accel("hvf", kvm_available=True)


def test_boot_stalled_hint_names_accel() -> None:
    assert "accel" in vm.boot_stalled_hint("kvm") and "tcg" in vm.boot_stalled_hint("kvm")
    assert "accel=tcg" in vm.boot_stalled_hint("tcg")


def test_kvm_device_usable(tmp_path: Path) -> None:
    assert not vm.kvm_device_usable(tmp_path / "missing")
    device = tmp_path / "kvm"
    device.write_text("")
    assert vm.kvm_device_usable(device)


# --------------------------------------------------------------------------- read-only helper


def test_install_virtiofsd_wrappers(tmp_path: Path) -> None:
    wrappers = vm.install_virtiofsd_wrappers(tmp_path / "bin", Path("/opt/virtiofsd"))
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
    vm.install_virtiofsd_wrappers(tmp_path / "bin", Path("/opt/virtiofsd"))
    assert wrappers.readonly.stat().st_mtime_ns == mtime  # unchanged content is not rewritten


def test_install_virtiofsd_wrappers_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIBEBOX_HOME", str(tmp_path))
    assert vm.install_virtiofsd_wrappers() == (
        tmp_path / "bin" / "virtiofsd-rw",
        tmp_path / "bin" / "virtiofsd-ro",
    )


# --------------------------------------------------------------------------- QEMU file access


def test_qemu_blocked_dirs_and_setfacl(tmp_path: Path) -> None:
    import pwd

    try:
        pwd.getpwnam(access.QEMU_USER)
    except KeyError:
        assert access.qemu_blocked_dirs([tmp_path / "x"]) == []
        return
    if os.geteuid() != 0:
        pytest.skip("needs root to build directories owned by someone else")
    tmp_path.chmod(0o755)
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    disk = closed / "inner" / "disk.qcow2"

    def blocked_here() -> list[Path]:  # pytest's own base directories are 0700: ignore them
        return [d for d in access.qemu_blocked_dirs([disk]) if d.is_relative_to(tmp_path)]

    assert blocked_here() == [closed]
    subprocess.run(["setfacl", "-m", f"u:{access.QEMU_USER}:x", str(closed)], check=True)
    assert blocked_here() == []
    subprocess.run(["setfacl", "-m", "m::-", str(closed)], check=True)  # the mask wins
    assert blocked_here() == [closed]
    assert access.setfacl_command([Path("/root"), Path("/a b")]) == (
        "setfacl -m u:libvirt-qemu:x /root && setfacl -m u:libvirt-qemu:x '/a b'"
    )


# --------------------------------------------------------------------------- fake hypervisor


def define_fake(hv: FakeHypervisor, sid: str = SID, project: str = "p") -> vm.NetworkSpec:
    net = vm.NetworkSpec.for_session(sid, hv.used_subnets(exclude_session=sid))
    dom = make_domain(
        session_id=sid, name=vm.domain_name(project, sid), mac=net.mac, network=net.name
    )
    hv.define(vm.domain_xml(dom), vm.network_xml(net))
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
        net = vm.NetworkSpec.for_session(other, hv.used_subnets())
        dom = make_domain(
            session_id=other, name=vm.domain_name("same", SID), mac=net.mac, network=net.name
        )
        hv.define(vm.domain_xml(dom), vm.network_xml(net))


def test_fake_start_without_definition_and_console() -> None:
    hv = FakeHypervisor()
    with pytest.raises(VMError, match="no VM defined"):
        hv.start(SID)
    hv.set_console(SID, "a\nb\nc")
    assert hv.console_tail(SID, max_lines=2) == "b\nc"
    assert hv.stop(SID) is True


def test_fake_undefine_removes_the_session_filter() -> None:
    hv = FakeHypervisor()
    net = vm.NetworkSpec.for_session(SID, set(), isolated=True)
    hv.define_nwfilter("<filter name='vibebox-f1' chain='root'/>")
    hv.define_nwfilter("<filter name='shared' chain='root'/>")
    for sid, name in ((SID, "vibebox-f1"), (SID2, "shared")):
        spec = make_domain(
            session_id=sid,
            name=vm.domain_name(sid, sid),
            nwfilter=name,
            mac=net.mac,
            network=net.name,
        )
        hv.define_domain(vm.domain_xml(spec))
    hv.undefine(SID)
    hv.undefine(SID2)
    assert set(hv.nwfilters) == {"shared"}  # only vibebox-* filters are vibebox's to remove
