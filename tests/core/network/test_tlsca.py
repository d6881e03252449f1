"""The per-session CA: made once, loaded again, damaged files refused, leaves a client verifies."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vibebox_core.errors import NetworkPolicyError
from vibebox_core.network.tlsca import MAX_CACHED_HOSTS, SessionCA


def test_created_once_with_private_files(tmp_path: Path) -> None:
    directory = tmp_path / "secrets" / "s1"
    ca = SessionCA.load_or_create(directory, "s1")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "ca.key").stat().st_mode) == 0o600
    assert (directory / "ca.crt").read_bytes() == ca.cert_pem
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "vibebox session CA s1"
    )
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 360 <= lifetime.days <= 367
    assert b"PRIVATE" not in ca.cert_pem
    again = SessionCA.load_or_create(directory, "other label")
    assert again.cert_pem == ca.cert_pem


@pytest.mark.parametrize("damage", ["key", "cert", "missing-cert", "missing-key", "mismatch"])
def test_damaged_files_are_refused_not_replaced(tmp_path: Path, damage: str) -> None:
    directory = tmp_path / "s"
    SessionCA.load_or_create(directory, "s")
    key, crt = directory / "ca.key", directory / "ca.crt"
    if damage == "key":
        key.write_text("not a key")
    elif damage == "cert":
        crt.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    elif damage == "missing-cert":
        crt.unlink()
    elif damage == "missing-key":
        key.unlink()
    else:
        other = SessionCA.load_or_create(tmp_path / "other", "o")
        crt.write_bytes(other.cert_pem)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    with pytest.raises(NetworkPolicyError) as info:
        SessionCA.load_or_create(directory, "s")
    assert info.value.hint
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def test_leaf_context_is_cached_and_leaves_no_files(tmp_path: Path) -> None:
    ca = SessionCA.load_or_create(tmp_path / "s", "s")
    context = ca.server_context("api.example.test")
    assert ca.server_context("api.example.test") is context
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["ca.crt", "ca.key"]


def test_leaf_cache_is_bounded(tmp_path: Path) -> None:
    ca = SessionCA.load_or_create(tmp_path / "s", "s")
    first = ca.server_context("h0.test")
    for i in range(1, MAX_CACHED_HOSTS + 1):
        ca.server_context(f"h{i}.test")
    assert ca.server_context("h0.test") is not first  # evicted, made again


async def _handshake(
    ca: SessionCA, host: str, server_hostname: str
) -> tuple[dict[str, object], x509.Certificate]:
    """TLS from a client trusting only ``ca`` to a loopback server presenting ``host``'s leaf."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ca.server_context(host))
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=server_hostname
        )
        try:
            assert await reader.read() == b"ok"
            ssl_object = writer.get_extra_info("ssl_object")
            peer = ssl_object.getpeercert()
            der = ssl_object.getpeercert(binary_form=True)
            assert ssl_object.selected_alpn_protocol() in (None, "http/1.1")
        finally:
            writer.close()
    return peer, x509.load_der_x509_certificate(der)


async def test_client_verifies_leaf_with_hostname_check(tmp_path: Path) -> None:
    ca = SessionCA.load_or_create(tmp_path / "s", "s")
    peer, cert = await _handshake(ca, "api.example.test", "api.example.test")
    assert peer["subjectAltName"] == (("DNS", "api.example.test"),)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 8
    assert cert.issuer == ca.certificate.subject


async def test_client_refuses_leaf_for_another_name(tmp_path: Path) -> None:
    ca = SessionCA.load_or_create(tmp_path / "s", "s")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(ca, "api.example.test", "evil.example.test")


async def test_ip_literal_gets_an_ip_san(tmp_path: Path) -> None:
    ca = SessionCA.load_or_create(tmp_path / "s", "s")
    peer, _ = await _handshake(ca, "127.0.0.1", "127.0.0.1")
    assert peer["subjectAltName"] == (("IP Address", "127.0.0.1"),)
