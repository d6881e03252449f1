"""Session lifecycle benchmark: vibebox next to the same steps done raw, same image, same run.

Run inside the lab (as the e2e tests)::

    bash .ci/lab-up
    ip netns exec vbxlab env VIBEBOX_ACCEL=tcg .venv/bin/python tests/bench/bench_sessions.py

It makes one project under /tmp, boots it once with vibebox (image, keys, disk, domain,
network) and stops it, then for each round measures, on that very domain and disk:

* **cold start** (shut off -> first command done). Raw: ``virDomain.create()`` (what
  ``virsh start`` does), poll the DHCP lease, asyncssh connect (pinned key) + ``true``.
  vibebox: ``vibebox exec -- true`` as a user runs it (a new process: config, index, image
  check, supervisor, SSH).
* **warm attach** (running -> command done). Raw: asyncssh connect + ``true``, in this process
  and as a new ``python -c`` process; vibebox: ``session.start.attach`` + ``true`` in-process, and
  ``vibebox exec -- true`` (a new process, like the raw one).
* **shutdown** (running -> shut off). Raw: ACPI shutdown and poll. vibebox: ``vibebox stop``.

Targets on these machines: cold <= 1.05x raw, warm <= 1.3x raw. Prints numbers; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import libvirt

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vibebox_core.config.schema import GUEST_USER  # noqa: E402
from vibebox_core.hypervisor import names  # noqa: E402
from vibebox_core.paths import ProjectPaths  # noqa: E402
from vibebox_core.session.start import attach  # noqa: E402

URI = "qemu:///system"


def cli(project: ProjectPaths, *args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "vibebox_cli.main", *args],
        cwd=project.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"vibebox {' '.join(args)} failed: {result.stderr}")
    return took


async def raw_ssh_true(project: ProjectPaths, ipv4: str, deadline: float) -> None:
    options = asyncssh.SSHClientConnectionOptions(
        username=GUEST_USER,
        client_keys=[str(project.client_key)],
        known_hosts=str(project.known_hosts),
        agent_path=None,
        config=[],
        connect_timeout=10,
    )
    while True:
        try:
            async with asyncssh.connect(ipv4, options=options) as conn:
                await conn.run("true", check=True)
                return
        except (OSError, asyncssh.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def raw_lease(net: object, mac: str) -> str | None:
    leases = net.DHCPLeases(mac, 0)  # type: ignore[attr-defined]
    v4 = [lease for lease in leases if lease.get("type") == 0]
    return str(max(v4, key=lambda x: x.get("expirytime", 0))["ipaddr"]) if v4 else None


def raw_cold(project: ProjectPaths, session_id: str) -> float:
    conn = libvirt.open(URI)
    dom = conn.lookupByUUIDString(session_id)
    net = conn.networkLookupByName(names.network_name(session_id))
    mac = names.mac_address(session_id)
    start = time.monotonic()
    if not net.isActive():
        net.create()
    dom.create()
    ipv4 = None
    while ipv4 is None:
        ipv4 = raw_lease(net, mac)
        if ipv4 is None:
            time.sleep(0.1)
    asyncio.run(raw_ssh_true(project, ipv4, start + 300))
    took = time.monotonic() - start
    conn.close()
    return took


def raw_warm(project: ProjectPaths, ipv4: str) -> float:
    start = time.monotonic()
    asyncio.run(raw_ssh_true(project, ipv4, start + 30))
    return time.monotonic() - start


RAW_PROCESS = """
import asyncio, sys, asyncssh
async def main():
    options = asyncssh.SSHClientConnectionOptions(
        username="vibecoder", client_keys=[sys.argv[2]], known_hosts=sys.argv[3],
        agent_path=None, config=[], connect_timeout=10)
    async with asyncssh.connect(sys.argv[1], options=options) as conn:
        await conn.run("true", check=True)
