"""Secrets on the real stack: the guest holds placeholders, the host's proxy sends the values.

One session boots with two ``[[secrets]]`` (one read from the host's environment, one from a
host file) and an allowlist. The test sites are HTTPS servers in the lab's sites namespace
(``netlab.py``) with certificates from a test CA of their own, which the supervisor trusts
through ``SSL_CERT_FILE`` (OpenSSL's default verify paths, as a user's proxy or corporate CA
would be trusted); the guest trusts only the public roots and the session's CA. Everything runs
as an attacker would try it, from inside the guest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mmap
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e.livesession import run_cli
from e2e.netlab import Box, LoopThread, ensure_hosts, network_project, sites_namespace, wait_until

from vibebox_core import paths
from vibebox_core.config.approval import review
from vibebox_core.config.grants import PolicyNotApprovedError
from vibebox_core.hypervisor import names
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.session import approve, teardown
from vibebox_core.session.start import ensure_running

pytestmark = pytest.mark.e2e

SECRET_IP = "10.77.0.30"  # api.secret.vbx.test: carries VBX_TOKEN
OTHER_IP = "10.77.0.31"  # other.vbx.test: carries VBX_KEY only
PLAIN_IP = "10.77.0.32"  # plain.vbx.test: allowed, no secret (a blind tunnel)
LATER_IP = "10.77.0.33"  # later.vbx.test: not allowed until `vibebox allow`
NAMES = {
    SECRET_IP: "api.secret.vbx.test",
    OTHER_IP: "other.vbx.test",
    PLAIN_IP: "plain.vbx.test",
    LATER_IP: "later.vbx.test",
}
PLACEHOLDER = re.compile(r"vbxph_[0-9a-f]{40}")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- the sites


def _lab_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA ("the public roots" of the lab) and one leaf for every site name."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vibebox lab public CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vbx lab sites")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES.values()]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "site.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    server: SecretSite
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append((self.headers.get("Host", ""), self.path, dict(self.headers)))
        if self.path.startswith("/events"):
            # Server-sent events: the second one waits for the test, which first checks that
            # the guest already received the first (nothing buffered on the way).
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"data: one\n\n")
            self.wfile.flush()
            self.server.release.wait(120)
            self.wfile.write(b"data: two\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        # Echo digests, never the headers: the real value must not come back into the guest.
        body = json.dumps(
            {
                "site": self.server.label,
                "auth": _sha(self.headers.get("Authorization", "")),
                "key": _sha(self.headers.get("x-api-key", "")),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SecretSite(ThreadingHTTPServer):
    """An HTTPS test site that records every request's (Host, path, headers)."""

    daemon_threads = True

    def __init__(self, label: str, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.label = label
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.release = threading.Event()

    def paths_seen(self) -> list[str]:
        return [path for _, path, _ in self.seen]


@dataclass
class Lab:
    sites: dict[str, SecretSite]
    token: str  # VBX_TOKEN's real value (from the host's environment)
    key: str  # VBX_KEY's real value (from a host file)
    key_file: Path


@pytest.fixture(scope="module")
def lab(require_lab: None) -> Iterator[Lab]:
    ensure_hosts({f"{ip}\t{name}" for ip, name in NAMES.items()})
    token, key = "tok-" + secrets.token_hex(24), "key-" + secrets.token_hex(24)
    with (
        sites_namespace(list(NAMES)) as ns,
        tempfile.TemporaryDirectory(prefix="vbx-secret-pki-") as tmp,
        pytest.MonkeyPatch.context() as mp,
    ):
        ca, cert, private = _lab_pki(Path(tmp))
        key_file = Path(tmp) / "vbx-key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        # The supervisor inherits this process's environment: the host's trust store and the
        # env: source of VBX_TOKEN.
        mp.setenv("SSL_CERT_FILE", str(ca))
        mp.setenv("VBX_E2E_TOKEN", token)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, private)

        def https_site(ip: str, name: str) -> SecretSite:
            site = ns.inside(lambda: SecretSite(name, (ip, 443)))
            site.socket = context.wrap_socket(site.socket, server_side=True)
            return site

        sites = {name: https_site(ip, name) for ip, name in NAMES.items()}
        plain_http = ns.inside(lambda: SecretSite("other-http", (OTHER_IP, 80)))
        sites["other-http"] = plain_http
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in sites.values()]
        for thread in threads:
            thread.start()
        try:
            yield Lab(sites, token, key, key_file)
        finally:
            for site in sites.values():
                site.release.set()
                site.shutdown()
                site.server_close()


