"""vibebox doctor: the pure checks, the leftover rule, the command's output and exit status."""

from __future__ import annotations

import asyncio
import grp
import ipaddress
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from vibebox_cli import main as cli
from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.doctor import checks, examine, leftovers
from vibebox_core.doctor.checks import Check
from vibebox_core.doctor.leftovers import DomainFact
from vibebox_core.errors import VMError
from vibebox_core.hypervisor import access, names
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.hypervisor.nwfilter import bridge_netfilter_problem
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import boot, start


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("qemu:///system", "ok"),
        ("qemu:///session", "ok"),
        ("qemu:///system?socket=/tmp/x.sock", "ok"),
        ("qemu+unix:///system", "ok"),
        ("qemu+ssh://root@far/system", "fail"),
        ("qemu+tcp://10.0.0.1/system", "fail"),
        ("qemu://far/system", "fail"),
        ("test:///default", "fail"),
        ("nonsense", "fail"),
    ],
)
def test_uri(uri: str, status: str) -> None:
    check = checks.check_uri(uri)
    assert check.status == status
    if "ssh" in uri or "tcp" in uri:
        assert "remote" in check.summary and "local paths" in check.summary
    if status == "fail":
        assert "libvirt_uri" in check.fix


def test_capabilities_fast_slow_and_the_kvm_cause() -> None:
    assert checks.check_capabilities([0.01, 0.02], kvm_closed_to_qemu=True).status == "ok"
    slow = checks.check_capabilities([4.7, 8.0], kvm_closed_to_qemu=True)
    assert slow.status == "fail"
    assert "/dev/kvm" in slow.summary and "4.700 s" in slow.summary
    assert slow.fix == "setfacl -m u:libvirt-qemu:rw /dev/kvm"
    other = checks.check_capabilities([0.01, 3.0], kvm_closed_to_qemu=False)
    assert other.status == "fail" and "setfacl" not in other.fix


def test_kvm_is_a_warning_when_nested_or_absent() -> None:
    nested = checks.check_kvm(device_exists=True, kvm_capable=True, nested=True)
    assert nested.status == "warn" and nested.holds
    assert "accel=auto uses TCG" in nested.summary
    assert checks.check_kvm(device_exists=False, kvm_capable=False, nested=False).status == "warn"
    assert checks.check_kvm(device_exists=True, kvm_capable=True, nested=False).status == "ok"


def test_virtiofsd(tmp_path: Path) -> None:
    assert checks.check_virtiofsd(tmp_path / "none").status == "fail"
    binary = tmp_path / "virtiofsd"
    binary.write_text("#!/bin/sh\n")
    assert checks.check_virtiofsd(binary).status == "fail"  # not executable
    binary.chmod(0o755)
    assert checks.check_virtiofsd(binary).status == "ok"


def test_qemu_access() -> None:
    blocked = [Path("/root")]
    check = checks.check_qemu_access(blocked, [Path("/root/x")], uri="qemu:///system")
    assert check.status == "fail"
    assert check.fix == "setfacl -m u:libvirt-qemu:x /root"
    assert checks.check_qemu_access([], [Path("/srv")], uri="qemu:///system").status == "ok"
    assert checks.check_qemu_access(blocked, [Path("/r")], uri="qemu:///session").status == "ok"


def test_subnets_full_and_free() -> None:
    pool = ipaddress.IPv4Network("10.213.0.0/22")
    used = [ipaddress.IPv4Network(f"10.213.{i}.0/24") for i in range(3)]
    assert checks.check_subnets(used, pool).summary.startswith("1 of 4")
    full = checks.check_subnets([*used, ipaddress.IPv4Network("10.213.3.0/24")], pool)
    assert full.status == "fail" and "vibebox delete" in full.fix
    assert checks.check_subnets([ipaddress.IPv4Network("10.0.0.0/8")], pool).status == "fail"


def test_disk() -> None:
    assert checks.check_disk(Path("/x"), 10 * 1024**3).status == "ok"
    low = checks.check_disk(Path("/x"), 1024**3)
    assert low.status == "fail" and "VIBEBOX_HOME" in low.fix


def _group(members: list[str]) -> grp.struct_group:
    return grp.struct_group(("libvirt", "x", 4242, members))


def test_group() -> None:
    kw = {"uri": "qemu:///system", "user": "me"}
    assert checks.check_group(uid=0, process_gids=[], group=None, **kw).status == "ok"
    assert checks.check_group(uid=1000, process_gids=[4242], group=_group([]), **kw).holds
    stale = checks.check_group(uid=1000, process_gids=[1000], group=_group(["me"]), **kw)
    assert stale.status == "fail" and "log out" in stale.fix
    out = checks.check_group(uid=1000, process_gids=[1000], group=_group([]), **kw)
    assert out.fix == "sudo adduser me libvirt, then log in again"
    session = checks.check_group(
        uid=1000, process_gids=[], group=None, uri="qemu:///session", user="me"
    )
    assert session.status == "ok"


