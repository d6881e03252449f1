"""Per-session names: domain, network, bridge, MAC, and the session id they encode."""

from __future__ import annotations

import uuid

import pytest

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import names

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
SID2 = "019bf290-dddd-7c23-8a1d-0123456789ab"  # same first 8 hex (created in the same minute)


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("myproj", "vibebox-myproj-019bf290"),
        ("My Project!", "vibebox-my-project-019bf290"),
        ("über/../x", "vibebox-ber-..-x-019bf290"),
        ("...", "vibebox-project-019bf290"),
        ("a" * 80, f"vibebox-{'a' * names.MAX_PROJECT_PART}-019bf290"),
        ("web_app.v2", "vibebox-web_app.v2-019bf290"),
    ],
)
def test_domain_name_is_sanitised(project: str, expected: str) -> None:
    assert names.domain_name(project, SID) == expected


def test_domain_name_has_only_safe_characters() -> None:
    name = names.domain_name("x y;z$(rm -rf)'\"\\ é", SID)
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert "/" not in name


def test_domain_name_accepts_uppercase_and_unhyphenated_ids() -> None:
    assert names.domain_name("p", SID.upper()) == "vibebox-p-019bf290"
    assert names.domain_name("p", SID.replace("-", "")) == "vibebox-p-019bf290"


def test_bad_session_id_is_a_vm_error() -> None:
    with pytest.raises(VMError, match="not a UUID"):
        names.domain_name("p", "not-a-uuid")


def test_per_session_names_differ_for_ids_sharing_a_prefix() -> None:
    assert SID[:8] == SID2[:8]
    assert names.network_name(SID) != names.network_name(SID2)
    assert names.bridge_name(SID) != names.bridge_name(SID2)
    assert names.mac_address(SID) != names.mac_address(SID2)


def test_bridge_name_fits_ifnamsiz() -> None:
    for _ in range(50):
        name = names.bridge_name(str(uuid.uuid4()))
        assert len(name) <= 15
        assert name.startswith("vbx")


def test_mac_address_is_stable_and_qemu_local() -> None:
    mac = names.mac_address(SID)
    assert mac == names.mac_address(SID.upper())
    assert mac.startswith("52:54:00:")
    assert len(mac.split(":")) == 6


def test_network_name_round_trips_to_session_id() -> None:
    assert names.session_id_from_network_name(names.network_name(SID)) == SID
    assert names.session_id_from_network_name("default") is None
    assert names.session_id_from_network_name("vibebox-nope") is None
