"""Network policy on the real stack: sites in the lab namespace, curl and raw TCP in the guest.

Test sites are served in a namespace the test run creates behind the lab namespace
(``netlab.py``: the proxy refuses the host's own addresses, so a site on the lab's ``lo`` would
be the host itself), with names in the lab's own hosts file (``/etc/hosts`` under
``ip netns exec vbxlab`` is ``/etc/netns/vbxlab/hosts``). Nothing here talks to the machine's
own network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import ipaddress
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e.netlab import (
    Box,
    LoopThread,
    Site,
    ensure_hosts,
    network_project,
    sites_namespace,
    wait_until,
)

from vibebox_core import paths
from vibebox_core.config.edit import set_value
from vibebox_core.config.grants import PolicyNotApprovedError, record_approval
from vibebox_core.config.load import load_config
from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import PortForward
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.definition import plan_network
from vibebox_core.session import teardown
from vibebox_core.session.running import RunningSession
from vibebox_core.session.start import ensure_running
from vibebox_core.ssh.forward import start_port_forwards
from vibebox_core.supervisor.client import SupervisorConnection

pytestmark = pytest.mark.e2e

ALLOWED_IP = "10.77.0.10"
UNLISTED_IP = "10.77.0.11"
BLOCKED_IP = "10.77.0.12"
RESOLVER_IP = "10.77.0.53"
FORWARD_PORT = 18437
HOSTS_LINES = {
    f"{ALLOWED_IP}\tallowed.vbx.test www.allowed.vbx.test",
    f"{UNLISTED_IP}\tunlisted.vbx.test",
    f"{BLOCKED_IP}\tblocked.vbx.test sub.blocked.vbx.test",
}


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class _Resolver:
    """A UDP "other resolver" that only records what reaches it."""

    sock: socket.socket
    received: list[tuple[str, int]] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                _, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            self.received.append(addr)


@dataclass
class Sites:
    allowed: Site
    allowed_tls: Site
    unlisted: Site
    blocked: Site
    resolver: _Resolver

    def all_requests(self) -> list[tuple[str, str]]:
        return [
            *self.allowed.requests,
            *self.allowed_tls.requests,
            *self.unlisted.requests,
            *self.blocked.requests,
        ]


@pytest.fixture(scope="module")
def lab_sites(require_lab: None) -> Iterator[Sites]:
    ensure_hosts(HOSTS_LINES)
    with (
        sites_namespace([ALLOWED_IP, UNLISTED_IP, BLOCKED_IP, RESOLVER_IP]) as ns,
        tempfile.TemporaryDirectory(prefix="vbx-tls-") as tmp,
    ):
        cert, key = _self_signed(Path(tmp), "allowed.vbx.test")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        allowed_tls = ns.inside(lambda: Site("allowed-tls", (ALLOWED_IP, 443), "says hello"))
        allowed_tls.socket = context.wrap_socket(allowed_tls.socket, server_side=True)

        def resolver_socket() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((RESOLVER_IP, 53))
            return sock

        sites = Sites(
            allowed=ns.inside(lambda: Site("allowed", (ALLOWED_IP, 80), "says hello")),
            allowed_tls=allowed_tls,
            unlisted=ns.inside(lambda: Site("unlisted", (UNLISTED_IP, 80), "says hello")),
            blocked=ns.inside(lambda: Site("blocked", (BLOCKED_IP, 80), "says hello")),
            resolver=_Resolver(ns.inside(resolver_socket)),
        )
        servers = [sites.allowed, sites.allowed_tls, sites.unlisted, sites.blocked]
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
        threads.append(threading.Thread(target=sites.resolver.serve, daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield sites
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
            sites.resolver.sock.close()


def test_lab_sites_answer_inside_the_namespace(lab_sites: Sites) -> None:
    """The fixture itself: names resolve from the namespace's hosts file, sites answer."""
    assert socket.gethostbyname("www.allowed.vbx.test") == ALLOWED_IP
    assert ipaddress.ip_address(
        socket.gethostbyname("sub.blocked.vbx.test")
    ) == ipaddress.ip_address(BLOCKED_IP)
    with socket.create_connection((ALLOWED_IP, 80), timeout=5) as conn:
        conn.sendall(b"GET /probe HTTP/1.0\r\nHost: allowed.vbx.test\r\n\r\n")
        assert b"site allowed says hello" in conn.makefile("rb").read()
    assert ("allowed.vbx.test", "/probe") in lab_sites.allowed.requests


# --------------------------------------------------------------------------- sessions


@dataclass
class Boxes:
    allow: Box
    block: Box