@pytest.fixture(scope="module")
def box(e2e_home_shared: Path, lab: Lab) -> Iterator[Box]:
    loop = LoopThread()
    project = network_project(
        "vbx-secrets-",
        "# the sites of this test; later.vbx.test comes with `vibebox allow`\n"
        'mode = "allowlist"\n'
        'entries = ["secret.vbx.test", "other.vbx.test", "plain.vbx.test"]\n\n'
        "[[secrets]]\n"
        'name = "VBX_TOKEN"\n'
        'hosts = ["api.secret.vbx.test"]\n'
        'source = "env:VBX_E2E_TOKEN"\n\n'
        "[[secrets]]\n"
        'name = "VBX_KEY"\n'
        'hosts = ["other.vbx.test"]\n'
        f'source = "file:{lab.key_file}"\n',
    )
    session = None
    try:
        session = loop.run(ensure_running(project, client="e2e"))
        yield Box("secrets", project, session, loop)
    finally:
        if session is not None:
            loop.run(session.close(), 60)
        entry = SessionIndex().find_by_directory(project.root)
        if entry is not None:
            loop.run(teardown.delete(entry), 120)
            assert not paths.session_secrets_dir(entry.id).exists()
        shutil.rmtree(project.root, ignore_errors=True)
        loop.close()


def _curl(box: Box, url: str, *headers: str) -> tuple[int, str]:
    """curl in the guest as the guest user, verifying certificates with the guest's store.

    The headers go in double quotes: the guest's bash expands ``$VBX_TOKEN`` in them.
    """
    args = " ".join(f'-H "{h}"' for h in headers)
    return box.sh(f"curl -sS -m 30 {args} {shlex.quote(url)}")


# --------------------------------------------------------------------------- the tests


