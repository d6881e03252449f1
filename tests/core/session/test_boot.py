"""The cold start's pure parts: the seed contract, the instance disk, the base it was made on."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import Config, Secret
from vibebox_core.errors import SubnetInUseError, VMError
from vibebox_core.hypervisor import names, network_xml, virtiofs
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.secrets import PLACEHOLDER_RE
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressClock
from vibebox_core.session import boot
from vibebox_core.session.guest_secrets import CA_VARIABLES, guest_secrets
from vibebox_core.share import guard
from vibebox_core.ssh import keys


def test_guest_ids_map_root_to_1000() -> None:
    assert boot.guest_ids(0, 0) == (1000, 1000)
    assert boot.guest_ids(1234, 99) == (1234, 99)


def test_guest_json_follows_the_seed_contract(project: ProjectPaths, short_home: Path) -> None:
    extra = short_home / "data"
    extra.mkdir()
    project.config.write_text(f'[box]\nmounts = ["{extra}:~/data:ro", "{extra}:/srv/x"]\n')
    config = load_config(project)
    data = boot.guest_json(
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
    keys.ensure_keys(project)
    boot.write_seed(project, {"uid": 1000})
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


def test_seed_carries_the_session_ca_only_with_secrets(project: ProjectPaths) -> None:
    keys.ensure_keys(project)
    boot.write_seed(project, {}, b"-----BEGIN CERTIFICATE-----\n")
    assert (project.seed_dir / "ca.crt").read_bytes() == b"-----BEGIN CERTIFICATE-----\n"
    boot.write_seed(project, {})
    assert not (project.seed_dir / "ca.crt").exists()


def test_guest_gets_placeholders_and_the_ca_never_the_values(tmp_path: Path) -> None:
    session = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
    assert guest_secrets(Config(tmp_path / "vibebox.toml"), session).env == {}
    assert not paths.session_secrets_dir(session).exists()  # no secrets: no CA, no key
    config = Config(
        tmp_path / "vibebox.toml",
        secrets=(
            Secret("GITHUB_TOKEN", ("api.github.com",), "env:GITHUB_TOKEN"),
            Secret("API_KEY", ("api.example.com",), "file:~/key"),
        ),
    )
    first = guest_secrets(config, session)
    tokens = {k: v for k, v in first.env.items() if k not in CA_VARIABLES}
    assert sorted(tokens) == ["API_KEY", "GITHUB_TOKEN"]
    assert all(PLACEHOLDER_RE.fullmatch(v) for v in tokens.values())
    assert first.ca_pem is not None and first.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert first.env["NODE_EXTRA_CA_CERTS"].endswith("vibebox-session.crt")
    # Stable across boots of the session: the same placeholders, the same CA.
    assert guest_secrets(config, session) == first
    directory = paths.session_secrets_dir(session)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / paths.SECRET_CA_KEY).stat().st_mode) == 0o600


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_overlay_is_made_once_on_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    disk = tmp_path / "disk.qcow2"
    assert boot.create_overlay(disk, base, 2) is True
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(disk)], capture_output=True, check=True
        ).stdout
    )
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 2 * 1024**3
    assert boot.create_overlay(disk, base, 5) is False  # kept: the guest's disk persists


def test_overlay_failure_is_explained(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img")
    with pytest.raises(VMError, match="instance disk"):
        boot.create_overlay(tmp_path / "d.qcow2", tmp_path / "missing.qcow2", 1)


def test_a_disk_made_on_another_base_build_is_refused(project: ProjectPaths) -> None:
    boot.check_disk_base(project, "debian-12", "a" * 64)  # no disk yet: fine
    project.disk.write_bytes(b"qcow2")
    boot.check_disk_base(project, "debian-12", "a" * 64)  # no record (older session): fine
    project.disk_base.write_text("a" * 64 + "\n")
    boot.check_disk_base(project, "debian-12", "a" * 64)
    with pytest.raises(VMError, match="was rebuilt") as info:
        boot.check_disk_base(project, "debian-12", "b" * 64)
    assert "recreate the session" in info.value.hint


def _cold_start_without_a_vm(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`boot.prepare_and_start` with the image, the disk, the shares and QEMU's access
    stood in for: what is left is the seed, the definitions and the starts (on a fake)."""
    from vibebox_core.images import build

    image = Path("/images/debian-12")
    info = SimpleNamespace(
        name="debian-12",
        kernel=image / "vmlinuz",
        initrd=image / "initrd.img",
        base_disk=image / "disk.qcow2",
        cmdline="console=ttyS0",
        artifacts={"base_disk": SimpleNamespace(sha256="0" * 64)},
    )
    monkeypatch.setattr(build, "ensure_image", lambda **_: info)
    monkeypatch.setattr(boot, "check_disk_base", lambda *_: None)
    monkeypatch.setattr(boot, "create_overlay", lambda *_: False)
    monkeypatch.setattr(guard, "guard_shares", lambda *_: [])
    monkeypatch.setattr(virtiofs, "install_readonly_virtiofsd", lambda: None)
    monkeypatch.setattr(boot, "check_qemu_access", lambda _files: None)


def test_a_subnet_taken_since_it_was_picked_gives_way_to_the_next_free_one(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sessions starting at once can pick the same free subnet; libvirt then refuses to
    start the second network. That start picks the next free subnet and points the guest's
    seed at its gateway, instead of failing."""
    _cold_start_without_a_vm(monkeypatch)
    sid = SessionIndex().ensure(project.root).id
    hv = FakeHypervisor()
    picked = network_xml.pick_subnet(sid, ())
    define_network = hv.define_network

    def define_then_taken(xml: str) -> None:
        define_network(xml)
        # Another vibebox's network comes up on the subnet between the pick and the start.
        hv.interfaces.setdefault("vbxanother000", picked)

    monkeypatch.setattr(hv, "define_network", define_then_taken)
    boot.prepare_and_start(project, load_config(project), sid, hv, ProgressClock(None), None)

    subnet = hv.network_subnet(sid)
    assert subnet is not None and subnet != picked
    assert hv.state(sid) == "running"
    env = json.loads((project.seed_dir / "guest.json").read_text())["env"]
    assert f"http://{subnet.network_address + 1}:" in env["HTTP_PROXY"]
    assert project.network_def.read_text() == hv.networks[names.network_name(sid)].xml


def test_a_subnet_refused_every_time_fails_the_start(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cold_start_without_a_vm(monkeypatch)
    sid = SessionIndex().ensure(project.root).id
    hv = FakeHypervisor()
    refused = SubnetInUseError("could not start network x: Network is already in use", hint="h")
    hv.fail("start_network", refused, times=boot.SUBNET_ATTEMPTS)
    with pytest.raises(SubnetInUseError):
        boot.prepare_and_start(project, load_config(project), sid, hv, ProgressClock(None), None)
    assert hv.state(sid) == "shut off"
    assert [call[0] for call in hv.calls].count("start_network") == boot.SUBNET_ATTEMPTS
    assert not project.network_def.exists()
