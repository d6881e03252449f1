"""The session glue: network plan, enforcer lifecycle (loopback), live policy changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from core.network.dns_client import ask, query, rcode

from vibebox_core.config.grants import (
    APPROVED_DIGEST_KEY,
    APPROVED_POLICY_KEY,
    canonical_json,
    canonical_policy,
    policy_digest,
)
from vibebox_core.config.policy import Policy
from vibebox_core.config.schema import BoxConfig, Config, Mount, NetworkConfig, NetworkMode
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.config.snapshot import read_approved
from vibebox_core.errors import NetworkPolicyError
from vibebox_core.network import log
from vibebox_core.network.dnsfilter import RCODE_NXDOMAIN, DnsFilter, Question, build_response
from vibebox_core.network.enforce import FAIL_CLOSED, SessionNetwork, start_session_network
from vibebox_core.network.enforcer import NetworkEnforcer
from vibebox_core.network.follow import (
    ApprovalFollower,
    change_applies,
    follow_approvals,
    policy_from_canonical,
)
from vibebox_core.network.secrets import SecretVault, load_placeholder_key, placeholder
from vibebox_core.network.tlsca import SessionCA

SESSION = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


async def fake_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


class StubUpstream:
    async def query(self, packet: bytes, question: Question) -> bytes:
        return build_response(question, 0)


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


def test_change_applies() -> None:
    base = {"mounts": [], "network": {"mode": "allowlist", "entries": ["a"], "ports": []}}
    entries = {"mounts": [], "network": {"mode": "allowlist", "entries": ["b"], "ports": []}}
    mode = {"mounts": [], "network": {"mode": "blocklist", "entries": ["a"], "ports": []}}
    mounts = {
        "mounts": [{"host": "/", "guest": "/h", "read_only": False}],
        "network": base["network"],
    }
    assert change_applies(base, entries) == "live"
    assert change_applies(base, mode) == "next start"
    assert change_applies(base, mounts) == "next start"
    # The guest's placeholders and CA come with its boot.
    secret = {"name": "TOKEN", "hosts": ["api.example.com"], "source": "env:T"}
    assert change_applies(base, {**base, "secrets": [secret]}) == "next start"


async def test_enforcer_runs_proxy_and_dns_and_takes_new_policy(tmp_path: Path) -> None:
    stub = StubUpstream()
    enforcer = NetworkEnforcer(
        Policy("allowlist", ("allowed.test",)),
        tmp_path / "network.log",
        "127.0.0.1",
        "127.0.0.0/8",
        proxy_port=0,
        dns_port=0,
        resolver=fake_resolver,
        upstream=stub,
    )
    await enforcer.start()
    try:
        assert rcode(await ask(enforcer.dns_port, query("other.test"))) == RCODE_NXDOMAIN
        reply = await exchange(enforcer.proxy_port, b"CONNECT other.test:1 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403")
        enforcer.set_policy(Policy("allowlist", ("other.test",)))
        assert rcode(await ask(enforcer.dns_port, query("other.test"))) == 0
        assert enforcer.policy.entries == ("other.test",)
    finally:
        await enforcer.close()
    hosts = [(e.source, e.host, e.verdict) for e in log.tail(tmp_path / "network.log", 10)]
    assert hosts == [
        ("dns", "other.test", "blocked"),
        ("proxy", "other.test", "blocked"),
        ("dns", "other.test", "allowed"),
    ]


async def test_other_sessions_are_not_served(tmp_path: Path) -> None:
    """A client outside the session subnet gets neither proxy nor DNS answers."""
    enforcer = NetworkEnforcer(
        Policy("blocklist", ()),
        tmp_path / "network.log",
        "127.0.0.1",
        "10.213.9.0/24",
        proxy_port=0,
        dns_port=0,
        resolver=fake_resolver,
        upstream=StubUpstream(),
    )
    await enforcer.start()
    try:
        reply = await exchange(enforcer.proxy_port, b"CONNECT allowed.test:1 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403")
        assert b"only its own session" in reply
        dns = enforcer.dns
        assert isinstance(dns, DnsFilter)
        dns.datagram_received(query("allowed.test"), ("127.0.0.1", 5555))
        assert not dns._pending  # dropped before any work
        dns.datagram_received(query("allowed.test"), ("10.213.9.1", 5555))
        assert dns._pending
        await asyncio.gather(*dns._pending)
    finally:
        await enforcer.close()


async def test_enforcer_without_its_network_is_a_clear_error(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this host: binding fails, nothing is sent.
    enforcer = NetworkEnforcer(Policy(), tmp_path / "n.log", "192.0.2.1", proxy_port=0, dns_port=0)
    with pytest.raises(NetworkPolicyError, match="is the session's network up"):
        await enforcer.start()


def _canon(mode: NetworkMode, *entries: str) -> dict[str, Any]:
    return canonical_policy(Config(Path("vibebox.toml"), network=NetworkConfig(mode, entries)))


def test_read_approved_trusts_only_a_matching_digest() -> None:
    data = _canon("allowlist", "a.test")
    extra = {APPROVED_DIGEST_KEY: policy_digest(data), APPROVED_POLICY_KEY: canonical_json(data)}
    assert read_approved(extra) == data
    assert read_approved({}) is None
    assert read_approved({**extra, APPROVED_DIGEST_KEY: "sha256:x"}) is None
    assert read_approved({**extra, APPROVED_POLICY_KEY: "{not json"}) is None
    assert policy_from_canonical(data) == Policy("allowlist", ("a.test",))
    with pytest.raises(ValueError):
        policy_from_canonical({"network": {"mode": "open"}})


def test_follower_applies_newly_approved_policies(tmp_path: Path) -> None:
    start = _canon("allowlist", "a.test")
    enforcer = NetworkEnforcer(policy_from_canonical(start), tmp_path / "n.log", "127.0.0.1")
    follower = ApprovalFollower(enforcer, start)
    assert follower.update(start) is None  # nothing new
    assert follower.update(None) is None  # unreadable index: keep what runs

    widened = _canon("allowlist", "a.test", "b.test")
    assert follower.update(widened) == "live"
    assert enforcer.policy.entries == ("a.test", "b.test")
    assert enforcer.proxy.policy is enforcer.policy

    mode = _canon("blocklist")
    assert follower.update(mode) == "next start"
    assert enforcer.policy.mode == "allowlist" and follower.pending_restart


def test_follower_says_what_waits_for_the_next_start(tmp_path: Path) -> None:
    start = _canon("allowlist", "a.test")
    enforcer = NetworkEnforcer(policy_from_canonical(start), tmp_path / "n.log", "127.0.0.1")
    follower = ApprovalFollower(enforcer, start)
    network = SessionNetwork(enforcer, follower)
    assert network.status() == {"policy": {"applied": "live", "pending": []}}

    assert follower.update(_canon("allowlist", "a.test", "b.test")) == "live"
    assert network.status()["policy"] == {"applied": "live", "pending": []}

    mounted = canonical_policy(
        Config(
            Path("vibebox.toml"),
            BoxConfig(mounts=(Mount(Path("/srv/data"), "/data", True),)),
            NetworkConfig("blocklist", ("x.test",)),
        )
    )
    assert follower.update(mounted) == "next start"
    assert network.status()["policy"] == {
        "applied": "next start",
        "pending": ["+ mount: /srv/data → /data (ro)", "~ network mode: allowlist → blocklist"],
    }
    # Entries meant for the other mode wait with it; the mount is no longer asked for.
    assert follower.update(_canon("blocklist", "y.test")) == "next start"
    assert enforcer.policy.entries == ("a.test", "b.test")
    assert follower.pending == ["~ network mode: allowlist → blocklist"]
    # Approving the running mode again: nothing waits any more.
    assert follower.update(_canon("allowlist", "c.test")) == "live"
    # tuple(): mypy kept the length of the entries asserted above
    assert not follower.pending_restart and tuple(enforcer.policy.entries) == ("c.test",)
    assert network.status()["policy"]["applied"] == "live"


def test_follower_that_started_fail_closed_takes_the_first_approval(tmp_path: Path) -> None:
    enforcer = NetworkEnforcer(FAIL_CLOSED, tmp_path / "n.log", "127.0.0.1")
    follower = ApprovalFollower(enforcer)
    assert follower.status() == {"applied": "live", "pending": []}
    assert follower.update(_canon("allowlist", "a.test")) == "live"
    assert follower.update(_canon("blocklist")) == "next start"
    assert follower.status()["pending"] == ["~ network mode: allowlist → blocklist"]


async def test_follow_approvals_task_polls_in_a_thread(tmp_path: Path) -> None:
    start = _canon("allowlist", "a.test")
    widened = _canon("allowlist", "b.test")
    enforcer = NetworkEnforcer(policy_from_canonical(start), tmp_path / "n.log", "127.0.0.1")
    changes: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        follow_approvals(
            ApprovalFollower(enforcer, start),
            lambda: widened,
            interval=0.01,
            on_change=changes.put_nowait,
        )
    )
    try:
        assert await asyncio.wait_for(changes.get(), 5) == "live"
        assert enforcer.policy.entries == ("b.test",)
    finally:
        task.cancel()


async def test_start_session_network_enforces_the_approved_policy(tmp_path: Path) -> None:
    approved: list[dict[str, Any] | None] = [None]
    changes: asyncio.Queue[str] = asyncio.Queue()
    session = await start_session_network(
        tmp_path / "network.log",
        "127.0.0.0/8",
        lambda: approved[0],
        interval=0.01,
        on_change=changes.put_nowait,
        proxy_port=0,
        dns_port=0,
    )
    try:
        enforcer = session.enforcer
        assert enforcer.gateway_ip == "127.0.0.1"
        assert enforcer.policy == FAIL_CLOSED  # nothing approved: nothing gets out
        assert rcode(await ask(enforcer.dns_port, query("localhost"))) == RCODE_NXDOMAIN
        approved[0] = _canon("allowlist", "localhost")
        assert await asyncio.wait_for(changes.get(), 5) == "live"
        assert rcode(await ask(enforcer.dns_port, query("localhost"))) == 0
    finally:
        await session.stop()
    assert session.task is None


def _with_secrets(canonical: dict[str, Any], *names: str) -> dict[str, Any]:
    secrets = [{"name": n, "hosts": [f"{n.lower()}.test"], "source": f"env:{n}"} for n in names]
    return {**canonical, "secrets": secrets} if secrets else canonical


def test_follower_hands_approved_secrets_to_the_proxy(tmp_path: Path) -> None:
    start = _with_secrets(_canon("allowlist", "a.test"), "ONE")
    vault = SecretVault(secrets_from_canonical(start), b"k" * 32)
    enforcer = NetworkEnforcer(
        policy_from_canonical(start), tmp_path / "n.log", "127.0.0.1", secrets=vault
    )
    follower = ApprovalFollower(enforcer, start)
    assert enforcer.proxy.secrets is vault
    # A new secret reaches the proxy at once, but the guest's placeholder waits for a boot.
    assert follower.update(_with_secrets(start, "ONE", "TWO")) == "next start"
    assert [s.name for s in vault.secrets] == ["ONE", "TWO"]
    assert follower.pending == ["+ secret TWO from env:TWO for two.test"]
    # Removing one: the proxy never sends it again.
    assert follower.update(_canon("allowlist", "a.test")) == "next start"
    assert vault.secrets == ()
    # A damaged approval changes nothing (neither the policy nor the secrets).
    bad = {**_canon("allowlist", "z.test"), "secrets": [{"name": "x y"}]}
    with pytest.raises(ValueError):
        follower.update(bad)
    assert vault.secrets == () and enforcer.policy.entries == ("a.test",)


async def test_start_session_network_loads_secrets_and_the_trusted_ca(tmp_path: Path) -> None:
    approved = _with_secrets(_canon("allowlist", "one.test"), "ONE")
    directory = tmp_path / "secrets"
    made = SessionCA.load_or_create(directory, "test")  # what the cold start made and seeded
    for trusted in (False, True):
        session = await start_session_network(
            tmp_path / "network.log",
            "127.0.0.0/8",
            lambda: approved,
            proxy_port=0,
            dns_port=0,
            secrets_dir=directory,
            ca_trusted=trusted,
        )
        try:
            vault = session.enforcer.secrets
            assert vault is not None and [s.name for s in vault.secrets] == ["ONE"]
            assert vault.guest_env() == {"ONE": placeholder(load_placeholder_key(directory), "ONE")}
            ca = session.enforcer.proxy.ca
            # Without a CA in this boot's seed the guest trusts none: every tunnel stays blind.
            assert (ca is not None and ca.cert_pem == made.cert_pem) if trusted else ca is None
        finally:
            await session.stop()
