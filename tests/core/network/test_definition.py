"""The session network's definition: the fence, isolation, the DNS forwarder, the guest's proxy."""

from __future__ import annotations

import ipaddress

import pytest

from vibebox_core.config.policy import Policy
from vibebox_core.hypervisor.names import mac_address, nwfilter_name
from vibebox_core.hypervisor.nwfilter import BLOCKLIST_DENIED, nwfilter_uuid
from vibebox_core.network import addresses
from vibebox_core.network.definition import guest_proxy_env, plan_network

SESSION = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


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


def test_plan_allowlist_is_isolated_and_fenced() -> None:
    plan = plan_network(SESSION, Policy("allowlist", ("a.test",)), "10.213.5.1")
    assert plan.isolated
    assert plan.nwfilter == f"vibebox-{SESSION}"
    assert plan.nwfilter_xml is not None and "dstipaddr='10.213.5.1'" in plan.nwfilter_xml
    assert "name='IP' value='10.213.5.2'" in plan.nwfilter_xml  # the guest's fixed address
    assert f"name='MAC' value='{mac_address(SESSION)}'" in plan.nwfilter_xml
    assert f"<uuid>{nwfilter_uuid(SESSION)}</uuid>" in plan.nwfilter_xml
    assert "NEW,ESTABLISHED,RELATED" not in plan.nwfilter_xml  # no egress beyond the gateway
    assert plan.dns_forwarder == "10.213.5.1#5400"
    assert plan.guest_env["https_proxy"] == "http://10.213.5.1:3128"
    assert plan.proxy == ("10.213.5.1", 3128)


def test_plan_blocklist_is_nat_behind_the_same_host_fence() -> None:
    lan = ipaddress.IPv4Network("192.168.44.0/24")
    plan = plan_network(SESSION, Policy("blocklist", ()), "10.213.5.1", host_denied=(lan,))
    assert not plan.isolated
    assert plan.nwfilter == f"vibebox-{SESSION}"
    assert plan.nwfilter_xml is not None
    assert "dstipaddr='10.213.5.1' dstportstart='3128'" in plan.nwfilter_xml
    assert "dstipaddr='192.168.44.0' dstipmask='24'" in plan.nwfilter_xml
    assert "dstipaddr='10.213.0.0' dstipmask='16'" in plan.nwfilter_xml
    assert "NEW,ESTABLISHED,RELATED" in plan.nwfilter_xml  # NAT egress for the rest
    assert plan.dns_forwarder == "10.213.5.1#5400"
    assert plan.guest_env["http_proxy"] == "http://10.213.5.1:3128"


def test_plan_blocklist_reads_the_host_networks_by_default() -> None:
    plan = plan_network(SESSION, Policy("blocklist", ()), "10.213.5.1")
    assert plan.nwfilter_xml is not None
    for net in addresses.host_networks():
        assert f"dstipaddr='{net.network_address}'" in plan.nwfilter_xml or any(
            net.subnet_of(d) for d in BLOCKLIST_DENIED
        )
