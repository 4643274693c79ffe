"""The rendered services ruleset does what the services brain says, flow by flow.

For every node of the services test suite's scenario clusters
(tests/services/test_flows.py: cluster, topology_cluster, dual_stack_cluster,
written from the Kubernetes Service, Virtual IPs, traffic policy and topology
docs), every source (each pod, the nodes, outside clients) is sent to every
frontend the node captures (ClusterIPs, external IPs, load balancer IPs,
NodePorts on each nodeport address), to an undefined port of each ClusterIP, to
an unallocated service address and to a pod directly. The outcomes of
netlet.services.flow.evaluate (endpoints, REJECT, DROP, no match, masquerade)
must equal what the rendered nftables rules give when interpreted
(tests/nft/interpreter.py), for every flow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from netlet.cluster.state import ClusterState
from netlet.dataplane.nft.fake import FakeNft
from netlet.dataplane.nft.model import Family
from netlet.dataplane.nft.node import ClusterProgrammer, fake_runners
from netlet.dataplane.nft.services import ServicesRenderer
from netlet.dataplane.nft.sync import full_sync
from netlet.resources.core import Node as KubeNode
from netlet.resources.core import Pod, PodIP, Protocol
from netlet.services.builder import ProxyConfig, build_table
from netlet.services.flow import OutcomeKind, evaluate
from netlet.services.table import ServiceTable
from tests.nft.interpreter import Address, Node, Outcome, service_fates
from tests.services.test_flows import cluster, dual_stack_cluster, topology_cluster

OUTSIDE = ("203.0.113.7", "198.51.100.9", "fc00::7")
UNALLOCATED = (("10.96.99.99", "tcp", 80), ("fd00:10:96::9999", "tcp", 80))

CLUSTERS = {
    "main": cluster,
    "topology": topology_cluster,
    "dual-stack": dual_stack_cluster,
}


def brain(table: ServiceTable, src: Address, proto: str, dst: Address, port: int) -> set[Outcome]:
    result = evaluate(table, src, Protocol(proto.upper()), dst, port)
    out = set()
    for o in result.outcomes:
        if o.kind == OutcomeKind.ENDPOINT:
            assert o.endpoint is not None
            out.add(Outcome("endpoint", (o.endpoint.ip, o.endpoint.port), o.masquerade))
        else:
            out.add(Outcome(o.kind.value, None, False))
    return out


def flows(
    state: ClusterState, table: ServiceTable, version: int
) -> Iterator[tuple[Address, str, Address, int]]:
    sources = {ipaddress.ip_address(ip) for p in state.list(Pod) for ip in p.ips}
    sources |= set(table.node_ips) | {ipaddress.ip_address(x) for x in OUTSIDE}
    targets: set[tuple[Address, str, int]] = set()
    for entry in table.entries.values():
        for fe in entry.frontends:
            addresses = [fe.address] if fe.address is not None else list(table.nodeport_addresses)
            targets.update((a, fe.protocol.value.lower(), fe.port) for a in addresses)
        targets.add((entry.cluster_ip, entry.protocol.value.lower(), 1))  # undefined port
        for ep in entry.endpoints:
            targets.add((ep.ip, entry.protocol.value.lower(), ep.port))  # a pod, directly
    targets |= {(ipaddress.ip_address(a), p, n) for a, p, n in UNALLOCATED}
    for src in sorted(sources, key=lambda a: (a.version, int(a))):
        for dst, proto, port in sorted(
            targets, key=lambda t: (t[0].version, int(t[0]), t[1], t[2])
        ):
            if src.version == dst.version == version:
                yield src, proto, dst, port


def cases() -> Iterator[object]:
    for name, make in CLUSTERS.items():
        for node in make().list(KubeNode):
            for masquerade_all in (False, True):
                suffix = " with --masquerade-all" if masquerade_all else ""
                yield pytest.param(
                    name, node.name, masquerade_all, id=f"{name} cluster, {node.name}{suffix}"
                )


@pytest.mark.parametrize(("cluster_name", "node", "masquerade_all"), list(cases()))
def test_every_flow_through_the_rendered_rules_matches_the_services_brain(
    cluster_name: str, node: str, masquerade_all: bool
) -> None:
    state = CLUSTERS[cluster_name]()
    table = build_table(state, node, ProxyConfig(masquerade_all=masquerade_all))
    checked = 0
    mismatches = []
    for family, desired in ServicesRenderer().full(table).items():
        kernel = FakeNft()
        kernel.run(full_sync(desired))
        view = Node(kernel, frozenset(table.node_ips), family)
        for src, proto, dst, port in flows(state, table, family.version or 4):
            expected = brain(table, src, proto, dst, port)
            got = service_fates(view, src, proto, dst, port)
            checked += 1
            if expected != got:
                mismatches.append(f"{src} -> {dst}:{port}/{proto}: brain {expected}, rules {got}")
    assert checked > 50
    assert mismatches == [], "\n".join(mismatches[:10])


def test_the_ip6_table_exists_only_for_dual_stack_clusters() -> None:
    single = ServicesRenderer().full(build_table(cluster(), "node-a"))
    dual = ServicesRenderer().full(build_table(dual_stack_cluster(), "node-a"))
    assert (list(single), list(dual)) == ([Family.IP], [Family.IP, Family.IP6])


# A moved endpoint before and after the collection (docs/nftables.md, "Deletions wait
# for the kernel"): while its new address waits under a spare slot, and once the
# collection wrote it back, every flow still gives what the brain says.
# dns-1 backs several ports (TCP and UDP); t-b a topology-aware Service.
MOVED = {"main": ("default", "dns-1", "10.244.1.99"), "topology": ("default", "t-b", "10.244.1.98")}


@pytest.mark.parametrize("cluster_name", list(MOVED), ids=[f"{n} cluster" for n in MOVED])
def test_a_moved_endpoint_is_reached_through_its_spare_slot_and_after_the_collection(
    cluster_name: str,
) -> None:
    # The shared clusters are cached for every test module; this test changes its own copy.
    state = CLUSTERS[cluster_name].__wrapped__()
    namespace, name, new_ip = MOVED[cluster_name]
    factory, kernels = fake_runners()
    programmer = ClusterProgrammer(state, {"node-a": "ns"}, factory)
    try:
        programmer.sync()
        pod = state.get(Pod, namespace, name)
        assert pod is not None
        status = pod.status.model_copy(update={"pod_ip": new_ip, "pod_ips": (PodIP(ip=new_ip),)})
        state.apply(pod.model_copy(update={"status": status}))
        programmer.sync()
        syncer = programmer.nodes["node-a"].syncers[(Family.IP, "netlet")]
        assert syncer.pending.moves, "the move should wait under a spare slot"
        table = build_table(state, "node-a")
        view = Node(kernels["ns"], frozenset(table.node_ips), Family.IP)
        for stage in ("pending", "collected"):
            mismatches = [
                f"{stage}: {src} -> {dst}:{port}/{proto}"
                for src, proto, dst, port in flows(state, table, 4)
                if brain(table, src, proto, dst, port) != service_fates(view, src, proto, dst, port)
            ]
            assert mismatches == [], "\n".join(mismatches[:10])
            programmer.collect(force=True)
            assert not syncer.pending
    finally:
        programmer.close()