@pytest.fixture(scope="module")
def boxes(e2e_home_shared: Path, lab_sites: Sites) -> Iterator[Boxes]:
    """Two sessions booted at once: an allowlist one and a blocklist one."""
    loop = LoopThread()
    allow = network_project(
        "vbx-net-allow-",
        'mode = "allowlist"\nentries = ["allowed.vbx.test"]\nports = ["18437:8080"]',
    )
    block = network_project(
        "vbx-net-block-", 'mode = "blocklist"\nentries = ["*.blocked.vbx.test"]'
    )

    async def start() -> list[RunningSession]:
        return list(
            await asyncio.gather(
                ensure_running(allow, client="e2e"),
                ensure_running(block, client="e2e"),
            )
        )

    sessions: list[RunningSession] = []
    try:
        sessions = loop.run(start())
        yield Boxes(
            Box("allow", allow, sessions[0], loop),
            Box("block", block, sessions[1], loop),
        )
    finally:
        for session in sessions:
            loop.run(session.close(), 60)
        for project in (allow, block):
            entry = SessionIndex().find_by_directory(project.root)
            if entry is not None:
                loop.run(teardown.delete(entry), 120)
            shutil.rmtree(project.root, ignore_errors=True)
        loop.close()


def _code(box: Box, url: str, *extra: str) -> str:
    """curl's HTTP status (``000`` when no response) for ``url`` from the guest."""
    args = " ".join(shlex.quote(a) for a in extra)
    _, out = box.sh(f"curl -sk -m 15 -o /dev/null -w '%{{http_code}}' {args} {shlex.quote(url)}")
    return out.strip()[-3:]


# allowlist ---------------------------------------------------------------------------------


