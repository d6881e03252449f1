"""Test sites "outside" the host for the network e2e tests, in a namespace the test run creates.

The proxy refuses to connect to the host's own addresses, so a site on the lab namespace's
``lo`` would be the host itself. The sites live instead in a child namespace created here
(``vbxsites-<pid>``: VM traffic may reach only addresses in a namespace the test run created
itself, or loopback, never a bridge of the machine's own namespace), joined to the lab
namespace by a veth pair and routed like a next hop: ``10.77.0.0/24`` via ``10.78.0.2``.
Servers are ordinary Python servers of the test process whose sockets were created inside that
namespace (a thread ``setns``-es there, binds, and ends), so the tests read what they received
directly.

A lock file serialises users: two modules cannot route the same site range at once. The HTTP
test site (:class:`Site`), the sites' names in ``/etc/hosts``, the projects with a
``[network]`` table and the helpers to drive booted sessions from module-scoped fixtures
(:class:`LoopThread`, :class:`Box`) live here too, shared by test_netpolicy_e2e.py and
test_hostile_network.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import ipaddress
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from vibebox_core.network.log import NetEvent, tail
from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve, boot
from vibebox_core.session.running import RunningSession

SITES_NET = "10.77.0.0/24"
LINK_HOST = "10.78.0.1"  # the lab namespace's end of the veth ("the host's other network")
LINK_SITES = "10.78.0.2"
_CLONE_NEWNET = 0x40000000
_LOCK = Path("/run/vibebox-lab/netlab.lock")


def _ip(*args: str, netns: str | None = None, check: bool = True) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


class SitesNamespace:
    """The child namespace with the test sites; use :meth:`inside` to create sockets there."""

    def __init__(self, addresses: list[str], routes: list[str] | None = None) -> None:
        tag = f"{os.getpid() % 100000}"
        self.name = f"vbxsites-{tag}"
        self.veth = f"vbs{tag}a"
        self.addresses = addresses
        self.routes = [SITES_NET, *(routes or [])]

    def up(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("addr", "add", f"{LINK_HOST}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("link", "set", "lo", "up", netns=self.name)
        _ip("addr", "add", f"{LINK_SITES}/30", "dev", "eth0", netns=self.name)
        _ip("link", "set", "eth0", "up", netns=self.name)
        _ip("route", "add", "default", "via", LINK_HOST, netns=self.name)
        for address in self.addresses:
            _ip("addr", "add", f"{address}/32", "dev", "lo", netns=self.name)
        for route in self.routes:
            _ip("route", "replace", route, "via", LINK_SITES)

    def down(self) -> None:
        for route in self.routes:
            _ip("route", "del", route, "via", LINK_SITES, check=False)
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.name, check=False)

    def inside(self, make: Callable[[], T]) -> T:
        """Run ``make`` in a thread that joined the sites namespace; sockets stay there."""
        result: list[T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the sites namespace")
                finally:
                    os.close(fd)
                result.append(make())
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return result[0]


@contextlib.contextmanager
def sites_namespace(
    addresses: list[str], routes: list[str] | None = None
) -> Iterator[SitesNamespace]:
    """Create the sites namespace for a module (waiting for another module to finish).

    Args:
        addresses: the sites' addresses (on the namespace's ``lo``).
        routes: networks besides ``10.77.0.0/24`` the lab routes to the sites (e.g. a
            metadata address).
    """
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        local = subprocess.run(
            ["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True
        ).stdout
        stale = [a for a in addresses if f" {a}/" in local]
        for address in stale:  # left on the lab's lo by an older version of these tests
            _ip("addr", "del", f"{address}/32", "dev", "lo", check=False)
        ns = SitesNamespace(addresses, routes)
        ns.down()
        try:
            ns.up()
            yield ns
        finally:
            ns.down()


# --------------------------------------------------------------------------- sites


class _Handler(BaseHTTPRequestHandler):
    server: Site

    def do_GET(self) -> None:
        self.server.requests.append((self.headers.get("Host", ""), self.path))
        body = f"site {self.server.label} {self.server.greeting}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Site(ThreadingHTTPServer):
    """An HTTP test site: answers ``site <label> <greeting>`` and records each request's
    (Host, path)."""

    daemon_threads = True

    def __init__(self, label: str, address: tuple[str, int], greeting: str = "ok") -> None:
        super().__init__(address, _Handler)
        self.label = label
        self.greeting = greeting
        self.requests: list[tuple[str, str]] = []


def ensure_hosts(lines: set[str]) -> None:
    """Add the test sites' names to ``/etc/hosts`` (the lab namespace's own file under
    ``ip netns exec``)."""
    hosts = Path("/etc/hosts")
    present = set(hosts.read_text().splitlines())
    missing = sorted(lines - present)
    if missing:
        with hosts.open("a") as f:  # append in place: the bind mount keeps the same inode
            f.write("".join(line + "\n" for line in missing))


# --------------------------------------------------------------------------- sessions

T = TypeVar("T")
CALL_TIMEOUT = 600.0


def network_project(prefix: str, network: str) -> ProjectPaths:
    """A project directory under /tmp whose ``[network]`` table is ``network``, owned like a
    user's project (the guest user, the host user's uid, can edit it), its first start approved
    on the host."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    (root / "vibebox.toml").write_text(
        "[box]\ncpus = 1\nmemory_mb = 1024\n\n[network]\n" + network + "\n"
    )
    uid, gid = boot.guest_ids()
    for path in (root, root / "vibebox.toml"):
        os.chown(path, uid, gid)
    project = ProjectPaths.for_directory(root)
    approve.approve(project)
    return project


class LoopThread:
    """An event loop in a thread, so module-scoped fixtures can hold asyncssh connections."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.run(cancel_rest(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Box:
    """One running session seen from the test."""

    label: str
    project: ProjectPaths
    session: RunningSession
    loop: LoopThread

    @property
    def connection(self) -> asyncssh.SSHClientConnection:
        """The session's SSH connection (these tests' sessions are started connected)."""
        assert self.session.connection is not None
        return self.session.connection

    @property
    def ip(self) -> str:
        return self.session.ipv4

    @property
    def gateway(self) -> str:
        return str(ipaddress.IPv4Address(self.ip) - 1)

    def sh(self, command: str, timeout: float = 90) -> tuple[int, str]:
        """Run a shell command in the guest (a login-like environment: /etc/environment)."""

        async def go() -> tuple[int, str]:
            result = await self.connection.run(f"bash -c {shlex.quote(command)}", timeout=timeout)
            out = str(result.stdout or "") + str(result.stderr or "")
            return int(result.exit_status or 0), out

        return self.loop.run(go(), timeout + 30)

    def log(self) -> list[NetEvent]:
        return tail(self.project.network_log, 500)

    def logged(self, source: str, host: str, port: int | None, verdict: str) -> bool:
        return any(
            (e.source, e.host, e.port, e.verdict) == (source, host, port, verdict)
            for e in self.log()
        )


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll a condition that has no event to await (a file another process appends to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()
