"""The per-node service table as a backend reads it (the IR of netlet.services.table).

Written from kube-proxy's nftables README (service-ips / service-nodeports maps,
no-endpoint-services / no-endpoint-nodeports, firewall-ips, cluster-ips) and the docs:
Service (LoadBalancer ipMode, loadBalancerSourceRanges, healthCheckNodePort, session
affinity default timeout, headless and ExternalName Services), Virtual IPs and Service
Proxies (traffic policies), IPv4/IPv6 dual-stack.
"""

from __future__ import annotations

import ipaddress

import pytest

from netlet.resources.core import Protocol, Service
from netlet.services.builder import ProxyConfig, build_table
from netlet.services.table import (
    FrontendKind,
    Policy,
    ServiceName,
    ServicePortEntry,
    ServiceTable,
    Target,
    Verdict,
)
from tests.services.conventions import load, pod, service
from tests.services.test_flows import cluster, dual_stack_cluster


def _table(node: str = "node-a", config: ProxyConfig | None = None) -> ServiceTable:
    return build_table(cluster(), node, config)


def _entry(table: ServiceTable, name: str, port: str = "http") -> ServicePortEntry:
    (entry,) = [e for e in table.entries_of(ServiceName("default", name)) if e.name.port == port]
    return entry


FRONTENDS = [
    (
        "ClusterIP with endpoints: dispatched to the internal chain",
        "web",
        FrontendKind.CLUSTER_IP,
        (Target.INTERNAL, True, None),
    ),
    (
        "no endpoints anywhere: ClusterIP rejects",
        "empty",
        FrontendKind.CLUSTER_IP,
        (Target.INTERNAL, False, Verdict.REJECT),
    ),
    (
        "no endpoints anywhere: NodePort rejects",
        "empty",
        FrontendKind.NODE_PORT,
        (Target.EXTERNAL, False, Verdict.REJECT),
    ),
    (
        "eTP Local, no local endpoint: VIP dispatched (short-circuit) and dropped for the rest",
        "etl-b",
        FrontendKind.LOAD_BALANCER,
        (Target.EXTERNAL, True, Verdict.DROP),
    ),
    (
        "iTP Local, no local endpoint: ClusterIP drops",
        "itl-b",
        FrontendKind.CLUSTER_IP,
        (Target.INTERNAL, False, Verdict.DROP),
    ),
    (
        "eTP Local with a local endpoint: no verdict",
        "etl",
        FrontendKind.NODE_PORT,
        (Target.EXTERNAL, True, None),
    ),
]


@pytest.mark.parametrize(
    "service,kind,expect", [f[1:] for f in FRONTENDS], ids=[f[0] for f in FRONTENDS]
)
def test_frontends(
    service: str, kind: FrontendKind, expect: tuple[Target, bool, Verdict | None]
) -> None:
    entry = _entry(_table(), service)
    (fe,) = [f for f in entry.frontends if f.kind == kind]
    assert (fe.target, fe.dispatch, fe.no_endpoints) == expect


def test_load_balancer_ip_modes_and_firewall() -> None:
    entry = _entry(_table(), "lb")
    assert [str(ip) for ip in entry.load_balancer_ips] == ["192.0.2.10"]
    assert [str(ip) for ip in entry.proxy_mode_ips] == ["192.0.2.11"]
    fw = entry.firewall
    assert fw is not None
    assert [str(n) for n in fw.source_ranges] == ["203.0.113.0/24", "172.18.0.0/16"]
    # The node's IP is in a range, so the VIP itself is an allowed source.
    assert [str(n) for n in fw.allowed] == ["203.0.113.0/24", "172.18.0.0/16", "192.0.2.10/32"]
    assert _entry(_table(), "lb-open").firewall is None


def test_health_check_node_port_only_for_local_load_balancers() -> None:
    state = cluster()
    etl = state.get(Service, "default", "etl")
    assert _entry(_table(), "etl").health_check_node_port == etl.spec.health_check_node_port
    assert etl.spec.health_check_node_port is not None
    assert _entry(_table(), "lb").health_check_node_port is None


def test_session_affinity_timeout_defaults_to_10800() -> None:
    state = load(
        pod("w", "10.244.0.11", "node-a", {"app": "w"}),
        service("w", "10.96.0.11", {"app": "w"}, sessionAffinity="ClientIP"),
    )
    table = build_table(state, "node-a")
    (entry,) = table.entries.values()
    assert entry.affinity_timeout == 10800
    assert _entry(_table(), "sticky").affinity_timeout == 600
    assert _entry(_table(), "web").affinity_timeout is None


def test_policies_and_endpoint_sets() -> None:
    etl = _entry(_table(), "etl")
    assert (etl.internal_policy, etl.external_policy) == (Policy.CLUSTER, Policy.LOCAL)
    assert [str(e) for e in etl.cluster_endpoints] == ["10.244.0.11:8080", "10.244.1.12:8080"]
    assert [str(e) for e in etl.local_endpoints] == ["10.244.0.11:8080"]
    assert etl.local_endpoints[0].local and etl.local_endpoints[0].zone == "zone-a"
    # The endpoint a Local chain uses carries its node and its pod.
    assert (etl.local_endpoints[0].node, etl.local_endpoints[0].target) == (
        "node-a",
        "Pod default/web-1",
    )
    assert [str(e) for e in etl.reachable_endpoints] == ["10.244.0.11:8080", "10.244.1.12:8080"]


def test_headless_externalname_and_other_proxy_services_have_no_entries() -> None:
    table = _table()
    for name in ("headless", "alias", "other-proxy"):
        assert ServiceName("default", name) not in table.services
    assert ipaddress.ip_address("10.96.8.3") not in table.cluster_ips


def test_table_indexes_point_at_their_entries() -> None:
    table = _table()
    for key, name in table.service_ips.items():
        entry = table.entries[name]
        assert any(f.address == key[0] and f.port == key[2] for f in entry.frontends)
    (np,) = [n for k, n in table.node_ports.items() if k == (4, Protocol.TCP, 30100)]
    assert str(np) == "default/np:http/TCP"
    assert table.cluster_ips[ipaddress.ip_address("10.96.0.53")] == ServiceName("default", "dns")


def test_node_wide_settings() -> None:
    table = _table()
    assert [str(ip) for ip in table.node_ips] == ["172.18.0.2", "198.18.0.2"]
    assert [str(ip) for ip in table.nodeport_addresses] == ["172.18.0.2"]
    assert [str(c) for c in table.pod_cidrs] == ["10.244.0.0/16"]
    assert [str(c) for c in table.service_cidrs] == ["10.96.0.0/12"]
    loopback = _table(config=ProxyConfig(nodeport_addresses=("0.0.0.0/0", "127.0.0.0/8")))
    assert [str(ip) for ip in loopback.nodeport_addresses] == ["172.18.0.2", "198.18.0.2"]


def test_dual_stack_entries_per_family() -> None:
    table = build_table(dual_stack_cluster(), "node-a")
    ds = table.entries_of(ServiceName("default", "ds"))
    assert [(e.name.family, str(e.cluster_ip)) for e in ds] == [
        (4, "10.96.7.1"),
        (6, "fd00:10:96::71"),
    ]
    assert {k[0] for k in table.node_ports} == {4, 6}
    assert str(ds[1].name) == "default/ds:http/TCP (IPv6)"
