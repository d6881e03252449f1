"""A hostile guest (root via sudo) rewrites the project's vibebox.toml; the host takes none of it.

The project directory is shared read-write with the guest, so everything vibebox.toml says is
untrusted: the host runs from the approved snapshot kept outside the project
(``vibebox_core.config.approval``). Each test here makes one attempt from INSIDE a real guest as
root on the real stack, checks the safe result on the host, and checks that the session still works
afterwards (a command runs). One VM is shared by the module; it boots twice (the first start and the
restart after the resources attempt).

Attempts: a libvirt URI that runs a program (ext / ssh command= / socket=), an unapproved local
URI, mounts of ``/``, ``/etc``, ``..`` and ``.vibebox``, more CPUs/memory/disk, the file
replaced by a FIFO, by a symlink to ``/dev/zero`` and by a huge file, allowlist entries added.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.livesession import URI, delete_session, domstate, run_cli

import vibebox_core.session.approve
from vibebox_core import paths
from vibebox_core.config import approval
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network import log
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import boot
from vibebox_core.session.status import session_status

pytestmark = pytest.mark.e2e

BOOT = 300  # seconds a cold start may take (TCG on a busy 2-core machine)
PROMPT = 60  # seconds a host command may take when the file is hostile (it must not hang)
ALLOWED = "allowed.vbx.test"

APPROVED_TOML = f"""\
[box]
cpus = 1
memory_mb = 1024
disk_gb = 10

[network]
mode = "allowlist"
entries = ["{ALLOWED}"]

[supervisor]
auto_shutdown_ms = 600000
"""


@dataclass
class Hostile:
    project: ProjectPaths
    markers: Path
    session_id: str = ""

    def vibebox(self, *args: str, timeout: float = BOOT) -> subprocess.CompletedProcess[str]:
        """A host ``vibebox`` command in the project directory."""
        return run_cli(self.project.root, *args, timeout=timeout)

    def guest_root(self, script: str) -> subprocess.CompletedProcess[str]:
        """``script`` as root inside the guest, in the project mount (through vibebox exec)."""
        return self.vibebox("exec", "--", "sudo", "sh", "-c", script)

    def guest(self, script: str) -> subprocess.CompletedProcess[str]:
        """``script`` as the guest user (its login environment: the proxy settings)."""
        return self.vibebox("exec", "--", "sh", "-c", script)

    def still_works(self) -> None:
        """The session still runs a command (and its VM was not restarted for it)."""
        result = self.vibebox("exec", "--", "echo", "still-works")
        assert result.returncode == 0 and result.stdout.strip() == "still-works", result

    def restore(self, *, approve: bool = False) -> None:
        """The host user puts the approved file back (as a user who reverts a guest edit);
        ``approve``: and approves it again (after approving something else)."""
        config = self.project.config
        if config.is_symlink() or (config.exists() and not config.is_file()):
            config.unlink()
        config.write_text(APPROVED_TOML)
        os.chown(config, *boot.guest_ids())
        if approve:
            vibebox_core.session.approve.approve(self.project)
        assert approval.review(self.project).status == "approved"

    def domstate(self) -> str:
        return domstate(self.session_id)

    def dumpxml(self) -> str:
        result = subprocess.run(
            ["virsh", "-c", URI, "dumpxml", "--inactive", self.session_id],
            capture_output=True,
            text=True,
        )
        return result.stdout

    def host_commands_stay_safe(self) -> subprocess.CompletedProcess[str]:
        """``vibebox list`` (plain and JSON), the dashboard's status poll (in process) and
        ``vibebox explain``: each returns promptly; list and the poll see the session running
        on the approved URI. Returns explain's result."""
        listed = self.vibebox("list", timeout=PROMPT)
        assert listed.returncode == 0, listed
        assert "Traceback" not in listed.stderr + listed.stdout
        rows = json.loads(self.vibebox("list", "--json", timeout=PROMPT).stdout)
        row = next(r for r in rows if r["id"] == self.session_id)
        assert row["state"] == "running", row
        status = session_status(SessionIndex().get(self.session_id))
        assert status.state == "running", status
        explained = self.vibebox("explain", timeout=PROMPT)
        assert "Traceback" not in explained.stderr + explained.stdout
        return explained


