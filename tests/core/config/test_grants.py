"""What a config grants the guest: the canonical policy, its digest and diff, the approval gate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vibebox_core.config.grants import (
    APPROVED_DIGEST_KEY,
    APPROVED_POLICY_KEY,
    PolicyNotApprovedError,
    canonical_policy,
    check_approval,
    policy_diff,
    policy_digest,
    record_approval,
    require_approval,
)
from vibebox_core.config.schema import (
    BoxConfig,
    Config,
    Mount,
    NetworkConfig,
    PortForward,
    Secret,
)
from vibebox_core.config.secrets import secrets_from_canonical
from vibebox_core.config.snapshot import read_approved
from vibebox_core.errors import NetworkPolicyError


def _box(mounts: tuple[Mount, ...] = ()) -> BoxConfig:
    return BoxConfig(mounts=mounts)


def _config(box: BoxConfig | None = None, network: NetworkConfig | None = None) -> Config:
    return Config(Path("vibebox.toml"), box or BoxConfig(), network or NetworkConfig())


def test_digest_is_canonical() -> None:
    a = _config(network=NetworkConfig("allowlist", ("b.com", "a.com")))
    b = _config(network=NetworkConfig("allowlist", ("a.com", "b.com", "a.com")))
    assert policy_digest(a) == policy_digest(b)
    assert policy_digest(a).startswith("sha256:")
    assert policy_digest(a) == policy_digest(canonical_policy(a))
    c = _config(network=NetworkConfig("blocklist", ("a.com", "b.com")))
    assert policy_digest(a) != policy_digest(c)
    d = _config(box=_box((Mount(Path("/data"), "/data", True),)), network=a.network)
    assert policy_digest(d) != policy_digest(a)
    json.dumps(canonical_policy(d))  # JSON-able


def test_diff_lists_every_change() -> None:
    old = canonical_policy(
        _config(
            box=_box((Mount(Path("/data"), "/data", True), Mount(Path("/x"), "/x", False))),
            network=NetworkConfig("allowlist", ("a.com",), (PortForward(8000, 8000),)),
        )
    )
    new = canonical_policy(
        _config(
            box=_box((Mount(Path("/data"), "/data", False), Mount(Path("/"), "/host", False))),
            network=NetworkConfig("blocklist", ("b.com",), (PortForward(5173, 5173),)),
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
    approved = _config(network=NetworkConfig("allowlist", ("a.com",)))
    assert check_approval({}, approved).status == "new"
    digest = record_approval(index, "s1", approved)
    extra = index.extra["s1"]
    assert extra[APPROVED_DIGEST_KEY] == digest
    assert isinstance(extra[APPROVED_POLICY_KEY], str)
    assert check_approval(extra, approved).status == "approved"
    assert not check_approval(extra, approved).needs_approval

    widened = _config(network=NetworkConfig("allowlist", ("a.com", "evil.com")))
    check = check_approval(extra, widened)
    assert check.status == "changed" and check.needs_approval
    assert check.diff == ("+ network entry: evil.com",)
    assert check.digest == policy_digest(widened)

    # A tampered stored policy is not trusted for the diff.
    tampered = dict(extra, **{APPROVED_POLICY_KEY: '{"network": {}}'})
    assert check_approval(tampered, widened).diff == (
        "~ the previously approved policy is unknown",
    )


def test_require_approval_gates_a_changed_policy() -> None:
    index = _Index()
    config = _config(box=_box((Mount(Path("/data"), "/data", True),)))
    # A first start never approves extra mounts (or port forwards) by itself.
    with pytest.raises(PolicyNotApprovedError) as first:
        require_approval(index, "s1", config, project="/p")
    assert first.value.first and "never approved" in first.value.message
    assert first.value.check.diff == ("+ mount: /data → /data (ro)",)
    narrower = _config(network=NetworkConfig("allowlist", ("a.com",)))
    assert require_approval(index, "s2", narrower).status == "new"  # nothing extra: approved
    assert require_approval(index, "s2", narrower).status == "approved"
    record_approval(index, "s1", config)  # the user said yes
    assert require_approval(index, "s1", config).status == "approved"
    widened = _config(box=_box((Mount(Path("/data"), "/data", False),)))
    with pytest.raises(PolicyNotApprovedError) as err:
        require_approval(index, "s1", widened, project="/p")
    assert isinstance(err.value, NetworkPolicyError)
    assert "~ mount: /data → /data (ro) is now /data → /data (rw)" in err.value.message
    assert "vibebox approve` in /p" in err.value.hint
    assert err.value.check.diff == ("~ mount: /data → /data (ro) is now /data → /data (rw)",)
    record_approval(index, "s1", widened)  # the user said yes
    assert require_approval(index, "s1", widened).status == "approved"


def test_the_index_gate_compares_secrets() -> None:
    index = _Index()
    plain = Config(Path("vibebox.toml"))
    with_secret = Config(Path("vibebox.toml"), secrets=(Secret("A", ("a.example",), "env:A"),))
    with pytest.raises(PolicyNotApprovedError) as first:
        require_approval(index, "s1", with_secret)
    assert first.value.check.diff == ("+ secret A from env:A for a.example",)
    record_approval(index, "s1", plain)
    check = check_approval(index.extra["s1"], with_secret)
    assert check.needs_approval and check.diff == ("+ secret A from env:A for a.example",)
    record_approval(index, "s1", with_secret)
    assert check_approval(index.extra["s1"], with_secret).status == "approved"
    stored = read_approved(index.extra["s1"])
    assert stored is not None and secrets_from_canonical(stored) == with_secret.secrets