asyncio.run(main())
"""


def raw_warm_process(project: ProjectPaths, ipv4: str) -> float:
    """The raw warm path as a command, like ``vibebox exec`` (interpreter + asyncssh import)."""
    argv = [sys.executable, "-c", RAW_PROCESS, ipv4, str(project.client_key)]
    start = time.monotonic()
    subprocess.run([*argv, str(project.known_hosts)], check=True)
    return time.monotonic() - start


def raw_shutdown(session_id: str) -> float:
    conn = libvirt.open(URI)
    dom = conn.lookupByUUIDString(session_id)
    start = time.monotonic()
    dom.shutdownFlags(1)
    while dom.isActive():
        time.sleep(0.05)
    took = time.monotonic() - start
    conn.close()
    return took


async def vibebox_warm_inprocess(project: ProjectPaths) -> float:
    start = time.monotonic()
    async with attach(project) as session:
        assert session.connection is not None
        await session.connection.run("true", check=True)
    return time.monotonic() - start


def is_off(session_id: str) -> bool:
    out = subprocess.run(
        ["virsh", "-c", URI, "domstate", session_id], capture_output=True, text=True
    ).stdout
    return out.strip() == "shut off"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warm", type=int, default=5, help="warm attaches per round")
    args = parser.parse_args()

    store = Path(os.environ.get("VIBEBOX_TEST_IMAGES", Path.home() / ".vibebox" / "images"))
    home = Path(tempfile.mkdtemp(prefix="vbx-bench-", dir="/tmp"))
    home.chmod(0o755)
    # A private copy of the image: a rebuild of the shared store during the run (another
    # engineer, CI) must not change the base under the instance disk.
    copy = home / "images" / "debian-12"
    copy.mkdir(parents=True)
    for item in (store / "debian-12").iterdir():
        if item.is_file() and not item.name.startswith("."):
            # Contents only: copy2 would also copy libvirt's security xattrs ("in use").
            shutil.copyfile(item, copy / item.name)
    (home / "images").chmod(0o755)
    copy.chmod(0o755)
    os.environ["VIBEBOX_HOME"] = str(home)
    os.environ.setdefault("VIBEBOX_ACCEL", "tcg")
    root = home / "bench"
    root.mkdir(mode=0o755)
    (root / "vibebox.toml").write_text("[supervisor]\nauto_shutdown_ms = 600000\n")
    project = ProjectPaths.for_directory(root)
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)
        print(f"  {name:<28} {value:7.2f} s", flush=True)

    try:
        print(f"setup: first boot of {root} (image {store}, accel {os.environ['VIBEBOX_ACCEL']})")
        first = cli(project, "exec", "--", "true")
        print(f"  first start (disk, keys, domain, boot): {first:.2f} s")
        session_id = project.session_id.read_text().strip()
        cli(project, "stop")
        for number in range(1, args.rounds + 1):
            print(f"round {number}")
            record("raw cold", raw_cold(project, session_id))
            record("raw shutdown", raw_shutdown(session_id))
            assert is_off(session_id)
            record("vibebox cold (exec)", cli(project, "exec", "--", "true"))
            ipv4 = project.ipv4.read_text().strip()
            # Warm, interleaved so load changes on the machine hit both sides alike.
            for _ in range(args.warm):
                record("raw warm (in-process)", raw_warm(project, ipv4))
                record("vibebox warm (in-process)", asyncio.run(vibebox_warm_inprocess(project)))
                record("raw warm (process)", raw_warm_process(project, ipv4))
                record("vibebox warm (exec)", cli(project, "exec", "--", "true"))
            record("vibebox shutdown (stop)", cli(project, "stop"))
            assert is_off(session_id)
    finally:
        subprocess.run(
            [sys.executable, "-m", "vibebox_cli.main", "delete", "--yes"]
            + ([project.session_id.read_text().strip()] if project.session_id.exists() else []),
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in results.items()}
    print("\nmedians (s) and ratios to raw:")
    rows = [
        ("cold start", "vibebox cold (exec)", "raw cold", 1.05),
        ("warm attach (in-process)", "vibebox warm (in-process)", "raw warm (in-process)", 1.3),
        ("warm attach (as a command)", "vibebox warm (exec)", "raw warm (process)", 1.3),
        ("shutdown", "vibebox shutdown (stop)", "raw shutdown", None),
    ]
    for label, ours, raw, target in rows:
        ratio = med[ours] / med[raw]
        goal = (
            f"target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'}" if target else ""
        )
        print(f"  {label:<28} vibebox {med[ours]:6.2f}  raw {med[raw]:6.2f}  {ratio:5.2f}x  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
