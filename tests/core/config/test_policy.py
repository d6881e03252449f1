"""The policy's decisions: allowlist and blocklist, the most specific entry, bad names."""

from __future__ import annotations

from typing import Any

import pytest

from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import NetworkConfig


@pytest.mark.parametrize(
    ("mode", "entries", "host", "verdict", "reason"),
    [
        ("allowlist", ("example.com",), "example.com", "allowed", "allowlist entry example.com"),
        ("allowlist", ("example.com",), "a.b.example.com", "allowed", "allowlist entry"),
        ("allowlist", ("example.com",), "notexample.com", "blocked", "not in the allowlist"),
        ("allowlist", ("example.com",), "93.184.216.34", "blocked", "IP addresses"),
        ("allowlist", (), "example.com", "blocked", "not in the allowlist"),
        ("allowlist", ("example.com",), "exa mple.com", "blocked", "not a valid host"),
        ("blocklist", ("evil.test",), "evil.test", "blocked", "blocklist entry evil.test"),
        ("blocklist", ("evil.test",), "www.EVIL.test.", "blocked", "blocklist entry"),
        ("blocklist", ("evil.test",), "good.test", "allowed", "not in the blocklist"),
        ("blocklist", (), "10.0.0.1", "allowed", "IP address"),
        ("blocklist", (), "", "blocked", "not a valid host"),
    ],
)
def test_decide_table(
    mode: Any, entries: tuple[str, ...], host: str, verdict: str, reason: str
) -> None:
    decision = Policy(mode, entries).decide(host)
    assert decision.verdict == verdict
    assert reason in decision.reason
    assert decision.allowed == (verdict == "allowed")


def test_decide_names_most_specific_entry() -> None:
    policy = Policy("blocklist", ("example.com", "ads.example.com"))
    assert policy.decide("x.ads.example.com").reason == "blocklist entry ads.example.com"


def test_policy_normalises_and_validates() -> None:
    assert Policy("allowlist", ("*.A.com", "a.com")).entries == ("a.com",)
    with pytest.raises(ValueError, match="allowlist' or 'blocklist"):
        Policy("denylist", ())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scheme"):
        Policy("allowlist", ("http://a.com",))


def test_policy_from_network_config() -> None:
    policy = Policy.from_network(NetworkConfig("allowlist", ("*.A.test",)))
    assert (policy.mode, policy.entries) == ("allowlist", ("a.test",))
    with pytest.raises(ValueError, match="network mode"):
        Policy.from_network(NetworkConfig("open", ()))  # type: ignore[arg-type]
