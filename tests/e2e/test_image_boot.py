"""The base image boots and its guest setup does what the seed share asks (real stack).

One TCG guest is booted from the image store with a hand-assembled session: a NAT network on a
free subnet, a qcow2 overlay, direct kernel boot with the image's command line, and virtiofs
shares for the seed, the project (read-write) and an extra read-only mount. Plain OpenSSH then
logs in as vibecoder with the seeded client key and the pinned (seeded) host key.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest

from vibebox_core.hypervisor import access, domain_xml, names, network_xml, virtiofs
from vibebox_core.images import store

pytestmark = pytest.mark.e2e

UID = 1234
GID = 1235
BOOT_TIMEOUT = 300.0
PROXY = "http://10.99.0.1:3128"


@dataclass
class Guest:
    ip: str
    work: Path
    project: Path
    readonly: Path
    boot_seconds: float

    def ssh(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                "ssh",
                "-i",
                str(self.work / "id_ed25519"),
                "-o",
                f"UserKnownHostsFile={self.work / 'known_hosts'}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
                f"vibecoder@{self.ip}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command!r} exited {result.returncode}: {result.stderr}")
        return result


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
    )
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def guest(e2e_home_shared: Path) -> Iterator[Guest]:
    info = store.verify_image()
    access.ensure_qemu_can_reach(info.base_disk)

    work = Path(tempfile.mkdtemp(prefix="vbx-imgboot-", dir="/tmp"))
    work.chmod(0o755)
    session_id = str(uuid.uuid4())
    seed = work / "seed"
    seed.mkdir()
    client_pub = _keygen(work / "id_ed25519", "vibebox-test-client")
    host_pub = _keygen(seed / "ssh_host_ed25519_key", "vibebox-test-host")
    (seed / "authorized_keys").write_text(client_pub + "\n")
    project = work / "proj"
    (project / ".vibebox").mkdir(parents=True)
    (project / ".vibebox" / "secret").write_text("host only\n")
    os.chown(project, UID, GID)
    readonly = work / "ro"
    readonly.mkdir()
    (readonly / "data.txt").write_text("read me\n")
    guest_path = "/home/vibecoder/proj"
    (seed / "guest.json").write_text(
        json.dumps(
            {
                "uid": UID,
                "gid": GID,
                "hostname": "vibebox",
                "project_name": "proj",
                "project_guest_path": guest_path,
                "mounts": [
                    {"tag": "vibebox-project", "guest": guest_path, "read_only": False},
                    {"tag": "vibebox-m1", "guest": "~/ro", "read_only": True},
                ],
                "env": {"http_proxy": PROXY, "https_proxy": PROXY},
            }
        )
    )
    disk = work / "disk.qcow2"
    overlay = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2"]
    subprocess.run([*overlay, "-b", str(info.base_disk), str(disk), "4G"], check=True)

    conn = libvirt.open("qemu:///system")
    used = [
        s for n in conn.listAllNetworks() for s in network_xml.parse_network_subnets(n.XMLDesc())
    ]
    net_spec = network_xml.NetworkSpec.for_session(session_id, used)
    wrappers = virtiofs.install_virtiofsd_wrappers(work / "bin")
    dom_spec = domain_xml.DomainSpec(
        session_id=session_id,
        name=names.domain_name("imagetest", session_id),
        cpus=2,
        memory_mb=1024,
        accel="tcg",
        kernel=info.kernel,
        initrd=info.initrd,
        disk=disk,
        console_log=work / "console.log",
        network=net_spec.name,
        mac=net_spec.mac,
        cmdline=info.cmdline,
        filesystems=(
            virtiofs.Share(seed, "vibebox-seed", True),
            virtiofs.Share(project, "vibebox-project", False),
            virtiofs.Share(readonly, "vibebox-m1", True),
        ),
        virtiofsd=wrappers.readwrite,
        virtiofsd_readonly=wrappers.readonly,
    )
    ip = str(net_spec.guest_ip)
    (work / "known_hosts").write_text(f"{ip} {host_pub}\n")
    network = conn.networkDefineXML(network_xml.network_xml(net_spec))
    domain = None
    try:
        network.create()
        domain = conn.defineXML(domain_xml.domain_xml(dom_spec))
        start = time.monotonic()
        domain.create()
        probe = Guest(ip, work, project, readonly, 0.0)
        while True:
            if probe.ssh("true", check=False).returncode == 0:
                break
            if time.monotonic() - start > BOOT_TIMEOUT:
                console = (work / "console.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"no SSH within {BOOT_TIMEOUT:.0f} s; console tail:\n{console}")
            time.sleep(0.5)
        probe.boot_seconds = time.monotonic() - start
        print(f"\nimage boot: start -> SSH as vibecoder in {probe.boot_seconds:.1f} s (TCG)")
        yield probe
    finally:
        if domain is not None:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        if network.isActive():
            network.destroy()
        network.undefine()
        conn.close()
        shutil.rmtree(work, ignore_errors=True)


def test_ssh_as_vibecoder_with_the_seeded_keys_and_uid(guest: Guest) -> None:
    out = guest.ssh("id -u; id -g; id -un; hostname; sudo -n id -u; echo $SHELL").stdout.split()
    assert out == [str(UID), str(GID), "vibecoder", "vibebox", "0", "/bin/bash"]
    keys = guest.ssh("ls /etc/ssh | grep ssh_host_").stdout.split()
    assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


def test_a_changed_host_key_is_refused(guest: Guest) -> None:
    other = guest.work / "other"
    other.mkdir()
    wrong = _keygen(other / "key", "not-the-guest")
    (other / "known_hosts").write_text(f"{guest.ip} {wrong}\n")
    command = [
        *("ssh", "-i", str(guest.work / "id_ed25519"), "-o", "BatchMode=yes"),
        *("-o", f"UserKnownHostsFile={other / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes"),
        *(f"vibecoder@{guest.ip}", "true"),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_project_mount_is_read_write_both_ways(guest: Guest) -> None:
    guest.ssh("echo from-guest > ~/proj/guest.txt")
    written = guest.project / "guest.txt"
    assert written.read_text() == "from-guest\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (UID, GID)
    (guest.project / "host.txt").write_text("from-host\n")
    assert guest.ssh("cat ~/proj/host.txt").stdout == "from-host\n"


def test_project_cache_is_masked(guest: Guest) -> None:
    assert guest.ssh("ls -A ~/proj/.vibebox").stdout == ""
    assert guest.ssh("cat ~/proj/.vibebox/secret", check=False).returncode != 0
    assert guest.ssh("touch ~/proj/.vibebox/x", check=False).returncode != 0


def test_read_only_mount_refuses_writes(guest: Guest) -> None:
    assert guest.ssh("cat ~/ro/data.txt").stdout == "read me\n"
    result = guest.ssh("touch ~/ro/new.txt", check=False)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    result = guest.ssh("sudo touch ~/ro/new.txt", check=False)
    assert result.returncode != 0
    assert not (guest.readonly / "new.txt").exists()


def test_login_shell_starts_in_the_project_with_shell_integration(guest: Guest) -> None:
    assert guest.ssh("bash -l -c pwd").stdout == "/home/vibecoder/proj\n"
    token = "0123456789abcdef0123456789abcdef"
    out = guest.ssh(
        f"VIBEBOX_COMMAND_TOKEN={token} bash -l -c ':new; :exit; :explain; :help; env'"
    ).stdout
    signed = "".join(
        f"\x1b]7777;vibebox-command={name};{token}\x07"
        for name in ("new", "exit", "explain", "help")
    )
    assert out.startswith(signed) and token not in out[len(signed) :]
    # A program merely printing the text does not fire anything.
    assert guest.ssh("echo :new").stdout == ":new\n"


def test_environment_reaches_ssh_commands_apt_and_git(guest: Guest) -> None:
    assert guest.ssh("echo $http_proxy").stdout == f"{PROXY}\n"
    apt = guest.ssh("cat /etc/apt/apt.conf.d/90vibebox-proxy").stdout
    assert f'Acquire::http::Proxy "{PROXY}";' in apt
    assert guest.ssh("git config --get http.proxy").stdout == f"{PROXY}\n"


def test_console_log_shows_the_guest_setup(guest: Guest) -> None:
    console = (guest.work / "console.log").read_text(errors="replace")
    assert "vibebox-setup:" in console
    assert "ready" in console
    assert "ERROR" not in console
    failed = guest.ssh("systemctl --failed --no-legend --plain").stdout
    assert failed.strip() == "", failed


def test_root_fs_grew_and_tools_are_there(guest: Guest) -> None:
    size = int(guest.ssh("df --output=size -B1M / | tail -1").stdout)
    assert size > 3000  # the 4 GiB overlay, not the 1 GiB base
    tools = "rg --version && gcc --version && python3 --version && git --version && curl --version"
    guest.ssh(tools)
    assert shlex.split(guest.ssh("cat /etc/hostname").stdout) == ["vibebox"]
