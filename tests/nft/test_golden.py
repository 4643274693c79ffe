"""Golden rulesets: what each node gets, and what a partial sync sends.

Full syncs are compared in the canonical sorted form (FakeNft.dump, valid
`nft -f` input); partial syncs as the exact transaction text, like kube-proxy's
nftables tests (pkg/proxy/nftables/proxier_test.go: full-sync golden output
and "operation counts" for partial syncs). Regenerate with
`pytest tests/nft --update-golden` and review the diff.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from netlet.cluster.build import load_cluster, load_text
from netlet.cluster.state import ClusterState
from netlet.dataplane.nft.deferred import SPARE_BASE
from netlet.dataplane.nft.fake import FakeNft
from netlet.dataplane.nft.model import Element, Transaction, Verb
from netlet.dataplane.nft.node import ClusterProgrammer, fake_runners, render_node, ruleset_text
from netlet.resources.core import Pod, PodIP
from tests.services.conventions import manifests, node, pod, service
from tests.services.test_flows import cluster

Golden = Callable[[str, str], None]


@pytest.mark.parametrize("node_name", ["node-a", "node-b"])
def test_the_example_shop_renders_the_golden_ruleset(node_name: str, golden: Golden) -> None:
    result = load_cluster(["examples/shop"])
    assert result.ok
    golden(f"shop-{node_name}.nft", ruleset_text(render_node(result.state, node_name)))


def test_the_services_scenario_cluster_renders_the_golden_ruleset(golden: Golden) -> None:
    # Every Service feature of tests/services/test_flows.py on one node: ClusterIP,
    # NodePort, LoadBalancer with source ranges, externalIPs, traffic policies,
    # affinity, no endpoints, terminating endpoints, selectorless Services.
    tables = render_node(cluster(), "node-a")
    golden("services-scenarios-node-a.nft", ruleset_text([t for t in tables if t.name == "netlet"]))


# Partial syncs --------------------------------------------------------------------

WEB_PORTS = [{"name": "http", "containerPort": 8080}]


def small_cluster() -> ClusterState:
    text = manifests(
        node("node-a", "172.18.0.2"),
        node("node-b", "172.18.0.3"),
        pod("web-1", "10.244.0.11", "node-a", {"app": "web"}, ports=WEB_PORTS),
        pod("web-2", "10.244.1.12", "node-b", {"app": "web"}, ports=WEB_PORTS),
        pod("web-3", "10.244.1.13", "node-b", {"app": "web"}, ports=WEB_PORTS),
        pod("client", "10.244.0.50", "node-a", {"app": "client"}, ports=[]),
        service("web", "10.96.0.10", {"app": "web"}),
        service(
            "web-np",
            "10.96.0.11",
            {"app": "web"},
            type="NodePort",
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}],
        ),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "admin"}}}]}],
            },
        },
    )
    result = load_text(text)
    assert result.ok, [str(d) for d in result.errors]
    return result.state


def _with_ip(state: ClusterState, name: str, ip: str) -> None:
    p = state.get(Pod, "default", name)
    assert p is not None
    status = p.status.model_copy(update={"pod_ip": ip, "pod_ips": (PodIP(ip=ip),)})
    state.apply(p.model_copy(update={"status": status}))


def _relabel(state: ClusterState, name: str, **labels: str) -> None:
    p = state.get(Pod, "default", name)
    assert p is not None
    meta = p.metadata.model_copy(update={"labels": {**p.labels, **labels}})
    state.apply(p.model_copy(update={"metadata": meta}))


def _scale_up(state: ClusterState) -> None:
    extra = load_text(
        manifests(pod("web-4", "10.244.1.14", "node-b", {"app": "web"}, ports=WEB_PORTS))
    )
    for obj in extra.state.list(Pod):
        state.apply(obj)


CHANGES: dict[str, Callable[[ClusterState], None]] = {
    "endpoint-moved": lambda s: _with_ip(s, "web-2", "10.244.1.22"),
    "endpoint-added": _scale_up,
    "endpoint-removed": lambda s: s.delete(Pod, "default", "web-1"),
    "label-changed": lambda s: _relabel(s, "client", role="admin"),
}


def partial(change: str) -> dict[str, Transaction]:
    """The transactions node-a's tables get for one change, after a full sync."""
    return partial_and_collection(change)[0]


def partial_and_collection(change: str) -> tuple[dict[str, Transaction], dict[str, Transaction]]:
    """The partial sync's transactions, then the collection's (forced at once) that
    removes what the partial sync deferred (netlet.dataplane.nft.deferred)."""
    state = small_cluster()
    factory, kernels = fake_runners()
    programmer = ClusterProgrammer(state, {"node-a": "ns-a"}, factory)
    try:
        assert all(r.result is not None and r.result.full for r in programmer.sync())
        before = len(kernels["ns-a"].log)
        CHANGES[change](state)
        reports = programmer.sync()
        assert all(r.error is None and r.result is not None and not r.result.full for r in reports)
        sent = kernels["ns-a"].log[before:]
        after_sync = len(kernels["ns-a"].log)
        assert all(r.error is None for r in programmer.collect(force=True))
        collected = kernels["ns-a"].log[after_sync:]
        # After the collection the kernel holds what a full sync of the new state gives.
        fresh = FakeNft()
        for desired in render_node(state, "node-a"):
            fresh.run(_full(desired))
        kernel = kernels["ns-a"]
        stale = _stale_chains(kernel, fresh)
        assert _semantic(kernel, stale) == _semantic(fresh, set())
        return {tx.table: tx for tx in sent if len(tx)}, {tx.table: tx for tx in collected}
    finally:
        programmer.close()


