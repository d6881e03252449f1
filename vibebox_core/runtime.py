"""Session lifecycle: start, attach, stop, delete, recreate, and run commands in a session.

The CLI and the dashboard drive sessions only through this module. It ties the pieces
together: the project's config and the session index, the image store, the SSH keys, the seed
share, the instance disk, the libvirt network and domain (through a
:class:`~vibebox_core.hypervisor.Hypervisor`), and the per-session supervisor that keeps the
reference count.

Start-up, in order (:func:`ensure_running`):

1. Under the supervisor lock (``.vibebox/supervisor.lock``): when a supervisor answers, attach
   to it and go on to SSH. Otherwise clean what a crashed one left, then (unless the VM already
   runs) verify or build the image, make the keys, write the seed share, create the instance
   overlay, define the network and domain and start the VM; then start the supervisor and
   attach. Holding the lock through all this is what makes two ``vibebox`` started at once in
   one directory share one VM.
2. Outside the lock: wait for the DHCP lease, then for SSH with the pinned host key. A lease
   alone proves nothing (it may be left from the previous boot), so only SSH counts. A boot
   that never answers within :func:`boot_timeout` stops with a :class:`VMError` quoting the end
   of the console log and naming ``accel``.

The attachment (a connection to the supervisor) is made *before* waiting for SSH, so a short
``auto_shutdown_ms`` can never shut a VM down while somebody waits for it to boot.

Blocking work (libvirt, files, qemu-img) runs in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncssh

from vibebox_core import (
    access,
    netenforce,
    netpolicy,
    paths,
    portforward,
    relay,
    ssh,
    supervisor,
    vm,
)
from vibebox_core.config import Config, all_mounts, load_config
from vibebox_core.errors import (
    SessionNotFoundError,
    SSHError,
    SupervisorError,
    VibeboxError,
    VMError,
)
from vibebox_core.fileio import write_atomic
from vibebox_core.hypervisor import Hypervisor, LibvirtHypervisor, VMStatus
from vibebox_core.paths import ProjectPaths
from vibebox_core.progress import ProgressCallback, ProgressClock
from vibebox_core.pty import ByteStream
from vibebox_core.sessions import SessionEntry, SessionIndex

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
#: Seconds a boot may take until SSH answers, by accelerator. Measured here under TCG:
#: 31-37 s (DESIGN §6); the bound leaves room for a loaded machine.
BOOT_TIMEOUT = {"tcg": 240.0, "kvm": 90.0}
#: Environment variable that overrides the boot timeout (seconds).
BOOT_TIMEOUT_ENV = "VIBEBOX_BOOT_TIMEOUT"
#: Seconds between DHCP lease checks while the VM boots.
LEASE_POLL = 0.1
#: Seconds a running-but-stopping VM may take before a new start gives up waiting.
STOPPING_WAIT = 60.0


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class SessionStatus:
    """One session as ``vibebox list`` and the session browser show it.

    Attributes:
        entry: the index entry.
        state: ``running``, ``shut off``, ``starting``, ``stopping`` or ``broken``.
        reason: why it is ``broken`` (or a note for other states); empty when all is well.
        attached: how many vibebox processes are attached (0 when no supervisor runs).
        ipv4: the guest's address when running (from ``.vibebox/ipv4``).
        policy: the supervisor's word on the network policy, ``{"applied": "live" | "next
            start", "pending": [lines]}``; None when no supervisor runs (or it has no network).
    """

    entry: SessionEntry
    state: str
    reason: str = ""
    attached: int = 0
    ipv4: str | None = None
    policy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (``vibebox list --json``)."""
        return {
            "id": self.entry.id,
            "directory": str(self.entry.directory),
            "state": self.state,
            "reason": self.reason,
            "attached": self.attached,
            "ipv4": self.ipv4,
            "last_active": self.entry.last_active.isoformat(),
        }


_hypervisors: dict[str, LibvirtHypervisor] = {}
_hypervisors_lock = threading.Lock()


def _close_shared() -> None:
    with _hypervisors_lock:
        for hv in _hypervisors.values():
            hv.close()
        _hypervisors.clear()


# Close before the interpreter tears libvirt's module down (else libvirt's __del__ complains).
atexit.register(_close_shared)


