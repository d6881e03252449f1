"""LibvirtHypervisor against the real libvirtd in the lab namespace.

Run inside the lab: ``bash .ci/lab-up`` then
``ip netns exec vbxlab .venv/bin/python -m pytest -m e2e tests/e2e/test_hypervisor.py``.

The definition tests need only libvirtd; the boot test also needs a base image (the
``require_lab`` fixture). Everything a test creates (domains, networks, files) is removed by
its fixture, also when the test fails. ``virsh`` is the independent client that checks what
vibebox says it did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibebox_core.errors import SubnetInUseError, VMError
from vibebox_core.hypervisor import accelerator, access, domain_xml, names, network_xml, virtiofs
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.hypervisor.nwfilter import FenceSpec, nwfilter_uuid, nwfilter_xml
from vibebox_core.images import store

pytestmark = pytest.mark.e2e

URI = "qemu:///system"
LAB_NAMESPACE = "vbxlab"
BOOT_TIMEOUT = 240.0  # TCG on 2 shared cores; measured 30-40 s unloaded on the lab


def virsh(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; the real stack gives no event to await here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def libvirt_lab() -> None:
    """Skip (locally) or fail (CI) unless libvirtd answers inside the lab namespace."""
    netns = subprocess.run(["ip", "netns", "identify"], capture_output=True, text=True)
    problem = None
    if shutil.which("virsh") is None:
        problem = "virsh is not installed"
    elif netns.stdout.strip() != LAB_NAMESPACE:
        problem = f"not inside the lab namespace {LAB_NAMESPACE!r}"
    elif subprocess.run(["virsh", "-c", URI, "version"], capture_output=True).returncode:
        problem = "libvirtd is not answering"
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"e2e lab unavailable under CI: {problem}")
    pytest.skip(f"e2e lab unavailable: {problem}")


@pytest.fixture
def hv(libvirt_lab: None) -> Iterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor(URI)
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def sessions(hv: LibvirtHypervisor) -> Iterator[list[str]]:
    """Session ids a test uses; their domains and networks are removed afterwards."""
    ids: list[str] = []
    yield ids
    for sid in ids:
        hv.undefine(sid)
        assert not hv.exists(sid)
        assert hv.network_subnet(sid) is None


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory under /tmp that libvirt-qemu can enter."""
    path = Path(tempfile.mkdtemp(prefix="vbx-vm-e2e-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def new_session(sessions: list[str]) -> str:
    sid = str(uuid.uuid4())
    sessions.append(sid)
    return sid


def qcow2(path: Path, size: str = "16M", backing: Path | None = None) -> Path:
    command = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        command += ["-F", "qcow2", "-b", str(backing)]
    subprocess.run([*command, str(path), size], check=True)
    return path


def domain_spec(
    sid: str, net: network_xml.NetworkSpec, work: Path, **overrides: Any
) -> domain_xml.DomainSpec:
    values: dict[str, Any] = {
        "session_id": sid,
        "name": names.domain_name(f"e2e {work.name}", sid),
        "cpus": 1,
        "memory_mb": 512,
        "accel": "tcg",
        "kernel": work / "vmlinuz",
        "initrd": work / "initrd.img",
        "disk": work / "disk.qcow2",
        "console_log": work / "console.log",
        "network": net.name,
        "mac": net.mac,
        "project_dir": work,
    }
    values.update(overrides)
    return domain_xml.DomainSpec(**values)


# --------------------------------------------------------------------------- no image needed


def test_networks_get_distinct_subnets_and_come_up(
    hv: LibvirtHypervisor, sessions: list[str]
) -> None:
    a, b = new_session(sessions), new_session(sessions)
    net_a = network_xml.NetworkSpec.for_session(a, hv.used_subnets(exclude_session=a))
    hv.define_network(network_xml.network_xml(net_a))
    net_b = network_xml.NetworkSpec.for_session(
        b, hv.used_subnets(exclude_session=b), isolated=True, dns_forwarder="127.0.0.1#5353"
    )
    hv.define_network(network_xml.network_xml(net_b))
    assert not net_a.subnet.overlaps(net_b.subnet)
    assert {net_a.subnet, net_b.subnet} <= hv.used_subnets()

    hv.start_network(a)
    hv.start_network(b)
    for net in (net_a, net_b):
        info = virsh("net-info", net.name)
        assert "Active:         yes" in info
        assert net.bridge in info
        link = subprocess.run(
            ["ip", "-br", "addr", "show", net.bridge], capture_output=True, text=True, check=True
        ).stdout
        assert f"{net.gateway}/24" in link
    assert "<forward mode='nat'" in virsh("net-dumpxml", net_a.name)
    assert "<forward" not in virsh("net-dumpxml", net_b.name)

    # libvirt 9.0 passes the dnsmasq namespace options through to dnsmasq's config.
    conf = Path(f"/var/lib/libvirt/dnsmasq/{net_b.name}.conf").read_text()
    assert "no-resolv" in conf.splitlines()
    assert "server=127.0.0.1#5353" in conf.splitlines()
    hosts = Path(f"/var/lib/libvirt/dnsmasq/{net_a.name}.hostsfile").read_text()
    assert f"{net_a.mac},{net_a.guest_ip},vibebox" in hosts

    # Redefining keeps the network (stable UUID) and, with `current`, its subnet.
    again = network_xml.NetworkSpec.for_session(
        a, hv.used_subnets(exclude_session=a), current=hv.network_subnet(a)
    )
    assert again.subnet == net_a.subnet
    hv.define_network(network_xml.network_xml(again))
    hv.start_network(a, restart=True)
    assert "Active:         yes" in virsh("net-info", net_a.name)

    hv.undefine_network(a)
    assert net_a.name not in virsh("net-list", "--all", "--name").split()
    hv.undefine_network(a)  # tolerant


def test_a_subnet_some_interface_has_is_not_picked_and_a_taken_one_is_refused(
    hv: LibvirtHypervisor, sessions: list[str]
) -> None:
    """libvirt refuses a network on a subnet any interface routes (a bridge left behind, a
    network another vibebox started since the pick): the pick skips the host's routes, and a
    start that lost the race raises SubnetInUseError, which the cold start retries."""
    a, b = new_session(sessions), new_session(sessions)
    wanted = network_xml.pick_subnet(a, hv.used_subnets(exclude_session=a))
    leftover = "vbxe2eleft0"
    subprocess.run(["ip", "link", "add", leftover, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{wanted[1]}/24", "dev", leftover], check=True)
        subprocess.run(["ip", "link", "set", leftover, "up"], check=True)
        assert wanted in hv.used_subnets()
        net_a = network_xml.NetworkSpec.for_session(a, hv.used_subnets(exclude_session=a))
        assert net_a.subnet != wanted
        hv.define_network(network_xml.network_xml(net_a))
        hv.start_network(a)
        # b picked a's subnet before a's network came up (two starts at once).
        net_b = network_xml.NetworkSpec.for_session(b, (), current=net_a.subnet)
        assert net_b.subnet == net_a.subnet
        hv.define_network(network_xml.network_xml(net_b))
        with pytest.raises(SubnetInUseError, match="already in use"):
            hv.start_network(b)
        assert net_a.subnet in hv.used_subnets(exclude_session=b)
    finally:
        subprocess.run(["ip", "link", "del", leftover], check=False)


def test_domain_define_shows_in_virsh_and_undefines(
    hv: LibvirtHypervisor, sessions: list[str], workdir: Path
) -> None:
    sid = new_session(sessions)
    net = network_xml.NetworkSpec.for_session(sid, hv.used_subnets(exclude_session=sid))
    qcow2(workdir / "disk.qcow2")
    (workdir / "seed").mkdir()
    wrappers = virtiofs.install_virtiofsd_wrappers(workdir / "bin")
    spec = domain_spec(
        sid,
        net,
        workdir,
        filesystems=(
            virtiofs.Share(workdir, "vibebox-project", False),
            virtiofs.Share(workdir / "seed", "vibebox-seed", True),
        ),
        virtiofsd=wrappers.readwrite,
        virtiofsd_readonly=wrappers.readonly,
    )
    hv.define(domain_xml.domain_xml(spec), network_xml.network_xml(net))

    assert hv.exists(sid)
    assert hv.state(sid) == "shut off"
    assert hv.statuses()[sid].name == spec.name
    info = virsh("dominfo", sid)
    assert f"Name:           {spec.name}" in info
    assert f"UUID:           {sid}" in info
    assert spec.name in virsh("list", "--all", "--name").split()
    assert net.mac in virsh("domiflist", sid)

    hv.undefine(sid)
    assert hv.state(sid) == "missing"
    assert spec.name not in virsh("list", "--all", "--name").split()
    assert net.name not in virsh("net-list", "--all", "--name").split()


def test_nwfilter_define_reference_undefine(
    hv: LibvirtHypervisor, sessions: list[str], workdir: Path
) -> None:
    sid = new_session(sessions)
    net = network_xml.NetworkSpec.for_session(
        sid, hv.used_subnets(exclude_session=sid), isolated=True
    )
    name = f"vibebox-e2e-{sid}"
    fence = FenceSpec(
        name, nwfilter_uuid(sid), "allowlist", net.gateway, net.guest_ip, net.mac, 3128
    )
    hv.define_nwfilter(nwfilter_xml(fence))
    try:
        assert name in virsh("nwfilter-list")
        qcow2(workdir / "disk.qcow2")
        spec = domain_spec(sid, net, workdir, nwfilter=name, nwfilter_params={"VIBEBOX": "1"})
        hv.define(domain_xml.domain_xml(spec), network_xml.network_xml(net))
        dumped = virsh("dumpxml", sid)
        assert f"<filterref filter='{name}'>" in dumped
        # A second domain using the same filter keeps it alive through the first undefine.
        other = new_session(sessions)
        other_net = network_xml.NetworkSpec.for_session(
            other, hv.used_subnets(exclude_session=other)
        )
        other_spec = domain_spec(other, other_net, workdir, nwfilter=name)
        hv.define(domain_xml.domain_xml(other_spec), network_xml.network_xml(other_net))
        hv.undefine(sid)
        assert name in virsh("nwfilter-list")
        hv.undefine(other)  # the last user: the session's filter goes with the domain
        assert name not in virsh("nwfilter-list")
    finally:
        hv.undefine_nwfilter(name)  # tolerant of missing


def test_unreachable_disk_names_setfacl(
    hv: LibvirtHypervisor, sessions: list[str], workdir: Path
) -> None:
    sid = new_session(sessions)
    net = network_xml.NetworkSpec.for_session(sid, hv.used_subnets(exclude_session=sid))
    closed = workdir / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    qcow2(closed / "disk.qcow2")
    (workdir / "vmlinuz").write_bytes(b"not a kernel")
    (workdir / "initrd.img").write_bytes(b"not an initrd")
    spec = domain_spec(sid, net, workdir, disk=closed / "disk.qcow2")
    assert access.qemu_blocked_dirs([spec.disk]) == [closed]
    hv.define(domain_xml.domain_xml(spec), network_xml.network_xml(net))
    with pytest.raises(VMError) as info:
        hv.start(sid)
    assert "Permission denied" in info.value.message
    assert f"setfacl -m u:libvirt-qemu:x {closed}" in info.value.hint
    assert hv.state(sid) == "shut off"


def test_auto_accel_on_this_host(hv: LibvirtHypervisor) -> None:
    """These machines are VMs whose /dev/kvm hangs guests (nested KVM): auto must pick TCG."""
    nested = hv.host_is_virtual()
    cpu_flags = Path("/proc/cpuinfo").read_text().split()
    assert nested == ("hypervisor" in cpu_flags)  # local URI: libvirt sees this machine's CPU
    accel = accelerator.resolve_accel("auto", kvm_available=hv.kvm_available(), nested=nested)
    if nested:
        assert accel == "tcg"


def test_missing_domain_and_errors(hv: LibvirtHypervisor) -> None:
    sid = str(uuid.uuid4())
    assert hv.state(sid) == "missing"
    assert hv.lease_ipv4(sid) is None
    assert hv.console_tail(sid) == ""
    hv.shutdown(sid)
    hv.destroy(sid)
    hv.undefine(sid)
    with pytest.raises(VMError, match="no VM defined"):
        hv.start(sid)


@pytest.mark.parametrize("read_only", [False, True])
def test_virtiofsd_wrapper_view(workdir: Path, read_only: bool) -> None:
    """The wrapper's view of a share, seen by a stand-in for virtiofsd (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("the wrapper mounts in a private namespace: needs root")
    share = workdir / "share"
    (share / ".vibebox" / "seed").mkdir(parents=True)
    (share / ".vibebox" / "disk.qcow2").write_text("disk")
    (share / "file.txt").write_text("hello")
    probe = workdir / "probe.sh"
    probe.write_text(
        "#!/bin/sh\n"
        'src=$(printf "%s" "$3" | sed "s/^source=//; s/,.*//")\n'
        'echo "args: $*"\n'
        'echo "cache: $(ls -A "$src/.vibebox" | tr "\\n" " ")"\n'
        'if echo x > "$src/new.txt" 2>/dev/null; then echo write: ok; '
        "else echo write: refused; fi\n"
        'if touch "$src/.vibebox/x" 2>/dev/null; then echo cache-write: ok; '
        "else echo cache-write: refused; fi\n"
    )
    probe.chmod(0o755)
    wrappers = virtiofs.install_virtiofsd_wrappers(workdir / "bin", real=probe)
    wrapper = wrappers.readonly if read_only else wrappers.readwrite
    result = subprocess.run(
        [str(wrapper), "--fd=3", "-o", f"source={share},xattr"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"args: --fd=3 -o source={share},xattr"  # passed through unchanged
    assert lines[1] == "cache: "  # .vibebox/ is empty in the view
    assert lines[2] == ("write: refused" if read_only else "write: ok")
    assert lines[3] == "cache-write: refused"
    # Nothing leaked into the host's mount namespace; the host's files are untouched.
    assert str(share) not in Path("/proc/self/mountinfo").read_text()
    assert sorted(p.name for p in (share / ".vibebox").iterdir()) == ["disk.qcow2", "seed"]
    assert (share / "new.txt").exists() is not read_only


# --------------------------------------------------------------------------- with the base image


def _image_files(into: Path) -> tuple[Path, Path, Path, str]:
    """Kernel, initrd and base disk of the image, linked into ``into``, and its cmdline.

    The store may sit under /root, which libvirt-qemu cannot enter until someone grants it
    (:func:`vibebox_core.hypervisor.access.grant_qemu_access`, the runtime's job with the
    user's consent). Hard links (copies across file
    systems) keep this test independent of that decision.
    """
    info = store.read_image()
    linked = []
    for source in (info.kernel, info.initrd, info.base_disk):
        target = into / source.name
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        linked.append(target)
    return linked[0], linked[1], linked[2], info.cmdline


def _write_seed(seed: Path, project: Path, extra: Path) -> None:
    seed.mkdir(parents=True)
    key = seed / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    client = seed.parent / "id_client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)], check=True)
    (seed / "authorized_keys").write_text(Path(f"{client}.pub").read_text())
    guest = {
        "uid": 1000,
        "gid": 1000,
        "hostname": "vibebox",
        "project_name": project.name,
        "project_guest_path": f"/home/vibecoder/{project.name}",
        "mounts": [
            {
                "tag": "vibebox-project",
                "guest": f"/home/vibecoder/{project.name}",
                "read_only": False,
            },
            {"tag": "vibebox-m1", "guest": "/mnt/extra", "read_only": True},
        ],
        "env": {},
    }
    (seed / "guest.json").write_text(json.dumps(guest))
    for path in seed.iterdir():
        path.chmod(0o644)


def _virtiofsd_pids(source: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(
            arg == f"source={source}".encode() or arg.startswith(f"source={source},".encode())
            for arg in args
        ):
            pids.append(int(proc.name))
    return pids


def test_boot_lease_readonly_share_and_acpi_shutdown(
    e2e_home: Path, hv: LibvirtHypervisor, sessions: list[str], workdir: Path
) -> None:
    image = workdir / "image"
    image.mkdir()
    kernel, initrd, base, cmdline = _image_files(image)
    sid = new_session(sessions)
    project = workdir / "project"
    extra = workdir / "extra"
    project.mkdir()
    extra.mkdir()
    (extra / "keep.txt").write_text("read only\n")
    cache = project / ".vibebox"
    cache.mkdir()
    (cache / "id_ed25519").write_text("secret")
    _write_seed(cache / "seed", project, extra)
    wrappers = virtiofs.install_virtiofsd_wrappers(workdir / "bin")
    qcow2(workdir / "disk.qcow2", "4G", backing=base)

    net = network_xml.NetworkSpec.for_session(sid, hv.used_subnets(exclude_session=sid))
    spec = domain_spec(
        sid,
        net,
        workdir,
        kernel=kernel,
        initrd=initrd,
        cmdline=cmdline,
        accel=accelerator.resolve_accel(
            os.environ.get("VIBEBOX_ACCEL", "tcg"), kvm_available=False
        ),
        memory_mb=1024,
        filesystems=(
            virtiofs.Share(project, "vibebox-project", False),
            virtiofs.Share(cache / "seed", "vibebox-seed", True),
            virtiofs.Share(extra, "vibebox-m1", True),
        ),
        virtiofsd=wrappers.readwrite,
        virtiofsd_readonly=wrappers.readonly,
    )
    assert access.qemu_blocked_dirs([kernel, initrd, base, spec.disk]) == [], (
        "the image store is not reachable by libvirt-qemu"
    )
    hv.define(domain_xml.domain_xml(spec), network_xml.network_xml(net))
    started = time.monotonic()
    hv.start(sid)
    assert hv.state(sid) == "running"
    hv.start(sid)  # idempotent

    info = virsh("dominfo", sid)
    assert f"Name:           {spec.name}" in info
    assert f"UUID:           {sid}" in info
    assert "State:          running" in info

    # Read-only share: enforced on the host, below anything the guest controls.
    pids = _virtiofsd_pids(extra)
    assert pids, "no virtiofsd serves the read-only share"
    for pid in pids:
        with pytest.raises(OSError) as refused:
            (Path(f"/proc/{pid}/root") / "guest-write").write_text("x")
        assert refused.value.errno == 30  # EROFS
    assert sorted(p.name for p in extra.iterdir()) == ["keep.txt"]
    rw_pids = _virtiofsd_pids(project)
    assert rw_pids
    view = Path(f"/proc/{rw_pids[-1]}/root")
    (view / "host-probe").write_text("x")
    assert (project / "host-probe").read_text() == "x"
    assert list((view / ".vibebox").iterdir()) == []  # the session cache is hidden

    wait_for(lambda: hv.lease_ipv4(sid) is not None, BOOT_TIMEOUT, "the DHCP lease")
    lease_seconds = time.monotonic() - started
    assert hv.lease_ipv4(sid) == str(net.guest_ip)
    assert str(net.guest_ip) in virsh("net-dhcp-leases", net.name)
    # The guest read its seed share: IMAGE's boot-time setup logs to the serial console.
    assert "vibebox-setup" in Path(spec.console_log).read_text(errors="replace")
    assert hv.console_tail(sid, max_lines=5)
    print(f"lease after {lease_seconds:.1f} s")

    # ACPI: the guest powers itself off (stop() presses the button again while it runs, in
    # case the first press came before systemd-logind listened); no forced power-off.
    stopping = time.monotonic()
    assert hv.stop(sid, timeout=120) is True
    print(f"ACPI shutdown took {time.monotonic() - stopping:.1f} s")
    assert "Reached target" in Path(spec.console_log).read_text(errors="replace")
    assert "State:          shut off" in virsh("dominfo", sid)
    assert not _virtiofsd_pids(extra)

    hv.undefine(sid)
    assert sid not in virsh("list", "--all", "--uuid")
    assert net.name not in virsh("net-list", "--all", "--name").split()
