"""Network policy on the real stack: sites in the lab namespace, curl and raw TCP in the guest.

Test sites are served inside the lab namespace (DESIGN §6): addresses on the namespace's ``lo``
and names in its own hosts file (``/etc/hosts`` under ``ip netns exec vbxlab`` is
``/etc/netns/vbxlab/hosts``). Nothing here talks to the machine's own network.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ALLOWED_IP = "10.77.0.10"
UNLISTED_IP = "10.77.0.11"
BLOCKED_IP = "10.77.0.12"
RESOLVER_IP = "10.77.0.53"
HOSTS_LINES = {
    f"{ALLOWED_IP}\tallowed.vbx.test www.allowed.vbx.test",
    f"{UNLISTED_IP}\tunlisted.vbx.test",
    f"{BLOCKED_IP}\tblocked.vbx.test sub.blocked.vbx.test",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        self.server.requests.append((self.headers.get("Host", ""), self.path))
        body = f"site {self.server.label} says hello\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, label: str, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.label = label
        self.requests: list[tuple[str, str]] = []


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
    allowed: _Site
    allowed_tls: _Site
    unlisted: _Site
    blocked: _Site
    resolver: _Resolver

    def all_requests(self) -> list[tuple[str, str]]:
        return [
            *self.allowed.requests,
            *self.allowed_tls.requests,
            *self.unlisted.requests,
            *self.blocked.requests,
        ]


def _ensure_address(ip: str) -> bool:
    """Put ``ip`` on the namespace's lo; True when this call added it."""
    done = subprocess.run(
        ["ip", "addr", "add", f"{ip}/32", "dev", "lo"], capture_output=True, text=True
    )
    return done.returncode == 0


def _ensure_hosts() -> None:
    hosts = Path("/etc/hosts")  # the namespace's own file under `ip netns exec`
    present = set(hosts.read_text().splitlines())
    missing = sorted(HOSTS_LINES - present)
    if missing:
        with hosts.open("a") as f:  # append in place: the bind mount keeps the same inode
            f.write("".join(line + "\n" for line in missing))


@pytest.fixture(scope="module")
def lab_sites(require_lab: None) -> Iterator[Sites]:
    added = [ip for ip in (ALLOWED_IP, UNLISTED_IP, BLOCKED_IP, RESOLVER_IP) if _ensure_address(ip)]
    _ensure_hosts()
    with tempfile.TemporaryDirectory(prefix="vbx-tls-") as tmp:
        cert, key = _self_signed(Path(tmp), "allowed.vbx.test")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        allowed_tls = _Site("allowed-tls", (ALLOWED_IP, 443))
        allowed_tls.socket = context.wrap_socket(allowed_tls.socket, server_side=True)
        sites = Sites(
            allowed=_Site("allowed", (ALLOWED_IP, 80)),
            allowed_tls=allowed_tls,
            unlisted=_Site("unlisted", (UNLISTED_IP, 80)),
            blocked=_Site("blocked", (BLOCKED_IP, 80)),
            resolver=_Resolver(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)),
        )
        sites.resolver.sock.bind((RESOLVER_IP, 53))
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
            for ip in added:
                subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)


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