def test_allowlist_listed_name_works_through_the_proxy(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.allow
    rc, out = box.sh("curl -sS -m 20 http://allowed.vbx.test/allow-http")
    assert rc == 0 and "site allowed says hello" in out, out
    rc, out = box.sh("curl -sSk -m 20 https://www.allowed.vbx.test/allow-https")
    assert rc == 0 and "site allowed-tls says hello" in out, out
    assert ("allowed.vbx.test", "/allow-http") in lab_sites.allowed.requests
    assert ("www.allowed.vbx.test", "/allow-https") in lab_sites.allowed_tls.requests
    assert box.logged("proxy", "allowed.vbx.test", 80, "allowed")
    assert box.logged("proxy", "www.allowed.vbx.test", 443, "allowed")


def test_allowlist_unlisted_name_is_refused(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.allow
    assert _code(box, "http://unlisted.vbx.test/allow-unlisted") == "403"
    rc, out = box.sh("curl -sSk -m 20 https://unlisted.vbx.test/allow-unlisted-tls")
    assert rc != 0 and "403" in out, out
    assert not [r for r in lab_sites.all_requests() if r[1].startswith("/allow-unlisted")]
    assert box.logged("proxy", "unlisted.vbx.test", 80, "blocked")
    assert box.logged("proxy", "unlisted.vbx.test", 443, "blocked")


def test_allowlist_dns_answers_only_listed_names(boxes: Boxes) -> None:
    box = boxes.allow
    rc, out = box.sh("getent hosts allowed.vbx.test")
    assert rc == 0 and ALLOWED_IP in out, out
    rc, out = box.sh("getent hosts unlisted.vbx.test")
    assert rc != 0, out
    assert box.logged("dns", "allowed.vbx.test", 53, "allowed")
    assert box.logged("dns", "unlisted.vbx.test", 53, "blocked")


def _route_around(box: Box, *networks: str) -> None:
    """As root in the guest, route ``networks`` via the gateway (the guest owns its routes)."""
    for network in networks:
        box.sh(f"sudo ip route replace {network} via {box.gateway}")


def test_allowlist_direct_connection_fails(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.allow
    _route_around(box, "10.77.0.0/24")
    rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{ALLOWED_IP}/allow-direct")
    assert rc != 0, out
    rc, out = box.sh("curl -sS -m 5 --noproxy '*' http://allowed.vbx.test/allow-direct-name")
    assert rc != 0, out
    assert not [r for r in lab_sites.all_requests() if r[1].startswith("/allow-direct")]


def test_allowlist_other_resolver_is_unreachable(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.allow
    _route_around(box, "10.77.0.0/24")
    query = "12340100000100000000000007616c6c6f77656403766278047465737400000f0001"
    script = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
        f"s.sendto(bytes.fromhex('{query}'), ('{RESOLVER_IP}', 53)); print(s.recv(512))"
    )
    rc, out = box.sh(f"python3 -c {shlex.quote(script)}")
    assert rc != 0, out
    assert not [addr for addr in lab_sites.resolver.received if addr[0] == box.ip]


def test_allowlist_gateway_service_on_another_port_is_unreachable(boxes: Boxes) -> None:
    box = boxes.allow
    accepted: list[object] = []
    with socket.create_server((box.gateway, 9999)) as server:
        server.settimeout(0.1)
        rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{box.gateway}:9999/")
        assert rc != 0, out
        with contextlib.suppress(TimeoutError):
            accepted.append(server.accept())
    assert accepted == []


def test_allowlist_other_session_is_unreachable(boxes: Boxes) -> None:
    box, other = boxes.allow, boxes.block
    _route_around(box, str(ipaddress.IPv4Network(f"{other.ip}/24", strict=False)))
    rc, out = box.sh(f"timeout 5 bash -c '</dev/tcp/{other.ip}/22'")
    assert rc != 0, out
    # ... and the other session's guest cannot use this session's proxy either: its own host
    # fence drops the packets to another session's gateway, so no connection is made at all
    # (the proxy would refuse it with 403 too, see tests/core/network/test_enforce.py).
    assert _code(other, "http://allowed.vbx.test/", "-x", f"http://{box.gateway}:3128") == "000"


# blocklist ---------------------------------------------------------------------------------


def test_blocklist_listed_name_and_subdomain_do_not_resolve(boxes: Boxes) -> None:
    box = boxes.block
    for name in ("blocked.vbx.test", "sub.blocked.vbx.test"):
        rc, out = box.sh(f"getent hosts {name}")
        assert rc != 0, (name, out)
        assert box.logged("dns", name, 53, "blocked")


def test_blocklist_listed_names_are_refused_by_the_proxy(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.block
    assert _code(box, "http://blocked.vbx.test/block-listed") == "403"
    rc, out = box.sh("curl -sSk -m 20 https://sub.blocked.vbx.test/block-listed")
    assert rc != 0 and "403" in out, out  # the CONNECT was refused
    assert not [r for r in lab_sites.blocked.requests if r[1] == "/block-listed"]
    assert box.logged("proxy", "blocked.vbx.test", 80, "blocked")
    assert box.logged("proxy", "sub.blocked.vbx.test", 443, "blocked")


def test_blocklist_unlisted_name_works(boxes: Boxes, lab_sites: Sites) -> None:
    box = boxes.block
    rc, out = box.sh("curl -sS -m 20 http://unlisted.vbx.test/block-unlisted")
    assert rc == 0 and "site unlisted says hello" in out, out
    assert ("unlisted.vbx.test", "/block-unlisted") in lab_sites.unlisted.requests
    assert box.logged("proxy", "unlisted.vbx.test", 80, "allowed")


# approval ----------------------------------------------------------------------------------


def test_guest_edit_of_vibebox_toml_needs_approval_on_the_host(boxes: Boxes) -> None:
    box = boxes.allow
    guest_toml = f"{box.session.guest_project_path}/vibebox.toml"
    rc, out = box.sh(
        f'sed -i \'s/entries = \\["allowed.vbx.test"\\]/'
        f'entries = ["allowed.vbx.test", "unlisted.vbx.test"]/\' {guest_toml}'
        f" && grep entries {guest_toml}"
    )
    assert rc == 0 and "unlisted.vbx.test" in out, out
    config = load_config(box.project, create=False)
    assert "unlisted.vbx.test" in config.network.entries  # the file really changed
    # Not approved: still refused, even after the supervisor had time to look.
    time.sleep(3)  # two polling rounds of the supervisor; there is no event for "nothing"
    assert _code(box, "http://unlisted.vbx.test/approval-before") == "403"
    # The user approves on the host: applied to the running session, no restart.
    record_approval(SessionIndex(), box.session.session_id, config)
    assert wait_until(lambda: _code(box, "http://unlisted.vbx.test/approval-after") == "200")


def test_start_with_an_unapproved_mount_is_refused(boxes: Boxes) -> None:
    """The start gate: a changed ``mounts`` stops ``ensure_running`` before anything boots.

    (Stops the blocklist session: it is the last test that uses it.)
    """
    box = boxes.block
    assert box.loop.run(teardown.stop(box.project), 120)
    extra = Path(tempfile.mkdtemp(prefix="vbx-net-mount-", dir="/tmp"))
    try:
        set_value(box.project, "box", "mounts", [f"{extra}:/mnt/extra:rw"])
        with pytest.raises(PolicyNotApprovedError) as refused:
            box.loop.run(ensure_running(box.project, client="e2e"))
        assert f"+ mount: {extra} → /mnt/extra (rw)" in refused.value.message
        assert "vibebox approve" in refused.value.hint
        hv = LibvirtHypervisor("qemu:///system")
        try:
            assert hv.state(box.session.session_id) == "shut off"  # nothing was started
        finally:
            hv.close()
    finally:
        shutil.rmtree(extra, ignore_errors=True)


# port forwarding ---------------------------------------------------------------------------


@contextlib.contextmanager
def _www_served(box: Box) -> Iterator[None]:
    """An HTTP server on the guest's 127.0.0.1:8080 serving ``forwarded-ok``, up (curl in the
    guest got the page) for the ``with`` block; held open over the box's SSH and stopped at
    its end."""
    rc, out = box.sh("mkdir -p /tmp/www && echo forwarded-ok > /tmp/www/index.html")
    assert rc == 0, out

    async def serve() -> asyncssh.SSHClientProcess[str]:
        return await box.connection.create_process(
            "exec python3 -m http.server 8080 --bind 127.0.0.1 --directory /tmp/www"
        )

    server = box.loop.run(serve())
    try:
        rc, out = box.sh(
            "for i in $(seq 100); do curl -s -m 2 --noproxy '*' http://127.0.0.1:8080/ && exit 0;"
            " sleep 0.1; done; exit 1"
        )
        assert rc == 0, out
        yield
    finally:
        box.loop.loop.call_soon_threadsafe(server.terminate)


def _fetch_forwarded() -> bytes:
    """The page at the host end of the approved forward (from a thread: the box's loop runs
    the forward)."""
    url = f"http://127.0.0.1:{FORWARD_PORT}/"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        body: bytes = pool.submit(lambda: urllib.request.urlopen(url, timeout=20).read()).result(30)
    return body


def test_forwarded_port_reaches_a_server_in_the_guest(boxes: Boxes) -> None:
    box = boxes.allow
    with _www_served(box):
        # ensure_running opened the approved forward while attached: host 18437 -> guest 8080.
        forwards = box.session.forwards
        assert forwards is not None and forwards.ports == [FORWARD_PORT], forwards
        assert _fetch_forwarded() == b"forwarded-ok\n"
        # A second forward of the same host port is a clear error, not a crash.
        with pytest.raises(NetworkPolicyError, match=f"127.0.0.1:{FORWARD_PORT} is already in use"):
            box.loop.run(start_port_forwards(box.connection, [PortForward(FORWARD_PORT, 8080)]))


def test_the_dashboards_forwards_are_held_by_the_supervisor_while_it_is_attached(
    boxes: Boxes,
) -> None:
    """A dashboard holds no SSH connection: the session's supervisor forwards the approved
    ports on its own, while the connection that asked (the dashboard's attachment) is open,
    and lets the port go when it closes."""
    box = boxes.allow
    assert box.session.forwards is not None
    box.session.forwards.close()  # this process's own forward (the test above) lets go first

    async def attach() -> SupervisorConnection:
        attachment = await SupervisorConnection.open(
            paths.supervisor_socket_path(box.session.session_id)
        )
        await attachment.attach("e2e dashboard")
        return attachment

    with _www_served(box):
        attachment = box.loop.run(attach())
        try:
            assert box.loop.run(attachment.forward_ports()) == []
            assert _fetch_forwarded() == b"forwarded-ok\n"
        finally:
            box.loop.run(attachment.close())
        deadline = time.monotonic() + 10
        while True:  # the supervisor closes the listener once the connection is gone
            try:
                socket.create_connection(("127.0.0.1", FORWARD_PORT), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline, "the forward outlived the attachment"
            time.sleep(0.1)


# nwfilter redefinition -----------------------------------------------------------------------


def test_nwfilter_redefinition_keeps_the_uuid_libvirt_has(require_lab: None) -> None:
    """A filter first defined under another UUID (older vibebox) is redefined with the UUID
    libvirt has: otherwise the next start fails with "filter … already exists with uuid …"."""
    sid = str(uuid.uuid4())
    plan = plan_network(sid, Policy("allowlist", ()), "10.213.251.1")
    assert plan.nwfilter is not None and plan.nwfilter_xml is not None
    old_uuid = str(uuid.uuid4())
    legacy = plan.nwfilter_xml.replace(
        plan.nwfilter_xml.split("<uuid>")[1].split("</uuid>")[0], old_uuid
    )
    hv = LibvirtHypervisor("qemu:///system")
    try:
        hv.define_nwfilter(legacy)
        hv.define_nwfilter(plan.nwfilter_xml)  # used to fail: "already exists with uuid"
        blocklist = plan_network(sid, Policy("blocklist", ()), "10.213.251.1")
        assert blocklist.nwfilter_xml is not None
        hv.define_nwfilter(blocklist.nwfilter_xml)  # a mode change redefines it too
        dumped = subprocess.run(
            ["virsh", "-c", "qemu:///system", "nwfilter-dumpxml", plan.nwfilter],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"<uuid>{old_uuid}</uuid>" in dumped
        assert "NEW,ESTABLISHED,RELATED" in dumped  # the blocklist definition is in force
    finally:
        hv.undefine_nwfilter(plan.nwfilter)
        hv.close()