def _clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("vibebox: error: "), result.stderr
    assert lines[-1].startswith("hint: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="module")
def hostile(e2e_home_shared: Path) -> Iterator[Hostile]:
    root = Path(tempfile.mkdtemp(prefix="vbx-hostile-", dir="/tmp"))
    root.chmod(0o755)
    markers = Path(tempfile.mkdtemp(prefix="vbx-hostile-markers-", dir="/tmp"))
    (root / paths.PROJECT_CONFIG).write_text(APPROVED_TOML)
    uid, gid = boot.guest_ids()
    for path in (root, root / paths.PROJECT_CONFIG):
        os.chown(path, uid, gid)  # owned like a user's project: the guest user can edit it
    state = Hostile(ProjectPaths.for_directory(root), markers)
    approved = state.vibebox("approve", "--yes", timeout=PROMPT)  # the user, on the host
    assert approved.returncode == 0, approved
    first = state.vibebox("exec", "--", "id", "-u")
    assert first.returncode == 0, first
    entry = SessionIndex().find_by_directory(state.project.root)
    assert entry is not None
    state.session_id = entry.id
    yield state
    delete_session(state.session_id)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(markers, ignore_errors=True)


# --------------------------------------------------------------------------- libvirt_uri


def test_uri_that_runs_a_program_is_never_used(hostile: Hostile) -> None:
    marker = hostile.markers / "ran-on-the-host"
    script = hostile.project.root / "x.sh"
    uris = [
        f"qemu+ext:///system?command={script}",
        f"qemu+ssh://root@127.0.0.1/system?command={script}",
        f"qemu:///system?socket={hostile.markers}/evil.sock",
    ]
    for uri in uris:
        wrote = hostile.guest_root(
            f"printf '#!/bin/sh\\ntouch {marker}\\n' > x.sh && chmod 755 x.sh && "
            f"printf '[box]\\nlibvirt_uri = \"%s\"\\n' {shlex.quote(uri)} > vibebox.toml"
        )
        assert wrote.returncode == 0, wrote
        assert uri in hostile.project.config.read_text()
        explained = hostile.host_commands_stay_safe()
        _clean_error(explained, "box.libvirt_uri")
        _clean_error(hostile.vibebox("approve", "--yes", timeout=PROMPT), "libvirt_uri")
        assert not marker.exists(), f"{uri} ran a program on the host"
    assert approval.enforced_uri(hostile.project) == URI
    hostile.still_works()  # a running session is attached to as approved
    assert not marker.exists()
    hostile.restore()


def test_unapproved_local_uri_does_not_drive_status_polls(hostile: Hostile) -> None:
    wrote = hostile.guest_root(
        "sed -i 's|^cpus = 1$|&\\nlibvirt_uri = \"qemu:///session\"|' vibebox.toml"
    )
    assert wrote.returncode == 0, wrote
    assert 'libvirt_uri = "qemu:///session"' in hostile.project.config.read_text()
    found = approval.review(hostile.project)
    assert found.needs_approval and "~ libvirt_uri: qemu:///system → qemu:///session" in found.diff
    hostile.host_commands_stay_safe()  # still "running": polled on qemu:///system
    explained = hostile.vibebox("explain", timeout=PROMPT)
    assert "NOT approved and NOT enforced" in explained.stdout
    assert "~ libvirt_uri: qemu:///system → qemu:///session" in explained.stdout
    hostile.still_works()
    hostile.restore()


# --------------------------------------------------------------------------- mounts


def test_mounts_of_root_parent_and_vibebox_are_refused(hostile: Hostile) -> None:
    for spec in ("/:/mnt/host", "..:/mnt/up", "./.vibebox:/mnt/keys", "./.vibebox/..:/mnt/p"):
        wrote = hostile.guest_root(
            f"printf '[box]\\nmounts = [\"%s\"]\\n' {shlex.quote(spec)} > vibebox.toml"
        )
        assert wrote.returncode == 0, wrote
        explained = hostile.host_commands_stay_safe()
        _clean_error(explained, "box.mounts")
        _clean_error(hostile.vibebox("approve", "--yes", timeout=PROMPT), "box.mounts")
    assert approval.enforced_config(hostile.project).box.mounts == ()
    hostile.still_works()
    hostile.restore()


def test_mount_of_etc_waits_for_approval(hostile: Hostile) -> None:
    wrote = hostile.guest_root(
        "sed -i 's|^disk_gb = 10$|&\\nmounts = [\"/etc:/mnt/etc\"]|' vibebox.toml && "
        "grep -q /mnt/etc vibebox.toml"
    )
    assert wrote.returncode == 0, wrote
    found = approval.review(hostile.project)
    assert found.needs_approval and "+ mount: /etc → /mnt/etc (rw)" in found.diff
    explained = hostile.vibebox("explain", "--json", timeout=PROMPT)
    data = json.loads(explained.stdout)
    assert all(m["host"] != "/etc" for m in data["mounts"])  # not enforced
    assert "+ mount: /etc → /mnt/etc (rw)" in data["approval"]["pending"]
    # Nothing of it in the running guest either.
    seen = hostile.guest("mountpoint -q /mnt/etc && echo mounted || echo absent")
    assert seen.returncode == 0 and seen.stdout.strip() == "absent", seen
    hostile.still_works()
    hostile.restore()


# --------------------------------------------------------------------------- the file itself


def test_config_replaced_by_a_fifo_never_hangs_the_host(hostile: Hostile) -> None:
    made = hostile.guest_root("rm -f vibebox.toml && mkfifo vibebox.toml && test -p vibebox.toml")
    if made.returncode != 0 or not hostile.project.config.is_fifo():
        # The share refused the FIFO (a safe result on its own): plant it on the host side to
        # check the readers anyway.
        hostile.project.config.unlink(missing_ok=True)
        os.mkfifo(hostile.project.config)
    start = time.monotonic()
    explained = hostile.host_commands_stay_safe()
    _clean_error(explained, "FIFO")
    assert time.monotonic() - start < 4 * PROMPT
    hostile.still_works()
    hostile.restore()


def test_config_symlink_to_dev_zero_never_hangs_the_host(hostile: Hostile) -> None:
    made = hostile.guest_root("rm -f vibebox.toml && ln -s /dev/zero vibebox.toml")
    assert made.returncode == 0, made
    assert hostile.project.config.is_symlink()
    explained = hostile.host_commands_stay_safe()
    _clean_error(explained, "symlink")
    _clean_error(hostile.vibebox("approve", "--yes", timeout=PROMPT), "symlink")
    hostile.still_works()
    hostile.restore()


def test_config_of_many_megabytes_is_refused(hostile: Hostile) -> None:
    made = hostile.guest_root(
        "{ cat vibebox.toml; head -c 3000000 /dev/zero | tr '\\0' '#'; echo; } > big && "
        "mv big vibebox.toml"
    )
    assert made.returncode == 0, made
    assert hostile.project.config.stat().st_size > 3_000_000
    explained = hostile.host_commands_stay_safe()
    _clean_error(explained, "bytes")
    hostile.still_works()
    hostile.restore()


# --------------------------------------------------------------------------- network


def test_added_allowlist_entries_are_not_enforced(hostile: Hostile) -> None:
    before = hostile.guest("curl -s -m 15 -o /dev/null -w '%{http_code}' http://evil.vbx.test/")
    assert before.stdout.strip()[-3:] == "403", before
    wrote = hostile.guest_root(
        f'sed -i \'s/^entries = .*$/entries = ["{ALLOWED}", "evil.vbx.test", '
        '"*.vbx.test"]/\' vibebox.toml && grep -q evil vibebox.toml'
    )
    assert wrote.returncode == 0, wrote
    time.sleep(5)  # two rounds of the supervisor's approval polling (there is no event)
    after = hostile.guest("curl -s -m 15 -o /dev/null -w '%{http_code}' http://evil.vbx.test/")
    assert after.stdout.strip()[-3:] == "403", after  # the proxy still refuses it
    data = json.loads(hostile.vibebox("explain", "--json", timeout=PROMPT).stdout)
    assert data["network"]["entries"] == [ALLOWED]
    assert "+ network entry: evil.vbx.test" in data["approval"]["pending"]
    hostile.still_works()
    # The control: once the host user approves it, the running session enforces it.
    approved = hostile.vibebox("approve", "--yes", timeout=PROMPT)
    assert approved.returncode == 0 and "applies it now" in approved.stdout, approved

    def judged_by_policy() -> bool:
        """The proxy's latest word on evil.vbx.test is no longer "not in the allowlist" (it may
        still refuse the name for its address, or fail to resolve it: not the policy)."""
        probe = hostile.guest("curl -s -m 15 -o /dev/null -w '%{http_code}' http://evil.vbx.test/")
        if probe.stdout.strip()[-3:] != "403":
            return True
        events = [
            e
            for e in log.tail(hostile.project.network_log, 200)
            if e.source == "proxy" and e.host == "evil.vbx.test"
        ]
        return bool(events) and "allowlist" not in events[-1].reason

    deadline = time.monotonic() + 30
    while not judged_by_policy():
        assert time.monotonic() < deadline, "the approved entry was not applied"
        time.sleep(1)
    hostile.restore(approve=True)
    blocked = hostile.guest("curl -s -m 15 -o /dev/null -w '%{http_code}' http://evil.vbx.test/")
    deadline = time.monotonic() + 30
    while blocked.stdout.strip()[-3:] != "403" and time.monotonic() < deadline:
        time.sleep(1)
        blocked = hostile.guest(
            "curl -s -m 15 -o /dev/null -w '%{http_code}' http://evil.vbx.test/"
        )
    assert blocked.stdout.strip()[-3:] == "403", blocked


# --------------------------------------------------------------------------- resources


def test_more_cpus_memory_and_disk_are_not_applied(hostile: Hostile) -> None:
    wrote = hostile.guest_root(
        "sed -i -e 's/^cpus = 1$/cpus = 2/' -e 's/^memory_mb = 1024$/memory_mb = 3072/' "
        "-e 's/^disk_gb = 10$/disk_gb = 60/' vibebox.toml && grep -q 'cpus = 2' vibebox.toml"
    )
    assert wrote.returncode == 0, wrote
    defined = hostile.dumpxml()
    stopped = hostile.vibebox("stop", timeout=180)
    assert stopped.returncode == 0, stopped
    refused = hostile.vibebox("exec", "--", "nproc")
    _clean_error(refused, "~ cpus: 1 → 2", "~ memory_mb: 1024 → 3072", "vibebox approve")
    assert hostile.domstate() == "shut off"  # nothing started
    assert hostile.dumpxml() == defined  # nothing redefined
    hostile.restore()
    nproc = hostile.vibebox("exec", "--", "nproc")  # boots again, as approved
    assert nproc.returncode == 0 and nproc.stdout.strip() == "1", nproc
    mem = hostile.vibebox("exec", "--", "grep", "MemTotal", "/proc/meminfo")
    assert mem.returncode == 0 and int(mem.stdout.split()[1]) < 1100 * 1024, mem
    hostile.still_works()