def shared_hypervisor(uri: str) -> Hypervisor:
    """One (thread-safe, lazily connecting) libvirt connection per URI for this process, so
    the dashboard's once-a-second status checks do not open a connection each time."""
    with _hypervisors_lock:
        hv = _hypervisors.get(uri)
        if hv is None:
            hv = _hypervisors[uri] = LibvirtHypervisor(uri)
        return hv


def _hypervisor_for(directory: Path, hypervisor: Hypervisor | None) -> Hypervisor:
    if hypervisor is not None:
        return hypervisor
    return shared_hypervisor(_libvirt_uri(ProjectPaths.for_directory(directory)))


def _libvirt_uri(project: ProjectPaths) -> str:
    """The project's libvirt URI, or the default when its config cannot be read."""
    try:
        return load_config(project, create=False).box.libvirt_uri
    except VibeboxError:
        return "qemu:///system"


def _status_from(entry: SessionEntry, vm_status: VMStatus) -> SessionStatus:
    """Combine the hypervisor's view with the supervisor's count (never raises)."""
    project = ProjectPaths(entry.directory)
    if not project.cache.is_dir():
        return SessionStatus(
            entry, "broken", f"{project.cache} is gone (`vibebox delete {entry.id[:8]}`)"
        )
    answer = supervisor.status_sync(paths.supervisor_socket_path(entry.id), timeout=1.0)
    attached = int(answer.get("attached", 0)) if answer else 0
    state: str = vm_status.state
    reason = vm_status.reason
    if state == "missing":
        state, reason = "shut off", "no VM defined yet (`vibebox` in the project creates it)"
    if answer is not None and answer.get("phase") == "stopping" and state == "running":
        state = "stopping"
    ipv4: str | None = None
    if state == "running":
        with contextlib.suppress(OSError):
            ipv4 = project.ipv4.read_text().strip() or None
    policy = answer.get("policy") if answer else None
    return SessionStatus(
        entry, state, reason, attached, ipv4, policy if isinstance(policy, dict) else None
    )


