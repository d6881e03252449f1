"""Network policy: entry validation, decisions, the nwfilter, the approval digest and diff."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vibebox_core.errors import NetworkPolicyError
from vibebox_core.network.rules import (
    APPROVED_DIGEST_KEY,
    APPROVED_POLICY_KEY,
    Policy,
    PolicyNotApprovedError,
    canonical_policy,
    check_approval,
    guest_proxy_env,
    matches,
    normalize_entry,
    nwfilter_name,
    policy_diff,
    policy_digest,
    record_approval,
    require_approval,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("*.Example.COM.", "example.com"),
        ("  pypi.org ", "pypi.org"),
        ("a-b.c0.io", "a-b.c0.io"),
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_entry(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://example.com", "scheme"),
        ("example.com/path", "path"),
        ("example.com:443", "ports"),
        ("10.0.0.1", "IP"),
        ("::1", "ports and IP"),
        ("foo.*.com", "wildcard"),
        ("", "empty"),
        ("-bad.com", "not a valid"),
        ("a..b", "not a valid"),
        ("x" * 64 + ".com", "not a valid"),
    ],
)
def test_normalize_refuses(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_entry(raw)


def test_matches_domain_and_subdomains_only() -> None:
    entries = ("example.com",)
    assert matches("example.com", entries)
    assert matches("API.Example.com.", entries)
    assert not matches("badexample.com", entries)
    assert not matches("example.com.evil.net", entries)


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


# --- nwfilter (the filter itself: tests/core/network/test_nwfilter.py) -----------------


def test_nwfilter_name() -> None:
    assert nwfilter_name("019BF290-cccc-7c23-ba1d-dce7e6d40693") == (
        "vibebox-019bf290-cccc-7c23-ba1d-dce7e6d40693"
    )


def test_guest_proxy_env() -> None:
    env = guest_proxy_env("192.168.77.1", 3128)
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert env[key] == "http://192.168.77.1:3128"
    assert "localhost" in env["no_proxy"]
    with pytest.raises(ValueError):
        guest_proxy_env("nope", 1)


# --- digest, diff, approval ------------------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    host: Path
    guest: str
    read_only: bool
    default: bool = False


@dataclass(frozen=True)
class _Port:
    host_port: int
    guest_port: int


@dataclass(frozen=True)
class _Network:
    mode: str = "blocklist"
    entries: tuple[str, ...] = ()
    ports: tuple[_Port, ...] = ()


@dataclass(frozen=True)
class _Box:
    mounts: tuple[_Mount, ...] = ()


@dataclass(frozen=True)
class _Config:
    box: _Box = field(default_factory=_Box)
    network: _Network = field(default_factory=_Network)


def test_digest_is_canonical() -> None:
    a = _Config(network=_Network("allowlist", ("b.com", "a.com")))
    b = _Config(network=_Network("allowlist", ("a.com", "b.com", "a.com")))
    assert policy_digest(a) == policy_digest(b)
    assert policy_digest(a).startswith("sha256:")
    assert policy_digest(a) == policy_digest(canonical_policy(a))
    c = _Config(network=_Network("blocklist", ("a.com", "b.com")))
    assert policy_digest(a) != policy_digest(c)
    d = _Config(box=_Box((_Mount(Path("/data"), "/data", True),)), network=a.network)
    assert policy_digest(d) != policy_digest(a)
    json.dumps(canonical_policy(d))  # JSON-able


def test_diff_lists_every_change() -> None:
    old = canonical_policy(
        _Config(
            box=_Box((_Mount(Path("/data"), "/data", True), _Mount(Path("/x"), "/x", False))),
            network=_Network("allowlist", ("a.com",), (_Port(8000, 8000),)),
        )
    )
    new = canonical_policy(
        _Config(
            box=_Box((_Mount(Path("/data"), "/data", False), _Mount(Path("/"), "/host", False))),
            network=_Network("blocklist", ("b.com",), (_Port(5173, 5173),)),
        )
    )
    assert policy_diff(old, new) == [
        "~ mount: /data → /data (ro) is now /data → /data (rw)",
        "+ mount: / → /host (rw)",
        "- mount: /x → /x (rw)",
        "~ network mode: allowlist → blocklist",
        "+ network entry: b.com",
        "- network entry: a.com",
        "+ port forward: host 127.0.0.1:5173 → guest 5173",
        "- port forward: host 127.0.0.1:8000 → guest 8000",
    ]
    assert policy_diff(old, old) == []


def test_diff_covers_resources_and_escapes_control_characters() -> None:
    old = {"box": {"cpus": 2, "libvirt_uri": "qemu:///system"}, "supervisor": {}}
    new = {
        "box": {"cpus": 8, "libvirt_uri": "qemu:///session"},
        "supervisor": {"auto_shutdown_ms": 0},
        "mounts": [{"host": "/a\x1b]0;pwned\x07", "guest": "/x\u202e", "read_only": True}],
    }
    lines = policy_diff(old, new)
    assert "~ cpus: 2 → 8" in lines
    assert "~ libvirt_uri: qemu:///system → qemu:///session" in lines
    assert "~ auto_shutdown_ms: - → 0" in lines
    assert "+ mount: /a\\x1b]0;pwned\\x07 → /x\\u202e (ro)" in lines
    assert all(line.isprintable() for line in lines)


@dataclass
class _Entry:
    extra: dict[str, Any]


class _Index:
    def __init__(self) -> None:
        self.extra: dict[str, dict[str, Any]] = {}

    def set_extra(self, session_id: str, key: str, value: Any) -> None:
        self.extra.setdefault(session_id, {})[key] = value

    def get(self, session_id: str) -> _Entry:
        return _Entry(dict(self.extra.get(session_id, {})))


def test_approval_cycle() -> None:
    index = _Index()
    approved = _Config(network=_Network("allowlist", ("a.com",)))
    assert check_approval({}, approved).status == "new"
    digest = record_approval(index, "s1", approved)
    extra = index.extra["s1"]
    assert extra[APPROVED_DIGEST_KEY] == digest
    assert isinstance(extra[APPROVED_POLICY_KEY], str)
    assert check_approval(extra, approved).status == "approved"
    assert not check_approval(extra, approved).needs_approval

    widened = _Config(network=_Network("allowlist", ("a.com", "evil.com")))
    check = check_approval(extra, widened)
    assert check.status == "changed" and check.needs_approval
    assert check.diff == ("+ network entry: evil.com",)
    assert check.digest == policy_digest(widened)

    # A tampered stored policy is not trusted for the diff.
    tampered = dict(extra, **{APPROVED_POLICY_KEY: '{"network": {}}'})
    assert check_approval(tampered, widened).diff == (
        "~ the previously approved policy is unknown",
    )


def test_policy_from_network_config() -> None:
    policy = Policy.from_network(_Network("allowlist", ("*.A.test",)))
    assert (policy.mode, policy.entries) == ("allowlist", ("a.test",))
    with pytest.raises(ValueError, match="network mode"):
        Policy.from_network(_Network("open", ()))


def test_require_approval_gates_a_changed_policy() -> None:
    index = _Index()
    config = _Config(box=_Box((_Mount(Path("/data"), "/data", True),)))
    # A first start never approves extra mounts (or port forwards) by itself.
    with pytest.raises(PolicyNotApprovedError) as first:
        require_approval(index, "s1", config, project="/p")
    assert first.value.first and "never approved" in first.value.message
    assert first.value.check.diff == ("+ mount: /data → /data (ro)",)
    narrower = _Config(network=_Network("allowlist", ("a.com",)))
    assert require_approval(index, "s2", narrower).status == "new"  # nothing extra: approved
    assert require_approval(index, "s2", narrower).status == "approved"
    record_approval(index, "s1", config)  # the user said yes
    assert require_approval(index, "s1", config).status == "approved"
    widened = _Config(box=_Box((_Mount(Path("/data"), "/data", False),)))
    with pytest.raises(PolicyNotApprovedError) as err:
        require_approval(index, "s1", widened, project="/p")
    assert isinstance(err.value, NetworkPolicyError)
    assert "~ mount: /data → /data (ro) is now /data → /data (rw)" in err.value.message
    assert "vibebox approve` in /p" in err.value.hint
    assert err.value.check.diff == ("~ mount: /data → /data (ro) is now /data → /data (rw)",)
    record_approval(index, "s1", widened)  # the user said yes
    assert require_approval(index, "s1", widened).status == "approved"