def _full(desired):  # type: ignore[no-untyped-def]
    from netlet.dataplane.nft.sync import full_sync

    return full_sync(desired)


def _stale_chains(kernel: FakeNft, fresh: FakeNft) -> set[str]:
    """Chains a partial sync retired: flushed now, deleted by a later sync."""
    stale = set()
    for (family, name), table in kernel.tables.items():
        for chain in set(table.chains) - set(fresh.chains(family, name)):
            assert kernel.rules(family, name, chain) == [], f"stale chain {chain} not flushed"
            stale.add(chain)
    return stale


def _semantic(kernel: FakeNft, ignore: set[str]) -> list[str]:
    """The dump without slot numbers (a fresh render numbers slots from scratch) and
    without the retired chains."""
    lines = re.sub(r"offset \d+|\{ \d+ : ", "#", kernel.dump()).splitlines()
    return sorted(line for line in lines if not any(line.endswith(f" {c}") for c in ignore))


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_partial_sync_sends_the_golden_transaction(change: str, golden: Golden) -> None:
    sent, collected = partial_and_collection(change)
    text = "".join(f"# {name}\n{tx}" for name, tx in sorted(sent.items()))
    text += "".join(f"# {name}: collection\n{tx}" for name, tx in sorted(collected.items()))
    golden(f"partial-{change}.nft", text)


# Operation counts (proxier_test.go's "partial sync" checks): what a change may touch.
ONLY_ELEMENTS = ["endpoint-moved", "label-changed"]


@pytest.mark.parametrize("change", ONLY_ELEMENTS)
def test_a_moved_endpoint_or_a_label_change_sends_only_set_and_map_elements(change: str) -> None:
    sent = partial(change)
    ops = [op for tx in sent.values() for op in tx]
    assert ops, "something had to change"
    assert all(isinstance(op.obj, Element) for op in ops), [
        op.statement(tx.family, tx.table) for tx in sent.values() for op in tx
    ]


def _elements(tx: Transaction, verb: Verb, set_name: str) -> list[Element]:
    return [
        op.obj
        for op in tx
        if isinstance(op.obj, Element) and op.verb is verb and op.obj.set == set_name
    ]


def test_a_moved_endpoint_only_adds_a_spare_slot_per_chain_and_its_hairpin_pair() -> None:
    # A deletion makes nft -f wait for the kernel's deferred release (docs/nftables.md,
    # "Deletions wait for the kernel"): the services table's transaction only adds.
    sent, collected = partial_and_collection("endpoint-moved")
    tx = sent["netlet"]
    assert all(op.verb is Verb.ADD and isinstance(op.obj, Element) for op in tx), str(tx)
    # web-2 is in the cluster chains of both Services (web, web-np): one slot each. Its
    # new address goes under a spare slot, and the old slot is redirected there.
    spares = _elements(tx, Verb.ADD, "service-endpoints")
    assert [e.value for e in spares] == [("10.244.1.22", "8080")] * 2
    assert all(int(e.key[0]) >= SPARE_BASE for e in spares)
    moves = _elements(tx, Verb.ADD, "service-endpoint-moves")
    assert sorted(e.value for e in moves if e.value) == sorted((e.key[0],) for e in spares)
    assert [e.key for e in _elements(tx, Verb.ADD, "hairpin")] == [("10.244.1.22", "10.244.1.22")]
    # The collection writes the slots back and removes the rest, web-2's old pair too.
    gc = collected["netlet"]
    slots = sorted(e.key for e in moves)
    rewritten = _elements(gc, Verb.ADD, "service-endpoints")
    assert sorted(e.key for e in rewritten) == slots
    assert {e.value for e in rewritten} == {("10.244.1.22", "8080")}
    gone = _elements(gc, Verb.DELETE, "service-endpoints")
    assert sorted(e.key for e in gone) == sorted([*slots, *(e.key for e in spares)])
    assert sorted(e.key for e in _elements(gc, Verb.DELETE, "service-endpoint-moves")) == slots
    assert [e.key for e in _elements(gc, Verb.DELETE, "hairpin")] == [
        ("10.244.1.12", "10.244.1.12")
    ]
    assert gc.count(Verb.ADD) == len(slots) and gc.count(Verb.DELETE) == 3 * len(slots) + 1


def test_a_label_change_edits_the_selector_class_set_and_never_a_rule() -> None:
    sent = partial("label-changed")
    assert list(sent) == ["netlet-policy"]
    assert str(sent["netlet-policy"]).splitlines() == [
        statement
        for statement in str(sent["netlet-policy"]).splitlines()
        if "add element" in statement
    ]
