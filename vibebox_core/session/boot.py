"""Preparing and starting a session's VM when it is not running (a cold start).

:func:`prepare_and_start` is the step of :func:`vibebox_core.session.start.ensure_running` that runs
only when no supervisor answers and the VM is off: verify or build the image, make the SSH
keys, write the seed share (``guest.json``, the contract the guest's setup reads at boot),
create the instance overlay, define the network and domain and start the VM. It lives apart
from the lifecycle because a warm attach needs none of it except the seed contract, which also
says where the project is mounted in the guest (:func:`guest_json`).

Blocking throughout (libvirt, files, qemu-img): the caller runs it in a thread, under the
supervisor lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibebox_core.config import snapshot
from vibebox_core.config.mounts import all_mounts
from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import GUEST_USER, Config
from vibebox_core.errors import SubnetInUseError, VMError
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor import accelerator, access, domain_xml, names, network_xml, virtiofs
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.network import definition
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.session import approve
from vibebox_core.session.guest_secrets import guest_secrets
from vibebox_core.share import guard, pins
from vibebox_core.ssh import keys

#: Tag of the read-only share that seeds the guest (keys, guest.json).
SEED_TAG = "vibebox-seed"
#: Tag of the project share.
PROJECT_TAG = "vibebox-project"
#: Prefix of the extra mounts' tags (``vibebox-m1``, ``vibebox-m2``...).
EXTRA_TAG_PREFIX = "vibebox-m"
#: Hostname of every guest.
GUEST_HOSTNAME = "vibebox"
#: uid/gid the guest user gets when the host user is root.
ROOT_FALLBACK_ID = 1000
#: Subnets tried for the session's network before its start fails (each one libvirt refused
#: as in use is not tried again).
SUBNET_ATTEMPTS = 4


def guest_ids(uid: int | None = None, gid: int | None = None) -> tuple[int, int]:
    """The uid/gid the guest user gets: the host user's, or 1000 when the host user is root."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if uid == 0:
        return ROOT_FALLBACK_ID, ROOT_FALLBACK_ID
    return uid, gid or ROOT_FALLBACK_ID


def mount_shares(config: Config, project: ProjectPaths) -> list[tuple[virtiofs.Share, str]]:
    """The virtiofs shares of the project and extra mounts, each with its guest path."""
    shares: list[tuple[virtiofs.Share, str]] = []
    extra = 0
    for mount in all_mounts(config, project):
        if mount.default:
            tag = PROJECT_TAG
        else:
            extra += 1
            tag = f"{EXTRA_TAG_PREFIX}{extra}"
        shares.append((virtiofs.Share(Path(mount.host), tag, mount.read_only), mount.guest))
    return shares


def guest_json(
    config: Config,
    project: ProjectPaths,
    *,
    env: dict[str, str] | None = None,
    uid: int | None = None,
    gid: int | None = None,
) -> dict[str, Any]:
    """The seed's ``guest.json`` (the seed contract read by the guest's setup at boot)."""
    guest_uid, guest_gid = guest_ids(uid, gid)
    shares = mount_shares(config, project)
    project_guest = next(
        (guest for share, guest in shares if share.tag == PROJECT_TAG),
        f"/home/{GUEST_USER}/{project.name}",
    )
    return {
        "uid": guest_uid,
        "gid": guest_gid,
        "hostname": GUEST_HOSTNAME,
        "project_name": project.name,
        "project_guest_path": project_guest,
        "mounts": [
            {"tag": share.tag, "guest": guest, "read_only": share.read_only}
            for share, guest in shares
        ],
        "env": dict(env or {}),
    }


def write_seed(project: ProjectPaths, data: dict[str, Any], ca_pem: bytes | None = None) -> None:
    """Fill ``.vibebox/seed/``: authorized_keys, the host keypair, guest.json and, for a session
    with secrets, ``ca.crt`` (the session CA the guest trusts; removed when there is none)."""
    seed = project.seed_dir
    seed.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = {
        "authorized_keys": (project.client_pubkey.read_bytes(), 0o644),
        "ssh_host_ed25519_key": (project.host_key.read_bytes(), 0o600),
        "ssh_host_ed25519_key.pub": (project.host_pubkey.read_bytes(), 0o644),
        "guest.json": ((json.dumps(data, indent=2) + "\n").encode(), 0o644),
    }
    if ca_pem is not None:
        files["ca.crt"] = (ca_pem, 0o644)
    else:
        with contextlib.suppress(FileNotFoundError):
            (seed / "ca.crt").unlink()
    for name, (content, mode) in files.items():
        write_atomic(seed / name, content, mode=mode)