def test_guest_sees_placeholders_never_values(box: Box, lab: Lab) -> None:
    rc, out = box.sh('printf "%s %s\\n" "$VBX_TOKEN" "$VBX_KEY"')
    assert rc == 0, out
    token, key = out.split()
    assert PLACEHOLDER.fullmatch(token) and PLACEHOLDER.fullmatch(key), out
    assert token != key
    done = run_cli(box.project.root, "exec", "--", "printenv", "VBX_TOKEN", timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == token, done.stderr


def test_request_to_a_listed_host_carries_the_real_value(box: Box, lab: Lab) -> None:
    rc, out = _curl(box, "https://api.secret.vbx.test/echo", "Authorization: Bearer $VBX_TOKEN")
    assert rc == 0, out
    answer = json.loads(out)
    assert answer["auth"] == _sha(f"Bearer {lab.token}"), out
    seen = [h for _, p, h in lab.sites["api.secret.vbx.test"].seen if p == "/echo"]
    assert seen and seen[-1].get("Authorization") == f"Bearer {lab.token}"
    assert wait_until(
        lambda: any(
            e.host == "api.secret.vbx.test" and "injected VBX_TOKEN" in e.reason for e in box.log()
        )
    ), [e.reason for e in box.log()]
    # Python's own TLS trusts the session CA too (the system store, SSL_CERT_FILE).
    script = (
        "import json, os, urllib.request as u; "
        "r = u.Request('https://api.secret.vbx.test/py', "
        "headers={'Authorization': 'Bearer ' + os.environ['VBX_TOKEN']}); "
        "print(json.load(u.urlopen(r, timeout=30))['auth'])"
    )
    rc, out = box.sh(f"python3 -c {shlex.quote(script)}")
    assert rc == 0 and out.strip() == _sha(f"Bearer {lab.token}"), out
    # A second secret, from a host file, in another header, to its own host.
    rc, out = _curl(box, "https://other.vbx.test/echo", "x-api-key: $VBX_KEY")
    assert rc == 0 and json.loads(out)["key"] == _sha(lab.key), out


def test_placeholder_to_an_unlisted_host_is_refused(box: Box, lab: Lab) -> None:
    # other.vbx.test is intercepted (it carries VBX_KEY), but VBX_TOKEN is not for it.
    _, out = box.sh(
        "curl -s -m 30 -o /dev/null -w '%{http_code}' "
        '-H "Authorization: Bearer $VBX_TOKEN" https://other.vbx.test/steal-token'
    )
    assert out.strip()[-3:] == "403", out
    # Plain HTTP never carries a secret, not even to the secret's own host.
    _, out = box.sh(
        "curl -s -m 30 -o /dev/null -w '%{http_code}' "
        '-H "x-api-key: $VBX_KEY" http://other.vbx.test/steal-plain'
    )
    assert out.strip()[-3:] == "403", out
    for site in lab.sites.values():
        assert not [p for p in site.paths_seen() if p.startswith("/steal")], site.label
    assert wait_until(
        lambda: any(
            e.verdict == "blocked" and "VBX_TOKEN" in e.reason and e.host == "other.vbx.test"
            for e in box.log()
        )
    )


def test_other_hosts_stay_blind_tunnels(box: Box, lab: Lab) -> None:
    # plain.vbx.test carries no secret: the guest sees the site's own certificate (which it
    # does not trust: -k), not one from the session CA.
    rc, out = box.sh("curl -sSkv -m 30 https://plain.vbx.test/blind 2>&1")
    assert rc == 0 and "vibebox lab public CA" in out and "vibebox session CA" not in out, out
    rc, out = box.sh("curl -sS -m 30 https://plain.vbx.test/blind-verified 2>&1")
    assert rc != 0, out  # the lab's CA is not the guest's: nothing was intercepted


def test_streaming_responses_arrive_unbuffered(box: Box, lab: Lab) -> None:
    site = lab.sites["api.secret.vbx.test"]
    box.sh(
        'setsid nohup curl -sN -m 120 -H "Authorization: Bearer $VBX_TOKEN" '
        "https://api.secret.vbx.test/events >/tmp/events.out 2>&1 </dev/null &"
    )
    try:
        assert wait_until(lambda: "data: one" in box.sh("cat /tmp/events.out")[1], 60)
        assert "data: two" not in box.sh("cat /tmp/events.out")[1]
    finally:
        site.release.set()
    assert wait_until(lambda: "data: two" in box.sh("cat /tmp/events.out")[1], 60)


def _find_in_file(path: Path, needles: list[bytes]) -> list[bool]:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return [m.find(needle) >= 0 for needle in needles]


def test_guest_memory_environment_and_disk_never_hold_the_values(box: Box, lab: Lab) -> None:
    """Searched from the host: a search inside the guest would bring the value in with it."""
    values = [lab.token.encode(), lab.key.encode()]
    # Every process's environment, read as root in the guest and searched here.
    _, out = box.sh("sudo sh -c 'cat /proc/[0-9]*/environ' | tr '\\0' '\\n'")
    assert "vbxph_" in out  # the placeholders are there
    assert not [v for v in values if v.decode() in out]
    # The guest's disk: what it wrote lands in the instance overlay on the host.
    marker = "marker-" + secrets.token_hex(16)
    rc, out = box.sh(f"echo {marker} | sudo tee /var/tmp/vbx-marker >/dev/null && sync")
    assert rc == 0, out
    found = _find_in_file(box.project.disk, [marker.encode(), *values])
    assert found[0], "the overlay scan does not see what the guest writes"
    assert not any(found[1:]), "a secret's value is on the guest's disk"
    # The guest's memory (the page cache, tmpfs /run, every process), dumped by libvirt.
    entry = SessionIndex().find_by_directory(box.project.root)
    assert entry is not None
    domain = names.domain_name(box.project.name, entry.id)
    with tempfile.TemporaryDirectory(prefix="vbx-memdump-", dir="/tmp") as tmp:
        dump = Path(tmp) / "memory.elf"
        subprocess.run(
            ["virsh", "-c", "qemu:///system", "dump", domain, str(dump), "--memory-only"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        found = _find_in_file(dump, [b"vbxph_", marker.encode(), *values])
        assert found[0] and found[1], "the dump is not the guest's memory"
        assert not any(found[2:]), "a secret's value is in the guest's memory"


def test_values_are_never_written_on_the_host(box: Box, lab: Lab) -> None:
    home = Path(os.environ["VIBEBOX_HOME"])
    places = [box.project.root, *[p for p in home.iterdir() if p.name != "images"]]
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        for path in files:
            with path.open("rb") as handle:
                data = handle.read()
            for value in (lab.token, lab.key):
                assert value.encode() not in data, path


def test_explain_shows_names_hosts_and_kinds_only(box: Box, lab: Lab) -> None:
    done = run_cli(box.project.root, "explain", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "VBX_TOKEN" in done.stdout and "api.secret.vbx.test" in done.stdout
    assert lab.token not in done.stdout and lab.key not in done.stdout
    assert str(lab.key_file) not in done.stdout  # the kind ("file"), not where


def test_guest_edit_of_secrets_is_not_applied_unapproved(box: Box, lab: Lab) -> None:
    config = box.project.root / "vibebox.toml"
    before = config.read_text()
    steal = (
        '\n[[secrets]]\nname = "VBX_STEAL"\nhosts = ["other.vbx.test"]\n'
        'source = "env:VBX_E2E_TOKEN"\n'
    )
    guest_path = box.sh("cat /run/vibebox/project-path")[1].strip()
    rc, out = box.sh(f"printf %s {shlex.quote(steal)} >> {guest_path}/vibebox.toml")
    assert rc == 0, out
    try:
        found = review(box.project)
        assert found.status == "changed"
        assert any("VBX_STEAL" in line for line in found.diff), found.diff
        with pytest.raises(PolicyNotApprovedError):
            approve.gate(box.project)
        # The running proxy still knows only the approved two: VBX_TOKEN stays refused there.
        _, out = box.sh(
            "curl -s -m 30 -o /dev/null -w '%{http_code}' "
            '-H "x-api-key: $VBX_TOKEN" https://other.vbx.test/steal-edit'
        )
        assert out.strip()[-3:] == "403", out
    finally:
        config.write_text(before)


def test_vibebox_allow_opens_a_blocked_host_live(box: Box, lab: Lab) -> None:
    _, out = box.sh("curl -s -m 30 -o /dev/null -w '%{http_code}' -k https://later.vbx.test/x")
    assert out.strip()[-3:] != "200", out
    rc, out = box.sh("getent hosts later.vbx.test")
    assert rc != 0, out  # the allowlist's DNS does not answer it
    done = run_cli(box.project.root, "allow", "later.vbx.test", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    _, out = box.sh("curl -s -m 30 -o /dev/null -w '%{http_code}' -k https://later.vbx.test/y")
    assert out.strip()[-3:] == "200", out
    rc, out = box.sh("getent hosts later.vbx.test")
    assert rc == 0 and LATER_IP in out, out  # and the DNS filter follows at once
    assert "/y" in lab.sites["later.vbx.test"].paths_seen()
    text = (box.project.root / "vibebox.toml").read_text()
    assert "later.vbx.test" in text and "# the sites of this test" in text  # comments kept
    done = run_cli(box.project.root, "block", "later.vbx.test", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    _, out = box.sh("curl -s -m 30 -o /dev/null -w '%{http_code}' -k https://later.vbx.test/z")
    assert out.strip()[-3:] != "200", out
    assert "/z" not in lab.sites["later.vbx.test"].paths_seen()