def session_status(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> SessionStatus:
    """The live state of one session. Never raises: a problem is state ``broken`` with a reason.

    Blocking (libvirt and a socket); call it from a thread in an event loop.
    """
    try:
        hv = _hypervisor_for(entry.directory, hypervisor)
        return _status_from(entry, hv.status(entry.id))
    except VibeboxError as exc:
        reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return SessionStatus(entry, "broken", reason)
    except Exception as exc:  # listing must never fail because of one session
        return SessionStatus(entry, "broken", f"{type(exc).__name__}: {exc}")


def list_statuses(
    index: SessionIndex | None = None, hypervisor: Hypervisor | None = None
) -> list[SessionStatus]:
    """Every session in the index with its live state (one libvirt listing per URI).

    Raises:
        SessionIndexError: the index itself cannot be read (the sessions can't be listed).
    """
    entries = (index or SessionIndex()).entries()
    by_uri: dict[str, Hypervisor] = {}
    listings: dict[str, dict[str, VMStatus] | VibeboxError] = {}
    result: list[SessionStatus] = []
    for entry in entries:
        if hypervisor is not None:
            uri, hv = "given", hypervisor
        else:
            uri = _libvirt_uri(ProjectPaths(entry.directory))
            hv = by_uri.setdefault(uri, shared_hypervisor(uri))
        if uri not in listings:
            try:
                listings[uri] = hv.statuses()
            except VibeboxError as exc:
                listings[uri] = exc
        listing = listings[uri]
        if isinstance(listing, VibeboxError):
            reason = listing.message + (f" ({listing.hint})" if listing.hint else "")
            result.append(SessionStatus(entry, "broken", reason))
            continue
        try:
            found = listing.get(vm.canonical_session_id(entry.id), VMStatus("missing"))
            result.append(_status_from(entry, found))
        except Exception as exc:
            result.append(SessionStatus(entry, "broken", str(exc)))
    return result


# --------------------------------------------------------------------------- preparation


def boot_timeout(accel: str) -> float:
    """Seconds a boot may take until SSH answers (``VIBEBOX_BOOT_TIMEOUT`` overrides)."""
    override = os.environ.get(BOOT_TIMEOUT_ENV)
    if override:
        with contextlib.suppress(ValueError):
            return max(5.0, float(override))
    return BOOT_TIMEOUT.get(accel, BOOT_TIMEOUT["tcg"])


def guest_ids(uid: int | None = None, gid: int | None = None) -> tuple[int, int]:
    """The uid/gid the guest user gets: the host user's, or 1000 when the host user is root."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if uid == 0:
        return ROOT_FALLBACK_ID, ROOT_FALLBACK_ID
    return uid, gid or ROOT_FALLBACK_ID


def mount_shares(config: Config, project: ProjectPaths) -> list[tuple[vm.Share, str]]:
    """The virtiofs shares of the project and extra mounts, each with its guest path."""
    shares: list[tuple[vm.Share, str]] = []
    extra = 0
    for mount in all_mounts(config, project):
        if mount.default:
            tag = PROJECT_TAG
        else:
            extra += 1
            tag = f"{EXTRA_TAG_PREFIX}{extra}"
        shares.append((vm.Share(Path(mount.host), tag, mount.read_only), mount.guest))
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
        f"/home/{ssh.GUEST_USER}/{project.name}",
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


def write_seed(project: ProjectPaths, data: dict[str, Any]) -> None:
    """Fill ``.vibebox/seed/``: authorized_keys, the host keypair and guest.json."""
    seed = project.seed_dir
    seed.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = {
        "authorized_keys": (project.client_pubkey.read_bytes(), 0o644),
        "ssh_host_ed25519_key": (project.host_key.read_bytes(), 0o600),
        "ssh_host_ed25519_key.pub": (project.host_pubkey.read_bytes(), 0o644),
        "guest.json": ((json.dumps(data, indent=2) + "\n").encode(), 0o644),
    }
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
    """Refuse to start when QEMU (libvirt-qemu) cannot reach a file it must open (DESIGN §6).

    Raises:
        access.QemuAccessError: a directory on the way blocks libvirt-qemu; its hint is the
            ``setfacl`` command, and the CLI/dashboard may call
            :func:`vibebox_core.access.grant_qemu_access` on ``error.path`` after asking.
    """
    for file in files:
        access.ensure_qemu_can_reach(file)


@dataclass
class _Prepared:
    accel: str
    domain_name: str


def _prepare_and_start(
    project: ProjectPaths,
    config: Config,
    session_id: str,
    hv: Hypervisor,
    clock: ProgressClock,
    progress: ProgressCallback | None,
) -> _Prepared:
    """Image, keys, seed, disk, definitions, start. Blocking; run in a thread, under the lock."""
    # The guest can edit vibebox.toml (NET): changed mounts or [network] need approval first.
    netpolicy.require_approval(SessionIndex(), session_id, config, project=str(project.root))
    clock("checking image")
    from vibebox_core import images  # cold path only: keeps it off a warm attach's imports

    info = images.ensure_image(progress=progress)
    clock("checking image", info.name, done=True)
    ssh.ensure_keys(project)
    spec, plan = network_plan(config, session_id, hv)
    write_seed(project, guest_json(config, project, env=plan.guest_env))
    check_disk_base(project, info.name, info.artifacts["base_disk"].sha256)
    if create_overlay(project.disk, info.base_disk, config.box.disk_gb):
        clock("instance disk", f"{project.disk.name} ({config.box.disk_gb} GB)", done=True)
    project.disk_base.write_text(info.artifacts["base_disk"].sha256 + "\n")
    shares = [vm.Share(project.seed_dir, SEED_TAG, True)]
    shares += [share for share, _guest in mount_shares(config, project)]
    readonly = vm.install_readonly_virtiofsd()
    check_qemu_access([info.kernel, info.initrd, info.base_disk, project.disk])
    # Asking libvirt about KVM costs a capabilities probe: only when the answer matters.
    kvm = config.box.accel != "tcg" and hv.kvm_available()
    accel = vm.resolve_accel(config.box.accel, kvm_available=kvm)
    machine_id = vm.canonical_session_id(session_id).replace("-", "")
    name = vm.domain_name(project.name, session_id)
    domain = vm.DomainSpec(
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
    if plan.nwfilter_xml is not None:
        hv.define_nwfilter(plan.nwfilter_xml)
    network_xml = vm.network_xml(spec)
    try:
        changed = project.network_def.read_text() != network_xml
    except OSError:
        changed = True
    hv.define(vm.domain_xml(domain), network_xml)
    if plan.nwfilter is None:  # left from an earlier allowlist, now unreferenced
        hv.undefine_nwfilter(netpolicy.nwfilter_name(session_id))
    # The VM is off: when the network's definition changed (policy mode, DNS, subnet),
    # re-create it so isolation and DNS follow the approved policy. Unchanged, it is kept:
    # re-creating costs ~0.5 s of every cold start.
    hv.start_network(session_id, restart=changed)
    write_atomic(project.network_def, network_xml.encode())
    clock("starting VM", f"{name} (accel={accel})")
    hv.start(session_id)
    return _Prepared(accel, name)


def network_plan(
    config: Config, session_id: str, hv: Hypervisor
) -> tuple[vm.NetworkSpec, netenforce.NetworkPlan]:
    """The session network for the (approved) network policy, and how the guest is pointed.

    allowlist: an isolated network and an nwfilter that lets the guest reach only DHCP, DNS
    and the proxy on its gateway; blocklist: NAT. Either way dnsmasq asks only the DNS filter
    and the guest's environment points at the proxy; both run in the supervisor (NET).
    """
    spec = vm.NetworkSpec.for_session(
        session_id,
        hv.used_subnets(exclude_session=session_id),
        current=hv.network_subnet(session_id),
    )
    policy = netpolicy.Policy.from_network(config.network)
    plan = netenforce.plan_network(session_id, policy, spec.gateway)
    spec = dataclasses.replace(spec, isolated=plan.isolated, dns_forwarder=plan.dns_forwarder)
    return spec, plan


# --------------------------------------------------------------------------- running sessions


@dataclass
class RunningSession:
    """A running session this process is attached to, with an open SSH connection.

    Close it (or use it as ``async with``) to detach; the VM stays up for the grace period.

    Attributes:
        project: the project's paths.
        entry: the session's index entry.
        config: the project's config as loaded at start.
        ipv4: the guest's address.
        connection: asyncssh connection as ``vibecoder`` (client key, pinned host key); None
            when :func:`ensure_running` was asked not to connect and the session already ran
            (terminals then come from the supervisor, :func:`open_terminal`).
        attachment: the supervisor connection that counts this process as attached.
        booted: True when this call started the VM (a cold start).
    """

    project: ProjectPaths
    entry: SessionEntry
    config: Config
    ipv4: str
    connection: asyncssh.SSHClientConnection | None
    attachment: supervisor.SupervisorConnection | None
    booted: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: ``[network] ports`` forwarded while attached (NET); ``forwards.problems`` says which not.
    forwards: portforward.PortForwards | None = None

    @property
    def session_id(self) -> str:
        return self.entry.id

    @property
    def guest_project_path(self) -> str:
        """Where the project is mounted in the guest (the shell's starting directory)."""
        return guest_json(self.config, self.project)["project_guest_path"]  # type: ignore[no-any-return]

    async def attached_count(self) -> int | None:
        """The supervisor's count, or None when it cannot be asked."""
        answer = await asyncio.to_thread(
            supervisor.status_sync, paths.supervisor_socket_path(self.session_id)
        )
        return int(answer["attached"]) if answer else None

    async def ssh(self) -> asyncssh.SSHClientConnection:
        """This process's own SSH connection to the guest, made now if there is none.

        Raises:
            SSHError: the guest cannot be reached.
        """
        if self.connection is None:
            self.connection = await ssh.connect(self.project, self.ipv4)
        return self.connection

    async def open_forwards(self, progress: ProgressCallback | None = None) -> None:
        """Forward the approved ``[network] ports`` (host loopback -> guest) while attached.

        Connects first when this process has no SSH connection yet, and only when there is
        something to forward. Each port that cannot be forwarded is reported to ``progress``
        (step ``port forwarding``) and kept in :attr:`forwards`.
        """
        extra = await asyncio.to_thread(lambda: SessionIndex().get(self.session_id).extra)
        ports = portforward.approved_ports(extra, self.config.network.ports)
        if not ports:
            return
        self.forwards = await portforward.open_port_forwards(await self.ssh(), ports)
        clock = ProgressClock(progress)
        for problem in self.forwards.problems:
            clock("port forwarding", f"{problem.message} ({problem.hint})", done=True)

    async def close(self) -> None:
        """Close SSH and detach from the supervisor (idempotent)."""
        if self.forwards is not None:
            self.forwards.close()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()
        if self.attachment is not None:
            await self.attachment.close()
            self.attachment = None

    async def __aenter__(self) -> RunningSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _load(project_dir: str | os.PathLike[str]) -> tuple[ProjectPaths, Config, SessionEntry]:
    project = ProjectPaths.for_directory(project_dir)
    if not project.root.is_dir():
        raise VMError(f"{project.root} is not a directory")
    config = load_config(project)
    entry = SessionIndex().ensure(project.root)
    return project, config, entry


def _wait_not_stopping(hv: Hypervisor, session_id: str) -> str:
    deadline = time.monotonic() + STOPPING_WAIT
    state = hv.state(session_id)
    while state == "stopping" and time.monotonic() < deadline:
        time.sleep(0.25)
        state = hv.state(session_id)
    return state


async def ensure_running(
    project_dir: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
    *,
    hypervisor: Hypervisor | None = None,
    client: str = "vibebox",
    connect: bool = True,
) -> RunningSession:
    """Make sure the project's session runs, attach to it and connect over SSH.

    Creates the session (and, on first use, the base image) when there is none. Safe to call
    from many processes at once: they share one VM.

    Args:
        project_dir: the project directory.
        progress: called with a :class:`~vibebox_core.progress.ProgressEvent` per step.
        hypervisor: a hypervisor to use (default: libvirt at the config's ``libvirt_uri``).
        client: how this process names itself to the supervisor (its log).
        connect: False to skip this process's own SSH connection when the session already
            ran (the dashboard gets its terminal from the supervisor, :func:`open_terminal`);
            a session this call boots is always waited for over SSH. Port forwards are then
            left to :meth:`RunningSession.open_forwards`.

    Returns:
        The attached session; close it to detach.

    Raises:
        VibeboxError: config, index, image, VM, SSH or supervisor problems, each with a hint.
            A boot without SSH within :func:`boot_timeout` is a :class:`VMError` quoting the
            console log and naming ``accel``.
    """
    clock = ProgressClock(progress)
    timings: dict[str, float] = {}
    project, config, entry = await asyncio.to_thread(_load, project_dir)
    session_id = entry.id
    hv = hypervisor or shared_hypervisor(config.box.libvirt_uri)
    socket_path = paths.supervisor_socket_path(session_id)
    booted = False
    accel: str = config.box.accel
    attachment: supervisor.SupervisorConnection | None = None
    lock_fd = await asyncio.to_thread(supervisor._acquire, project.supervisor_lock)
    try:
        kind, _status = await asyncio.to_thread(supervisor.probe, project, session_id)
        if kind != "alive":
            if kind == "stale":
                clock("cleaning up", "a crashed supervisor's files")
                await asyncio.to_thread(supervisor.clean_stale, project, session_id)
            state = await asyncio.to_thread(_wait_not_stopping, hv, session_id)
            if state == "broken":
                status = await asyncio.to_thread(hv.status, session_id)
                raise VMError(
                    f"the VM of this session is broken: {status.reason}",
                    hint="`vibebox stop` then `vibebox`, or recreate it (`:new`)",
                )
            if state != "running":
                prepared = await asyncio.to_thread(
                    _prepare_and_start, project, config, session_id, hv, clock, progress
                )
                accel = prepared.accel
                booted = True
                timings["started"] = clock.elapsed
            await asyncio.to_thread(
                supervisor.spawn,
                project,
                session_id,
                uri=hv.uri,
                grace_ms=config.supervisor.auto_shutdown_ms,
            )
        attachment = await supervisor.SupervisorConnection.open(socket_path)
        await attachment.attach(client)
    except BaseException:
        if attachment is not None:
            await attachment.close()
        raise
    finally:
        os.close(lock_fd)
    timings["attached"] = clock.elapsed
    known = None if connect or booted else await asyncio.to_thread(_known_ipv4, project)
    if known is not None:
        # Warm, and no SSH wanted here: the supervisor runs, so the VM does, at this address.
        running = RunningSession(project, entry, config, known, None, attachment, booted, timings)
        clock("attached", known, done=True)
        return running
    try:
        ipv4, connection = await _connect(project, session_id, hv, clock, accel, booted)
    except BaseException:
        await attachment.close()
        raise
    timings["ssh"] = clock.elapsed
    await asyncio.to_thread(_remember, project, entry, ipv4)
    with contextlib.suppress(SupervisorError):
        await attachment.request("warm")  # the guest answers SSH: its terminals can be ready
    clock("connected", f"{ipv4}", done=True)
    running = RunningSession(project, entry, config, ipv4, connection, attachment, booted, timings)
    if client != "exec" and connect:
        try:  # NET: approved [network] ports, host loopback -> guest, while attached
            await running.open_forwards(progress)
        except BaseException:
            await running.close()
            raise
    return running


def _known_ipv4(project: ProjectPaths) -> str | None:
    try:
        return project.ipv4.read_text().strip() or None
    except OSError:
        return None


async def open_terminal(session: RunningSession, cols: int, rows: int) -> ByteStream:
    """A login shell in a PTY of ``cols`` x ``rows`` on ``session``, opened by its supervisor.

    The supervisor keeps one SSH connection to the guest for every vibebox attached
    (:mod:`vibebox_core.relay`), so this costs no key exchange or login of its own.

    Raises:
        SupervisorError: the supervisor does not answer (it stopped).
        SSHError: the guest refused the shell or cannot be reached.
    """
    socket_path = paths.supervisor_socket_path(session.session_id)
    return await relay.RelayPtyStream.open(socket_path, cols, rows)


#: ``last_active`` is refreshed at most this often (seconds): it is shown in minutes, and each
#: refresh rewrites the index under its lock.
TOUCH_EVERY = 60.0


def _remember(project: ProjectPaths, entry: SessionEntry, ipv4: str) -> None:
    try:
        current = project.ipv4.read_text().strip()
    except OSError:
        current = ""
    if current != ipv4:
        write_atomic(project.ipv4, (ipv4 + "\n").encode())
    age = (datetime.now(UTC) - entry.last_active).total_seconds()
    if age > TOUCH_EVERY or age < 0:
        with contextlib.suppress(VibeboxError):
            SessionIndex().touch(entry.id)


async def _connect(
    project: ProjectPaths,
    session_id: str,
    hv: Hypervisor,
    clock: ProgressClock,
    accel: str,
    booted: bool,
) -> tuple[str, asyncssh.SSHClientConnection]:
    """Wait for the lease, then for SSH with the pinned key, within the boot timeout."""
    limit = boot_timeout(accel)
    deadline = time.monotonic() + limit
    ipv4: str | None = None
    if not booted:
        # Warm: the supervisor runs, so the VM does; its address is on file.
        with contextlib.suppress(OSError):
            ipv4 = project.ipv4.read_text().strip() or None
        if ipv4 is not None:
            try:
                return ipv4, await ssh.connect(project, ipv4)
            except SSHError as exc:
                if "refusing" in exc.message or "refused vibebox's key" in exc.message:
                    raise
                ipv4 = None  # still booting, or the address changed: the slow path below
    clock("waiting for the VM's address", "DHCP lease")
    while ipv4 is None:
        ipv4 = await asyncio.to_thread(hv.lease_ipv4, session_id)
        if ipv4 is not None:
            break
        await _check_alive(hv, session_id, accel, limit)
        if time.monotonic() > deadline:
            raise await _boot_error(hv, session_id, accel, limit, "no DHCP lease")
        await asyncio.sleep(LEASE_POLL)
    clock("waiting for SSH", ipv4)

    async def still_booting() -> bool:
        state = await asyncio.to_thread(hv.state, session_id)
        return state in ("running", "starting")

    try:
        connection = await ssh.connect(
            project, ipv4, deadline=deadline, still_booting=still_booting
        )
    except SSHError as exc:
        if "refusing" in exc.message or "refused vibebox's key" in exc.message:
            raise
        await _check_alive(hv, session_id, accel, limit)
        raise await _boot_error(hv, session_id, accel, limit, exc.message) from exc
    return ipv4, connection


async def _check_alive(hv: Hypervisor, session_id: str, accel: str, limit: float) -> None:
    state = await asyncio.to_thread(hv.state, session_id)
    if state not in ("running", "starting"):
        raise await _boot_error(hv, session_id, accel, limit, f"the VM is {state}", stopped=True)


async def _boot_error(
    hv: Hypervisor, session_id: str, accel: str, limit: float, why: str, *, stopped: bool = False
) -> VMError:
    tail = ""
    with contextlib.suppress(VibeboxError):
        tail = await asyncio.to_thread(hv.console_tail, session_id, 25)
    quoted = "\n".join(f"    {line}" for line in tail.splitlines()) or "    (console log is empty)"
    resolved: vm.Accel = "kvm" if accel == "kvm" else "tcg"
    where = f"the end of its console log (.vibebox/{paths.CACHE_CONSOLE_LOG}):\n{quoted}"
    if stopped:
        return VMError(
            f"the VM stopped while booting with accel={accel} ({why}); {where}",
            hint="libvirt's log of the domain (/var/log/libvirt/qemu/NAME.log) says why QEMU "
            f"ended; {vm.boot_stalled_hint(resolved)}",
        )
    return VMError(
        f"the VM gave no SSH within {limit:.0f} s with accel={accel} ({why}); {where}",
        hint=vm.boot_stalled_hint(resolved),
    )


@contextlib.asynccontextmanager
async def attach(
    project_dir: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
    *,
    hypervisor: Hypervisor | None = None,
    client: str = "vibebox",
) -> AsyncIterator[RunningSession]:
    """``async with attach(dir) as session:`` — :func:`ensure_running`, detached on exit."""
    session = await ensure_running(project_dir, progress, hypervisor=hypervisor, client=client)
    try:
        yield session
    finally:
        await session.close()


# --------------------------------------------------------------------------- stop / delete


def _session_id_of(project: ProjectPaths) -> str:
    try:
        text = project.session_id.read_text().strip()
    except OSError:
        text = ""
    if text:
        return text
    entry = SessionIndex().find_by_directory(project.root)
    if entry is None:
        raise SessionNotFoundError(
            f"{project.root} has no session", hint="`vibebox` in the directory creates one"
        )
    return entry.id


async def stop_session(
    project: ProjectPaths,
    session_id: str,
    hv: Hypervisor,
    *,
    timeout: float = supervisor.SHUTDOWN_TIMEOUT,
) -> bool:
    """Shut the session's VM down (ACPI, forced after ``timeout``); True if it was running.

    When a supervisor runs it does the shutdown (attached vibebox processes are let go) and
    exits; otherwise the VM is stopped directly.
    """
    socket_path = paths.supervisor_socket_path(session_id)
    kind, _ = await asyncio.to_thread(supervisor.probe, project, session_id)
    was_running = False
    if kind == "alive":
        was_running = True
        with contextlib.suppress(SupervisorError):
            conn = await supervisor.SupervisorConnection.open(socket_path)
            with contextlib.suppress(SupervisorError):
                await conn.request("stop", timeout=timeout + 30)
            await conn.wait_closed()
            await conn.close()
    if project.cache.is_dir():
        lock_fd = await asyncio.to_thread(supervisor._acquire, project.supervisor_lock)
    else:
        lock_fd = -1
    try:
        state = await asyncio.to_thread(hv.state, session_id)
        if state not in ("shut off", "missing"):
            was_running = True
            await asyncio.to_thread(lambda: hv.stop(session_id, timeout=timeout))
        if project.cache.is_dir():
            kind, _ = await asyncio.to_thread(supervisor.probe, project, session_id)
            if kind == "stale":
                await asyncio.to_thread(supervisor.clean_stale, project, session_id)
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    return was_running


async def stop(
    project_dir: str | os.PathLike[str], *, hypervisor: Hypervisor | None = None
) -> bool:
    """``vibebox stop``: shut the project's VM down; True if it was running."""
    project = ProjectPaths.for_directory(project_dir)
    session_id = await asyncio.to_thread(_session_id_of, project)
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(_libvirt_uri, project))
    return await stop_session(project, session_id, hv)


def delete_session(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """Delete a session: stop its VM, undefine its domain and network, remove ``.vibebox/``
    and its index entry. Blocking (called by ``vibebox delete``); missing parts are fine.

    Raises:
        VibeboxError: libvirt refused (the index entry and files are then kept, so the
            command can be repeated).
    """
    project = ProjectPaths(entry.directory)
    hv = hypervisor or shared_hypervisor(_libvirt_uri(project))
    asyncio.run(stop_session(project, entry.id, hv, timeout=10.0))
    _delete_rest(entry, hv)


async def delete(entry: SessionEntry, hypervisor: Hypervisor | None = None) -> None:
    """:func:`delete_session` from an event loop (in a thread)."""
    project = ProjectPaths(entry.directory)
    hv = hypervisor or shared_hypervisor(await asyncio.to_thread(_libvirt_uri, project))
    await stop_session(project, entry.id, hv, timeout=10.0)
    await asyncio.to_thread(_delete_rest, entry, hv)


def _delete_rest(entry: SessionEntry, hv: Hypervisor) -> None:
    project = ProjectPaths(entry.directory)
    hv.undefine(entry.id)
    with contextlib.suppress(FileNotFoundError):
        paths.supervisor_socket_path(entry.id).unlink()
    if project.cache.is_dir():
        try:
            shutil.rmtree(project.cache)
        except OSError as exc:
            raise VMError(
                f"cannot remove {project.cache}: {exc.strerror or exc}",
                hint=f"remove it by hand (`rm -rf {project.cache}`)",
            ) from exc
    with contextlib.suppress(SessionNotFoundError):
        SessionIndex().remove(entry.id)


async def recreate(
    project_dir: str | os.PathLike[str], *, hypervisor: Hypervisor | None = None
) -> SessionEntry:
    """``:new``: delete the project's session (VM, disk, keys) and create a fresh entry.

    The new session boots on the next :func:`ensure_running`/:func:`attach`.
    """
    project = ProjectPaths.for_directory(project_dir)
    index = SessionIndex()
    old = await asyncio.to_thread(index.find_by_directory, project.root)
    if old is not None:
        await delete(old, hypervisor)
    elif project.cache.is_dir():
        await asyncio.to_thread(shutil.rmtree, project.cache)
    return await asyncio.to_thread(SessionIndex().create, project.root)


# --------------------------------------------------------------------------- commands


def _fd(stream: IO[Any] | int | None, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        return stream
    return stream.fileno()


def _streamable(fd: int) -> bool:
    """True when asyncssh can stream ``fd``: a regular file, or something epoll accepts."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return True
        poller = select.epoll()
    except OSError:
        return False
    try:
        poller.register(fd, select.EPOLLIN | select.EPOLLOUT)
    except OSError:
        return False
    finally:
        poller.close()
    return True


def _get_blocking(fd: int) -> bool | None:
    try:
        return os.get_blocking(fd)
    except OSError:
        return None


async def run_in_session(
    session: RunningSession,
    argv: Sequence[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> int:
    """Run ``argv`` in the guest (quoted with shlex.join, started in the project mount).

    stdin, stdout and stderr pass through (file objects or descriptors; default this
    process's). Returns the command's exit status (128 + signal when a signal ended it).
    """
    command = ssh.guest_command(list(argv), cwd=session.guest_project_path)
    originals = [_fd(stdin, 0), _fd(stdout, 1), _fd(stderr, 2)]
    blocking = [_get_blocking(fd) for fd in originals]
    connection = await session.ssh()
    # asyncssh takes ownership of (and closes) the descriptors it is given: hand it copies.
    # Descriptors epoll refuses (/dev/null) become asyncssh's DEVNULL.
    fds: list[int] = [os.dup(fd) if _streamable(fd) else asyncssh.DEVNULL for fd in originals]
    try:
        process = await connection.create_process(
            command, stdin=fds[0], stdout=fds[1], stderr=fds[2], encoding=None
        )
    except (OSError, asyncssh.Error) as exc:
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        raise ssh.translate_error(exc, session.ipv4, session.project) from exc
    try:
        completed = await process.wait()
    except (OSError, asyncssh.Error) as exc:
        raise ssh.translate_error(exc, session.ipv4, session.project) from exc
    finally:
        # The pipes asyncssh made non-blocking share their file status with ours.
        for fd, was in zip(originals, blocking, strict=True):
            if was is not None:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, was)
    if completed.exit_status is not None and completed.exit_status >= 0:
        return completed.exit_status
    signame = completed.exit_signal[0] if completed.exit_signal else ""
    signum = getattr(signal, f"SIG{signame}", None)
    return 128 + int(signum) if signum is not None else 255


async def exec_command(
    project_dir: str | os.PathLike[str],
    argv: Sequence[str],
    *,
    stdin: IO[Any] | int | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    progress: ProgressCallback | None = None,
    hypervisor: Hypervisor | None = None,
) -> int:
    """``vibebox exec -- CMD...``: start the session if needed, run one command.

    Returns:
        The command's exit status.
    """
    async with attach(project_dir, progress, hypervisor=hypervisor, client="exec") as session:
        return await run_in_session(session, argv, stdin=stdin, stdout=stdout, stderr=stderr)
