"""The network policy's decisions: which hosts a session's guest may reach.

A :class:`Policy` is a mode (``allowlist`` or ``blocklist``) and normalised domain entries
(:mod:`vibebox_core.config.hostnames`); :meth:`Policy.decide` judges one host name as the guest
asked for it. Deciding is a pure function so it can be tested without a VM; the enforcement
(the proxy, the DNS filter, the nwfilter: :mod:`vibebox_core.network`) is built on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vibebox_core.config.hostnames import normalize_entry, parse_ip_literal, valid_host
from vibebox_core.config.schema import NETWORK_MODES, NetworkConfig, NetworkMode


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one host.

    Attributes:
        verdict: ``"allowed"`` or ``"blocked"``.
        reason: one short sentence a person can read in the log, e.g.
            ``"not in the allowlist"``.
    """

    verdict: Literal["allowed", "blocked"]
    reason: str

    @property
    def allowed(self) -> bool:
        """True when the host may be reached."""
        return self.verdict == "allowed"


def _is_ip(host: str) -> bool:
    # Every spelling the C resolver reads as an address (``2130706433``, ``0x7f.1``) counts.
    return parse_ip_literal(host) is not None


@dataclass(frozen=True)
class Policy:
    """A session's network policy: a mode and normalised domain entries.

    Args:
        mode: ``"allowlist"`` (only listed domains) or ``"blocklist"`` (all but listed domains).
        entries: domain entries; each is normalised with
            :func:`~vibebox_core.config.hostnames.normalize_entry`.

    Raises:
        ValueError: an unknown mode or an invalid entry.
    """

    mode: NetworkMode = "blocklist"
    entries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in NETWORK_MODES:
            raise ValueError(f"network mode must be 'allowlist' or 'blocklist', got {self.mode!r}")
        normalised = tuple(dict.fromkeys(normalize_entry(entry) for entry in self.entries))
        object.__setattr__(self, "entries", normalised)

    @classmethod
    def from_network(cls, network: NetworkConfig) -> Policy:
        """Build the policy of a project's ``[network]`` table."""
        if network.mode not in NETWORK_MODES:
            raise ValueError(
                f"network mode must be 'allowlist' or 'blocklist', got {network.mode!r}"
            )
        mode: NetworkMode = "allowlist" if network.mode == "allowlist" else "blocklist"
        return cls(mode, tuple(network.entries))

    def matching_entry(self, host: str) -> str | None:
        """Return the entry that ``host`` falls under (the most specific one), or None."""
        name = host.strip().lower().rstrip(".")
        hits = [e for e in self.entries if name == e or name.endswith("." + e)]
        return max(hits, key=len) if hits else None

    def decide(self, host: str) -> Verdict:
        """Judge one host name as asked for by the guest.

        IP addresses cannot be judged by name: an allowlist refuses them, a blocklist lets
        them through (the proxy still refuses the host's own loopback). Malformed names are
        always refused.
        """
        name = host.strip().lower().rstrip(".")
        if _is_ip(name):
            if self.mode == "allowlist":
                return Verdict("blocked", "IP addresses are not allowed in allowlist mode")
            return Verdict("allowed", "IP address; the blocklist only names domains")
        if not valid_host(name):
            return Verdict("blocked", "not a valid host name")
        entry = self.matching_entry(name)
        if self.mode == "allowlist":
            if entry is None:
                return Verdict("blocked", "not in the allowlist")
            return Verdict("allowed", f"allowlist entry {entry}")
        if entry is not None:
            return Verdict("blocked", f"blocklist entry {entry}")
        return Verdict("allowed", "not in the blocklist")
