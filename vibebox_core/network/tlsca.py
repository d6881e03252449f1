"""A session's own TLS certificate authority, for the hosts whose requests carry secrets.

The proxy replaces a secret's placeholder with its value only inside HTTPS requests, so for
those hosts it has to read the request: it terminates the guest's TLS with a leaf certificate
for the host, signed by a CA made for this one session, which the guest trusts (installed at
boot from the seed). Every other host stays a blind tunnel the CA plays no part in.

Why a CA per session, kept in a host-only directory (``$VIBEBOX_HOME/secrets/<session>/``):
the guest holds its certificate, so a leaked CA key would let anyone who can reach that
guest's traffic impersonate any site to it, and nothing more; the key never enters the VM,
the project, ``.vibebox/`` or the seed. It is made once, when the session first needs it, and
loaded again afterwards: a damaged file is refused, never silently replaced, because the guest
already trusts the old certificate and a new one would break every intercepted connection in a
way that looks like an attack. Leaf certificates live only in memory (``ssl`` needs files for a
moment, in a private temporary directory under the 0700 one), one per host, renewed daily.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vibebox_core import paths
from vibebox_core.config import hostnames
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.fileio import write_atomic

CA_VALIDITY = datetime.timedelta(days=365)
LEAF_VALIDITY = datetime.timedelta(days=7)
#: A cached leaf older than this is made again (long before it expires).
LEAF_RENEW = datetime.timedelta(days=1)
#: Certificates start this long before "now", so a guest whose clock lags still accepts them.
BACKDATE = datetime.timedelta(hours=1)
MAX_CACHED_HOSTS = 256
_CN_LIMIT = 64  # X.509 caps a common name at 64 characters
_SUBJECT_PREFIX = "vibebox session CA "
_HINT = (
    "the guest trusts this session's CA; remove the session and start a new one "
    "(or delete the directory if the session never booted)"
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _label_text(label: str) -> str:
    printable = "".join(c for c in label if c.isprintable())
    return printable[: _CN_LIMIT - len(_SUBJECT_PREFIX)] or "-"


@dataclass
class _Leaf:
    context: ssl.SSLContext
    made: datetime.datetime


class SessionCA:
    """The CA of one session: its certificate (public) and, on the host only, its key.

    Make one with :meth:`load_or_create`; :meth:`server_context` gives the proxy a server-side
    TLS context for a host, with a leaf certificate this CA signed.
    """

    def __init__(self, directory: Path, key: PrivateKey, cert: x509.Certificate) -> None:
        self.directory = directory
        self._key = key
        self._cert = cert
        self._leaves: OrderedDict[str, _Leaf] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load_or_create(cls, directory: Path, label: str) -> SessionCA:
        """Load the CA kept in ``directory``, or make it there when neither file exists yet.

        Args:
            directory: the session's host-only secrets directory (made ``0700``); it holds
                ``ca.key`` (``0600``) and ``ca.crt``.
            label: names the CA in its subject (``vibebox session CA <label>``), e.g. the
                session id.

        Raises:
            NetworkPolicyError: a file is missing, unreadable, damaged or does not match the
                other; or the directory cannot be made. Nothing is replaced.
        """
        key_path = directory / paths.SECRET_CA_KEY
        cert_path = directory / paths.SECRET_CA_CERT
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
            have_key, have_cert = key_path.exists(), cert_path.exists()
        except OSError as exc:
            raise NetworkPolicyError(
                f"cannot prepare the session CA directory {directory}: {exc.strerror or exc}"
            ) from exc
        if not have_key and not have_cert:
            return cls._create(directory, label)
        if not (have_key and have_cert):
            missing = cert_path if have_key else key_path
            raise NetworkPolicyError(
                f"the session CA is incomplete: {missing} is missing", hint=_HINT
            )
        return cls._load(directory, key_path, cert_path)

    @classmethod
    def _create(cls, directory: Path, label: str) -> SessionCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, _SUBJECT_PREFIX + _label_text(label))]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # The key first: a certificate on disk is what may have been handed to a guest, so
            # it appears last, only next to its key.
            write_atomic(directory / paths.SECRET_CA_KEY, key_pem, mode=0o600, exclusive=True)
            write_atomic(
                directory / paths.SECRET_CA_CERT,
                cert.public_bytes(serialization.Encoding.PEM),
                mode=0o644,
                exclusive=True,
            )
        except FileExistsError as exc:
            raise NetworkPolicyError(
                f"another process is creating the session CA in {directory}", hint=_HINT
            ) from exc
        except OSError as exc:
            raise NetworkPolicyError(
                f"cannot write the session CA into {directory}: {exc.strerror or exc}"
            ) from exc
        return cls(directory, key, cert)

    @classmethod
    def _load(cls, directory: Path, key_path: Path, cert_path: Path) -> SessionCA:
        try:
            key_data, cert_data = key_path.read_bytes(), cert_path.read_bytes()
        except OSError as exc:
            raise NetworkPolicyError(
                f"cannot read the session CA in {directory}: {exc.strerror or exc}", hint=_HINT
            ) from exc
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
            cert = x509.load_pem_x509_certificate(cert_data)
        except (ValueError, TypeError) as exc:
            raise NetworkPolicyError(
                f"the session CA in {directory} is damaged", hint=_HINT
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise NetworkPolicyError(f"the session CA key in {directory} has an unknown type")
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(
            serialization.Encoding.DER, public
        ) != cert.public_key().public_bytes(serialization.Encoding.DER, public):
            raise NetworkPolicyError(
                f"the session CA key and certificate in {directory} do not match", hint=_HINT
            )
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            cert.verify_directly_issued_by(cert)
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature) as exc:
            raise NetworkPolicyError(
                f"the session CA certificate in {directory} is not a CA", hint=_HINT
            ) from exc
        if not constraints.ca:
            raise NetworkPolicyError(
                f"the session CA certificate in {directory} is not a CA", hint=_HINT
            )
        if cert.not_valid_after_utc <= _now():
            raise NetworkPolicyError(
                f"the session CA in {directory} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                hint="start a new session (its CA is made afresh)",
            )
        with contextlib.suppress(OSError):  # tightening only; a failure changes nothing
            os.chmod(key_path, 0o600)
        return cls(directory, key, cert)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate in PEM: what the guest trusts (public)."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        return self._cert

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a leaf for ``host`` (cached per host).

        The leaf names ``host`` in its subjectAltName (a dNSName, or an iPAddress for an IP
        literal), is for serverAuth only, valid for :data:`LEAF_VALIDITY` and signed by this
        CA. The context offers ALPN ``http/1.1`` only (the proxy speaks HTTP/1.1 inside).
        """
        now = _now()
        with self._lock:
            leaf = self._leaves.get(host)
            if leaf is not None and now - leaf.made < LEAF_RENEW:
                self._leaves.move_to_end(host)
                return leaf.context
        context = self._make_context(host, now)
        with self._lock:
            self._leaves[host] = _Leaf(context, now)
            self._leaves.move_to_end(host)
            while len(self._leaves) > MAX_CACHED_HOSTS:
                self._leaves.popitem(last=False)
        return context

    def _leaf_certificate(
        self, host: str, key: PrivateKey, now: datetime.datetime
    ) -> x509.Certificate:
        literal = hostnames.parse_ip_literal(host)
        san: x509.GeneralName = (
            x509.IPAddress(ipaddress.ip_address(str(literal)))
            if literal is not None
            else x509.DNSName(host)
        )
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, host)] if 0 < len(host) <= _CN_LIMIT else []
        )
        not_after = min(now + LEAF_VALIDITY, self._cert.not_valid_after_utc)
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([san]), critical=not subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
            )
            .sign(self._key, hashes.SHA256())
        )

    def _make_context(self, host: str, now: datetime.datetime) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf_certificate(host, key, now)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # load_cert_chain reads files only: the leaf's key is on disk for a moment, in a
        # private (0700) temporary directory inside the host-only one, and removed at once.
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".leaf-") as tmp:
            cert_file, key_file = Path(tmp) / "leaf.crt", Path(tmp) / "leaf.key"
            write_atomic(key_file, key_pem, mode=0o600)
            write_atomic(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
            context.load_cert_chain(cert_file, key_file)
        return context