def create_overlay(disk: Path, base: Path, size_gb: int) -> bool:
    """Create the instance disk (qcow2 overlay on ``base``) unless it exists; True if made.

    Raises:
        VMError: qemu-img is missing or failed (quotes its output).
    """
    if disk.exists():
        return False
    if shutil.which("qemu-img") is None:
        raise VMError("qemu-img is not installed", hint="apt-get install qemu-utils")
    tmp = disk.with_name(f".{disk.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    command = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        str(base),
        "-F",
        "qcow2",
        str(tmp),
        f"{size_gb}G",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise VMError(
            f"could not create the instance disk {disk}: {result.stderr.strip()}",
            hint=f"check the free space in {disk.parent} and that {base} is readable",
        )
    os.replace(tmp, disk)
    return True


def check_disk_base(project: ProjectPaths, image_name: str, base_sha256: str) -> None:
    """Refuse an instance disk made on another build of the base image.

    The overlay only holds the guest's changes on top of the exact base it was made on; on a
    rebuilt base it reads as a corrupted file system. ``.vibebox/disk-base`` records the base's
    sha256 when the overlay is made.

    Raises:
        VMError: the base image was rebuilt since (hint: recreate the session).
    """
    if not project.disk.exists():
        return
    try:
        recorded = project.disk_base.read_text().strip()
    except OSError:
        return  # made before vibebox recorded it: trust it
    if recorded and recorded != base_sha256:
        raise VMError(
            f"the base image {image_name!r} was rebuilt after this session's disk was made "
            f"(base sha256 {recorded[:12]}…, now {base_sha256[:12]}…); the instance disk only "
            "holds changes on top of the old base and cannot boot on the new one",
            hint="recreate the session (`:new` in the dashboard, or `vibebox delete ID` and "
            "start again); files in the project directory live on the host and are kept, the "
            "guest's own disk is lost",
        )


def check_qemu_access(files: Sequence[Path]) -> None:
    """Refuse to start when QEMU (libvirt-qemu) cannot reach a file it must open.

    Explain, then fix with consent: nothing is changed here; the grant (search permission
    only) is the caller's to make, after asking.

    Raises:
        access.QemuAccessError: a directory on the way blocks libvirt-qemu; its hint is the
            ``setfacl`` command, and the CLI/dashboard may call
            :func:`vibebox_core.hypervisor.access.grant_qemu_access` on ``error.path`` after asking.
    """
    for file in files:
        access.ensure_qemu_can_reach(file)


@dataclass
class Prepared:
    """What :func:`prepare_and_start` settled on: the accelerator, the domain's name and the
    approved config it started with."""

    accel: str
    domain_name: str
    config: Config | None = None


def prepare_and_start(
    project: ProjectPaths,
    config: Config,
    session_id: str,
    hv: Hypervisor,
    clock: ProgressClock,
    progress: ProgressCallback | None,
) -> Prepared:
    """Image, keys, seed, disk, definitions, start. Blocking; run in a thread, under the lock.

    Raises:
        VibeboxError: changed mounts or ``[network]`` await approval
            (:class:`~vibebox_core.config.grants.PolicyNotApprovedError`), or the image, keys,
            disk, QEMU's access to its files or libvirt failed (each with a hint).
    """
    # The guest can edit vibebox.toml: the VM starts from the approved snapshot only;
    # a change (or a first start that grants more than the defaults) needs approval first.
    config = approve.gate(project, session_id)
    pins.check_cache(project.cache)  # a shipped .vibebox symlink would redirect every write
    clock("checking image")
    # Deferred for start-up speed: only a cold start may need the image builder, and a warm
    # attach must not load it (tests/test_imports.py checks).
    from vibebox_core.images import build

    info = build.ensure_image(progress=progress)
    clock("checking image", info.name, done=True)
    keys.ensure_keys(project)
    spec, plan = network_plan(config, session_id, hv)
    # Placeholders and the session CA; the proxy's own variables win over any name.
    secrets = guest_secrets(config, session_id)
    env = {**secrets.env, **plan.guest_env}
    write_seed(project, guest_json(config, project, env=env), secrets.ca_pem)
    check_disk_base(project, info.name, info.artifacts["base_disk"].sha256)
    if create_overlay(project.disk, info.base_disk, config.box.disk_gb):
        clock("instance disk", f"{project.disk.name} ({config.box.disk_gb} GB)", done=True)
        # A fresh guest disk: `[provision] run` is due once SSH answers
        # (vibebox_core/session/provision.py); the marker outlives a start that fails first.
        write_atomic(project.provision_pending, session_id + "\n", mode=0o600)
    project.disk_base.write_text(info.artifacts["base_disk"].sha256 + "\n")
    # Every share runs through the share guard (vibebox_core/share/guard.py): the approved
    # directory by device/inode, and no setuid, device or foreign-owned file on the host.
    shares = guard.guard_shares(
        session_id,
        project.root,
        [(virtiofs.Share(project.seed_dir, SEED_TAG, True), None), *mount_shares(config, project)],
        snapshot.approved_pins(project),
    )
    readonly = virtiofs.install_readonly_virtiofsd()
    check_qemu_access([info.kernel, info.initrd, info.base_disk, project.disk])
    # Asking libvirt about KVM costs a capabilities probe: only when the answer matters.
    kvm = config.box.accel != "tcg" and hv.kvm_available()
    accel = accelerator.resolve_accel(config.box.accel, kvm_available=kvm)
    machine_id = names.canonical_session_id(session_id).replace("-", "")
    name = names.domain_name(project.name, session_id)
    domain = domain_xml.DomainSpec(
        session_id=session_id,
        name=name,
        cpus=config.box.cpus,
        memory_mb=config.box.memory_mb,
        accel=accel,
        kernel=info.kernel,
        initrd=info.initrd,
        disk=project.disk,
        console_log=project.console_log,
        network=spec.name,
        mac=spec.mac,
        cmdline=f"{info.cmdline} systemd.machine_id={machine_id}",
        filesystems=tuple(shares),
        virtiofsd_readonly=readonly,
        project_dir=project.root,
        nwfilter=plan.nwfilter,
    )
    clock("defining VM", name)
    taken: set[ipaddress.IPv4Network] = set()
    while True:
        if plan.nwfilter_xml is not None:
            hv.define_nwfilter(plan.nwfilter_xml)
        net_xml = network_xml.network_xml(spec)
        try:
            changed = project.network_def.read_text() != net_xml
        except OSError:
            changed = True
        hv.define(domain_xml.domain_xml(domain), net_xml)
        if plan.nwfilter is None:  # a filter left unreferenced (every mode has one today)
            hv.undefine_nwfilter(names.nwfilter_name(session_id))
        # The VM is off: when the network's definition changed (policy mode, DNS, subnet),
        # re-create it so isolation and DNS follow the approved policy. Unchanged, it is kept:
        # re-creating costs ~0.5 s of every cold start.
        try:
            hv.start_network(session_id, restart=changed)
        except SubnetInUseError:
            # Another vibebox started a network on the subnet since it was picked (two
            # sessions starting at once), or an interface has it that is no libvirt network:
            # the next free one, and the guest's seed pointed at its gateway.
            taken.add(spec.subnet)
            if len(taken) >= SUBNET_ATTEMPTS:
                raise
            spec, plan = network_plan(config, session_id, hv, taken)
            env = {**secrets.env, **plan.guest_env}
            write_seed(project, guest_json(config, project, env=env), secrets.ca_pem)
            continue
        break
    write_atomic(project.network_def, net_xml.encode())
    clock("starting VM", f"{name} (accel={accel})")
    hv.start(session_id)
    return Prepared(accel, name, config)


def network_plan(
    config: Config,
    session_id: str,
    hv: Hypervisor,
    taken: set[ipaddress.IPv4Network] | frozenset[ipaddress.IPv4Network] = frozenset(),
) -> tuple[network_xml.NetworkSpec, definition.NetworkPlan]:
    """The session network for the (approved) network policy, and how the guest is pointed;
    its subnet is none of ``taken`` (subnets libvirt refused, in use on the host).

    Both modes: an nwfilter that lets the guest open only DHCP, DNS and the proxy on its
    gateway on the host (``vibebox_core.hypervisor.nwfilter``); allowlist: an isolated network;
    blocklist: NAT past the fence. Either way dnsmasq asks only the DNS filter and the
    guest's environment points at the proxy; both run in the supervisor.
    """
    spec = network_xml.NetworkSpec.for_session(
        session_id,
        hv.used_subnets(exclude_session=session_id) | taken,
        current=hv.network_subnet(session_id),
    )
    policy = Policy.from_network(config.network)
    plan = definition.plan_network(session_id, policy, spec.gateway)
    spec = dataclasses.replace(spec, isolated=plan.isolated, dns_forwarder=plan.dns_forwarder)
    return spec, plan
