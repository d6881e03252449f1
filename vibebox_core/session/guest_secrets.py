"""What a session's guest gets for its ``[[secrets]]``: placeholders and the CA it trusts.

The real values stay on the host (the supervisor's proxy reads them when a request needs one,
:mod:`vibebox_core.network.secrets`); at a cold start the guest is handed, through the seed's
``guest.json`` environment, one placeholder per approved secret, and the session's CA certificate
(``ca.crt`` in the seed) with the variables that make the usual tools trust it. The proxy
terminates TLS with that CA only for the hosts that carry a secret
(:mod:`vibebox_core.network.intercept`).

Both the CA key and the placeholder key live in the session's host-only secrets directory
(:func:`vibebox_core.paths.session_secrets_dir`), never in the project. A session without secrets
gets neither: its guest trusts only the public roots, and every HTTPS connection stays a blind
tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vibebox_core import paths
from vibebox_core.config.schema import Config
from vibebox_core.network.secrets import load_placeholder_key, placeholder

#: The system bundle in the guest (vibebox-setup adds the session CA to it at boot).
GUEST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: The session CA alone, in the guest's local store.
GUEST_SESSION_CA = "/usr/local/share/ca-certificates/vibebox-session.crt"

#: Tools that do not read the system store by default, pointed at it (or at the CA alone).
CA_VARIABLES: dict[str, str] = {
    "SSL_CERT_FILE": GUEST_CA_BUNDLE,  # OpenSSL, Python's ssl, Go, Rust's native-tls
    "REQUESTS_CA_BUNDLE": GUEST_CA_BUNDLE,  # Python requests (certifi otherwise)
    "CURL_CA_BUNDLE": GUEST_CA_BUNDLE,
    "PIP_CERT": GUEST_CA_BUNDLE,
    "NODE_EXTRA_CA_CERTS": GUEST_SESSION_CA,  # Node.js adds it to its built-in roots
}


@dataclass(frozen=True)
class GuestSecrets:
    """The guest's share of a session's secrets.

    Attributes:
        env: placeholder and CA variables for ``guest.json`` "env" (empty without secrets).
        ca_pem: the session CA certificate for the seed's ``ca.crt``; None without secrets.
    """

    env: dict[str, str] = field(default_factory=dict)
    ca_pem: bytes | None = None


def guest_secrets(config: Config, session_id: str) -> GuestSecrets:
    """Make (once) the session's CA and placeholder key; return what the guest gets.

    Args:
        config: the approved config (its ``secrets``).
        session_id: the session; names its host-only secrets directory.

    Raises:
        VibeboxError: the secrets directory holds a damaged key or CA (it is not replaced:
            the guest trusts the old CA).
    """
    if not config.secrets:
        return GuestSecrets()
    directory = paths.session_secrets_dir(session_id)
    # Only a boot makes the CA: a dashboard attaching to a running session never loads the
    # X.509 code (cryptography, about 12 MB of memory).
    from vibebox_core.network.tlsca import SessionCA

    ca = SessionCA.load_or_create(directory, session_id[:8])
    key = load_placeholder_key(directory)
    env = {secret.name: placeholder(key, secret.name) for secret in config.secrets}
    env.update(CA_VARIABLES)
    return GuestSecrets(env, ca.cert_pem)