def test_leftovers_rule() -> None:
    mine, other, orphan, netonly = (str(uuid.uuid4()) for _ in range(4))
    domains = [
        DomainFact(names.domain_name("a", mine), mine, None),
        DomainFact(names.domain_name("b", other), other, other),  # another VIBEBOX_HOME's session
        DomainFact(names.domain_name("c", orphan), orphan, None),  # .vibebox/ gone
    ]
    networks = [names.network_name(s) for s in (mine, other, orphan, netonly)] + ["default"]
    filters = [f"vibebox-{orphan}", "allow-arp"]
    left = leftovers.find_leftovers(domains, networks, filters, known=[mine])
    assert left.domains == [names.domain_name("c", orphan)]
    assert left.networks == [names.network_name(orphan), names.network_name(netonly)]
    assert left.filters == [f"vibebox-{orphan}"]
    check = leftovers.check_leftovers(left, uri="qemu:///system")
    assert check.status == "fail"
    assert names.domain_name("c", orphan) in check.summary
    assert f"virsh -c qemu:///system undefine {names.domain_name('c', orphan)}" in check.fix
    assert check.items == (
        names.domain_name("c", orphan),
        names.network_name(orphan),
        names.network_name(netonly),
        f"vibebox-{orphan}",
    )
    none = leftovers.check_leftovers(leftovers.Leftovers(), uri="qemu:///system")
    assert none.status == "ok"


def test_a_long_leftover_list_is_shortened_on_the_line_but_whole_in_json() -> None:
    names = [f"vibebox-x-{n:08x}" for n in range(7)]
    check = leftovers.check_leftovers(leftovers.Leftovers(domains=names), uri="qemu:///system")
    assert names[3] not in check.summary
    assert "…" in check.summary
    assert check.to_dict()["items"] == names


def test_line_and_exit_semantics() -> None:
    lines = [Check("a", "ok", "fine"), Check("b", "warn", "hm", "do x"), Check("c", "skip", "-")]
    assert checks.all_hold(lines)
    assert lines[1].line() == "! b: hm — do x"
    assert not checks.all_hold([*lines, Check("d", "fail", "bad", "fix it")])
    assert Check("d", "fail", "bad", "fix it").line() == "✗ d: bad — fix it"


def test_diagnose_failure_adds_failed_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(examine.VIRTIOFSD_ENV, "/nonexistent/virtiofsd")
    error = VMError("could not start VM x: boom", hint="look at the log")
    examine.diagnose_failure(error, "qemu:///system", None)
    assert error.hint.startswith("look at the log; vibebox doctor: ✗ virtiofsd:")
    assert "/nonexistent/virtiofsd is missing" in error.hint
    remote = VMError("x")
    examine.diagnose_failure(remote, "qemu+ssh://h/system", None)
    assert "remote libvirt" in remote.hint


def test_access_targets_include_an_unreachable_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if access.qemu_identity() is None:
        pytest.skip("no libvirt-qemu account here")
    home = tmp_path / "private"
    home.mkdir()
    home.chmod(0o700)
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    found = {c.name: c for c in examine.cheap_checks("qemu:///system")}
    assert found["qemu-access"].status == "fail"
    assert str(home) in found["qemu-access"].fix
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # doctor only reads


def test_command_remote_uri_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = cli.main(["doctor", "--json", "--uri", "qemu+ssh://far/system", "-C", str(tmp_path)])
    assert status == 1
    data = json.loads(capsys.readouterr().out)
    by_name = {item["name"]: item for item in data}
    assert by_name["uri"]["status"] == "fail"
    assert by_name["libvirt"]["status"] == "skip"
    assert set(data[0]) == {"name", "status", "summary", "fix", "items"}


def test_command_text_unreachable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sock = tmp_path / "nobody.sock"
    status = cli.main(["doctor", "--uri", f"qemu:///system?socket={sock}", "-C", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("✓ uri:")
    assert lines[1].startswith("✗ libvirt: cannot reach libvirt") and "libvirtd -d" in lines[1]
    assert "Traceback" not in out
    assert os.path.exists(tmp_path)  # nothing created or removed


def test_a_failed_start_carries_the_diagnosis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start.ensure_running: the start's error gets doctor's quick findings in its hint."""
    project = ProjectPaths.for_directory(tmp_path)
    config = load_config(project)
    entry = SessionIndex().ensure(project.root)
    monkeypatch.setattr(start, "_load", lambda _project: (config, entry))

    def refuse(*_args: object) -> None:
        raise VMError("could not start VM x: boom", hint="see its log")

    monkeypatch.setattr(boot, "prepare_and_start", refuse)
    monkeypatch.setenv(examine.VIRTIOFSD_ENV, "/nonexistent/virtiofsd")
    hv = FakeHypervisor()
    with pytest.raises(VMError) as info:
        asyncio.run(start.ensure_running(project, hypervisor=hv))
    assert info.value.message == "could not start VM x: boom"
    assert info.value.hint.startswith("see its log; vibebox doctor: ")
    assert "✗ virtiofsd: /nonexistent/virtiofsd is missing" in info.value.hint
    assert f"✗ uri: {hv.uri}" in info.value.hint


def test_bridge_netfilter_check(tmp_path: Path) -> None:
    missing = examine.check_bridge_netfilter(bridge_netfilter_problem(tmp_path / "absent"))
    assert missing.status == "fail"
    assert "br_netfilter" in missing.summary
    assert "modprobe br_netfilter" in missing.fix
    (tmp_path / "bridge-nf-call-iptables").write_text("0\n")
    off = examine.check_bridge_netfilter(bridge_netfilter_problem(tmp_path))
    assert off.status == "fail" and "is 0" in off.summary
    (tmp_path / "bridge-nf-call-iptables").write_text("1\n")
    assert examine.check_bridge_netfilter(bridge_netfilter_problem(tmp_path)).status == "ok"
