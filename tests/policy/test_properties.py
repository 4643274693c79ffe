"""Property tests on random small clusters and policies (hypothesis).

1. The class-based matrix equals the naive per-pair evaluation (`verdict` for
   every pair of endpoints and every probe): pods, host-network pods, nodes and
   external CIDR probes, with NetworkPolicies, Admin/Baseline
   ClusterNetworkPolicies, an AdminNetworkPolicy and the BaselineAdminNetworkPolicy.
2. For NetworkPolicy-only clusters, `verdict` equals a small reference evaluator
   written here straight from the kubernetes.io NetworkPolicy page (selectors
   evaluated on the raw objects, no program, no groups).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlet.cluster.build import load_text
from netlet.cluster.config import ClusterConfig
from netlet.policy.classes import build_classes
from netlet.policy.compile import compile_program
from netlet.policy.matrix import Probe, class_view, compute_matrix
from netlet.policy.verdict import Endpoint, EndpointKind, PolicyEngine
from netlet.resources.core import Namespace, Pod, Protocol
from netlet.resources.networking import NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort
from netlet.resources.selectors import matches

PROBES = (
    Probe(Protocol.TCP, 80),
    Probe(Protocol.TCP, 81),
    Probe(Protocol.TCP, 85),
    Probe(Protocol.UDP, 53),
    Probe(Protocol.SCTP, 80),
)
NAMESPACES = ("ns-a", "ns-b", "ns-c")
CIDRS = ("10.244.0.0/16", "10.244.0.0/17", "10.244.128.0/17", "172.18.0.0/24", "203.0.113.0/24")
EXTERNAL_PROBES = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("8.8.8.0/30"))

labels_st = st.dictionaries(
    st.sampled_from(("app", "tier")), st.sampled_from(("x", "y")), max_size=2
)
selector_st = st.one_of(
    st.just({}),
    labels_st.map(lambda d: {"matchLabels": d}),
    st.sampled_from(("app", "tier")).map(
        lambda k: {"matchExpressions": [{"key": k, "operator": "NotIn", "values": ["x"]}]}
    ),
)
ns_selector_st = st.one_of(
    st.just({}),
    st.sampled_from(("p", "q")).map(lambda v: {"matchLabels": {"env": v}}),
    st.sampled_from(NAMESPACES).map(lambda n: {"matchLabels": {"kubernetes.io/metadata.name": n}}),
)


@st.composite
def pod_st(draw: st.DrawFn, index: int) -> dict[str, Any]:
    ports = []
    if draw(st.booleans()):
        ports.append({"name": "http", "containerPort": draw(st.sampled_from((80, 81)))})
    if draw(st.booleans()):
        ports.append({"name": "dns", "containerPort": 53, "protocol": "UDP"})
    spec: dict[str, Any] = {
        "nodeName": draw(st.sampled_from(("node-1", "node-2"))),
        "containers": [{"name": "c", "ports": ports}],
    }
    if draw(st.integers(0, 6)) == 0:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p{index}",
            "namespace": draw(st.sampled_from(NAMESPACES)),
            "labels": draw(labels_st),
        },
        "spec": spec,
    }


np_port_st = st.sampled_from(
    (
        {"port": 80},
        {"port": 80, "endPort": 85},
        {"protocol": "UDP", "port": 53},
        {"protocol": "UDP"},
        {"port": "http"},
        {"protocol": "UDP", "port": "dns"},
        {"protocol": "SCTP", "port": 80},
    )
)


@st.composite
def np_peer_st(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return {"podSelector": draw(selector_st)}
    if kind == 1:
        return {"namespaceSelector": draw(ns_selector_st)}
    if kind == 2:
        return {"namespaceSelector": draw(ns_selector_st), "podSelector": draw(selector_st)}
    cidr = draw(st.sampled_from(CIDRS))
    block: dict[str, Any] = {"cidr": cidr}
    if cidr == "10.244.0.0/16" and draw(st.booleans()):
        block["except"] = ["10.244.1.0/24"]
    return {"ipBlock": block}


@st.composite
def np_rule_st(draw: st.DrawFn, side: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule[side] = draw(st.lists(np_peer_st(), min_size=1, max_size=2))
    if draw(st.booleans()):
        rule["ports"] = draw(st.lists(np_port_st, min_size=1, max_size=2))
    return rule


@st.composite
def network_policy_st(draw: st.DrawFn, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(selector_st)}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    if draw(st.booleans()):
        spec["ingress"] = draw(st.lists(np_rule_st("from"), max_size=2))
    if draw(st.booleans()):
        spec["egress"] = draw(st.lists(np_rule_st("to"), max_size=2))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{index}", "namespace": draw(st.sampled_from(NAMESPACES))},
        "spec": spec,
    }


protocols_st = st.sampled_from(
    (
        None,
        [{"tcp": {"destinationPort": {"number": 80}}}],
        [{"tcp": {"destinationPort": {"range": {"start": 80, "end": 84}}}}],
        [{"udp": {"destinationPort": {"number": 53}}}],
        [{"sctp": {"destinationPort": {"number": 80}}}],
        [{"destinationNamedPort": "http"}],
    )
)


@st.composite
def admin_peer_st(draw: st.DrawFn, egress: bool) -> dict[str, Any]:
    kind = draw(st.integers(0, 5 if egress else 2))
    if kind == 0:
        return {"namespaces": draw(ns_selector_st)}
    if kind == 1:
        return {
            "pods": {"namespaceSelector": draw(ns_selector_st), "podSelector": draw(selector_st)}
        }
    if kind == 2:
        return {"unknownPeerKind": {"x": 1}}  # fail closed
    if kind == 3:
        return {"networks": [draw(st.sampled_from(CIDRS))]}
    if kind == 4:
        return {"nodes": draw(st.sampled_from(({}, {"matchLabels": {"role": "infra"}})))}
    return {"namespaces": {}}


@st.composite
def admin_rule_st(draw: st.DrawFn, egress: bool, actions: tuple[str, ...]) -> dict[str, Any]:
    side = "to" if egress else "from"
    peers = draw(st.lists(admin_peer_st(egress), min_size=1, max_size=2))
    rule: dict[str, Any] = {"action": draw(st.sampled_from(actions)), side: peers}
    protocols = draw(protocols_st)
    special = any(set(p) & {"networks", "nodes"} for p in peers)
    if protocols is not None and not (special and "destinationNamedPort" in protocols[0]):
        rule["protocols"] = protocols
    return rule


@st.composite
def cluster_policy_st(draw: st.DrawFn, index: int) -> dict[str, Any]:
    subject = draw(
        st.one_of(
            ns_selector_st.map(lambda s: {"namespaces": s}),
            st.tuples(ns_selector_st, selector_st).map(
                lambda t: {"pods": {"namespaceSelector": t[0], "podSelector": t[1]}}
            ),
        )
    )
    actions = ("Accept", "Deny", "Pass")
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": f"cnp{index}"},
        "spec": {
            "tier": draw(st.sampled_from(("Admin", "Baseline"))),
            "priority": draw(st.integers(0, 2)),
            "subject": subject,
            "ingress": draw(st.lists(admin_rule_st(False, actions), max_size=2)),
            "egress": draw(st.lists(admin_rule_st(True, actions), max_size=2)),
        },
    }


def _anp_ports(protocols: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if protocols is None:
        return None
    entry = protocols[0]
    if "destinationNamedPort" in entry:
        return [{"namedPort": entry["destinationNamedPort"]}]
    ((proto, value),) = entry.items()
    port = value["destinationPort"]
    if "number" in port:
        return [{"portNumber": {"protocol": proto.upper(), "port": port["number"]}}]
    span = port["range"]
    return [{"portRange": {"protocol": proto.upper(), "start": span["start"], "end": span["end"]}}]


@st.composite
def v1alpha1_st(draw: st.DrawFn, baseline: bool) -> dict[str, Any]:
    """An ANP or the BANP, from a CNP-shaped draw converted to the v1alpha1 fields."""
    actions = ("Allow", "Deny") if baseline else ("Allow", "Deny", "Pass")
    spec: dict[str, Any] = {"subject": {"namespaces": draw(ns_selector_st)}}
    for side, egress in (("ingress", False), ("egress", True)):
        rules = []
        for rule in draw(st.lists(admin_rule_st(egress, actions), max_size=2)):
            ports = _anp_ports(rule.pop("protocols", None))
            if ports is not None:
                rule["ports"] = ports
            rules.append(rule)
        spec[side] = rules
    if baseline:
        meta, kind = {"name": "default"}, "BaselineAdminNetworkPolicy"
    else:
        meta, kind = {"name": "anp"}, "AdminNetworkPolicy"
        spec["priority"] = draw(st.integers(0, 2))
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": kind,
        "metadata": meta,
        "spec": spec,
    }


BASE = [
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"role": "infra"}},
    },
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-2", "labels": {"role": "worker"}},
    },
]


@st.composite
def cluster_st(draw: st.DrawFn, *, admin: bool) -> str:
    docs: list[dict[str, Any]] = list(BASE)
    for name in NAMESPACES:
        env = draw(st.sampled_from(("p", "q")))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"env": env}},
            }
        )
    docs += [draw(pod_st(i)) for i in range(draw(st.integers(2, 7)))]
    docs += [draw(network_policy_st(i)) for i in range(draw(st.integers(0, 4)))]
    if admin:
        docs += [draw(cluster_policy_st(i)) for i in range(draw(st.integers(0, 4)))]
        if draw(st.booleans()):
            docs.append(draw(v1alpha1_st(False)))
        if draw(st.booleans()):
            docs.append(draw(v1alpha1_st(True)))
    return yaml.safe_dump_all(docs)


def _engine(text: str) -> PolicyEngine:
    result = load_text(text, name="random.yaml")
    assert result.ok, [str(d) for d in result.errors]
    return PolicyEngine(compile_program(result.state))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(admin=True))
def test_class_matrix_equals_per_pair_verdicts(text: str) -> None:
    engine = _engine(text)
    index = build_classes(engine.program, include_nodes=True, probes=EXTERNAL_PROBES)
    matrix = compute_matrix(engine, index, PROBES)
    for i, a in enumerate(index.endpoints):
        for j, b in enumerate(index.endpoints):
            for k, probe in enumerate(PROBES):
                want = engine.verdict(a.endpoint, b.endpoint, probe.protocol, probe.port)
                assert matrix.allowed(i, j, k) == want.allowed, (a.label, b.label, str(probe))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(admin=True))
def test_default_port_matrix_probes_each_destination_on_its_declared_ports(text: str) -> None:
    engine = _engine(text)
    index = build_classes(engine.program, with_declared_ports=True)
    matrix = compute_matrix(engine, index)
    for i, a in enumerate(index.endpoints):
        for j, b in enumerate(index.endpoints):
            probed = {
                (matrix.probes[k].protocol, matrix.probes[k].port) for k in matrix.probes_for(j)
            }
            assert probed == set(b.declared_ports)
            for k in matrix.probes_for(j):
                probe = matrix.probes[k]
                want = engine.verdict(a.endpoint, b.endpoint, probe.protocol, probe.port).allowed
                assert matrix.allowed(i, j, k) == want


# A reference NetworkPolicy evaluator, from the kubernetes.io page only ----------------------


def _ns_labels(state: Any, namespace: str) -> dict[str, str]:
    ns = state.get(Namespace, "", namespace)
    return dict(ns.labels) if ns is not None else {"kubernetes.io/metadata.name": namespace}


def _peer_matches(
    state: Any, policy: NetworkPolicy, peer: NetworkPolicyPeer, other: Endpoint
) -> bool:
    if peer.ip_block is not None:
        address = other.ip
        inside = address in peer.ip_block.network
        return inside and not any(address in hole for hole in peer.ip_block.holes)
    if other.kind != EndpointKind.POD or other.pod is None:
        return False  # host-network pods and nodes are not selected by pod/namespace selectors
    pod = state.get(Pod, other.pod.namespace, other.pod.name)
    if peer.namespace_selector is None:
        ns_ok = pod.namespace == policy.namespace
    else:
        ns_ok = matches(peer.namespace_selector, _ns_labels(state, pod.namespace))
    pod_ok = peer.pod_selector is None or matches(peer.pod_selector, pod.labels)
    return ns_ok and pod_ok


def _port_matches(port: NetworkPolicyPort, protocol: Protocol, number: int, dst: Any) -> bool:
    if port.protocol != protocol:
        return False
    if port.port is None:
        return True
    if isinstance(port.port, str):
        return dst is not None and dst.named_port(port.port, protocol) == number
    return port.port <= number <= (port.end_port or port.port)


def _side_allows(
    state: Any,
    subject: Endpoint,
    other: Endpoint,
    dst: Any,
    protocol: Protocol,
    number: int,
    egress: bool,
) -> bool:
    if subject.kind != EndpointKind.POD or subject.pod is None:
        return True
    pod = state.get(Pod, subject.pod.namespace, subject.pod.name)
    kind = "Egress" if egress else "Ingress"
    selecting = [
        np
        for np in state.list(NetworkPolicy, pod.namespace)
        if kind in np.spec.policy_types and matches(np.spec.pod_selector, pod.labels)
    ]
    if not selecting:
        return True
    for np in selecting:
        for rule in np.spec.egress if egress else np.spec.ingress:
            peers = rule.to if egress else rule.from_
            peer_ok = not peers or any(_peer_matches(state, np, p, other) for p in peers)
            port_ok = not rule.ports or any(
                _port_matches(p, protocol, number, dst) for p in rule.ports
            )
            if peer_ok and port_ok:
                return True
    return False


def reference_allowed(
    state: Any, src: Endpoint, dst: Endpoint, protocol: Protocol, number: int
) -> bool:
    if src.kind == EndpointKind.POD and src.pod == dst.pod:
        return True  # a pod to its own IP never meets policy
    dst_pod = (
        state.get(Pod, dst.pod.namespace, dst.pod.name)
        if dst.kind == EndpointKind.POD and dst.pod
        else None
    )
    egress = _side_allows(state, src, dst, dst_pod, protocol, number, egress=True)
    if src.kind == EndpointKind.NODE and dst_pod is not None and src.node == dst.node:
        return egress  # "connections from the pod's node" are always allowed in
    return egress and _side_allows(state, dst, src, dst_pod, protocol, number, egress=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(admin=False))
def test_network_policy_verdicts_match_a_reference_evaluator(text: str) -> None:
    result = load_text(text, name="random.yaml")
    assert result.ok
    engine = PolicyEngine(compile_program(result.state))
    index = build_classes(engine.program, include_nodes=True, probes=EXTERNAL_PROBES)
    for a in index.endpoints:
        for b in index.endpoints:
            for probe in PROBES:
                got = engine.verdict(a.endpoint, b.endpoint, probe.protocol, probe.port).allowed
                want = reference_allowed(
                    result.state, a.endpoint, b.endpoint, probe.protocol, probe.port
                )
                assert got == want, (a.label, b.label, str(probe))


# Dual stack: the same rules per family ---------------------------------------------------

DUAL_STACK_POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: ns-a}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{ipBlock: {cidr: "fd00:10:244::/64", except: ["fd00:10:244::/80"]}}, {podSelector: {matchLabels: {app: x}}}]}]
  egress: [{to: [{ipBlock: {cidr: 10.244.0.0/16}}, {ipBlock: {cidr: "2001:db8::/32"}}], ports: [{port: http}, {port: 53, protocol: UDP}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: v6-out}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {env: p}}}
  egress: [{action: Deny, to: [{networks: ["2001:db8:1::/48", 203.0.113.0/24]}]}]
"""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(admin=True), st.sampled_from((4, 6)))
def test_each_family_has_its_own_matrix_equal_to_its_verdicts(text: str, family: int) -> None:
    result = load_text(text + "---\n" + DUAL_STACK_POLICIES, config=ClusterConfig(dual_stack=True))
    assert result.ok, [str(d) for d in result.errors]
    engine = PolicyEngine(compile_program(result.state))
    probes = [ipaddress.ip_network("2001:db8::/46"), *EXTERNAL_PROBES]
    index = build_classes(engine.program, family=family, include_nodes=True, probes=probes)
    assert all(e.endpoint.ip.version == family for e in index.endpoints)
    matrix = compute_matrix(engine, index, PROBES)
    for i, a in enumerate(index.endpoints):
        for j, b in enumerate(index.endpoints):
            for k, probe in enumerate(PROBES):
                want = engine.verdict(a.endpoint, b.endpoint, probe.protocol, probe.port)
                assert matrix.allowed(i, j, k) == want.allowed, (a.label, b.label, str(probe))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(admin=True))
def test_grouped_view_cells_summarize_their_endpoint_pairs(text: str) -> None:
    engine = _engine(text)
    index = build_classes(engine.program, include_nodes=True, with_declared_ports=True)
    matrix = compute_matrix(engine, index)
    view = class_view(matrix)
    groups = [c for c in index.classes if c.members]
    assert [len(m) for m in view.members] == [len(c.members) for c in groups]
    for i, src in enumerate(groups):
        for j, dst in enumerate(groups):
            values: dict[int, list[bool]] = {}
            for a in src.members:
                for b in dst.members:
                    if a != b:
                        for k in matrix.probes_for(b):
                            values.setdefault(k, []).append(matrix.allowed(a, b, k))
            cell = view.cells[i][j]
            if not values:
                assert cell is None
                continue
            assert cell is not None
            assert set(cell.allowed) == {k for k, v in values.items() if all(v)}
            assert set(cell.denied) == {k for k, v in values.items() if not any(v)}
            assert set(cell.mixed) == {k for k, v in values.items() if any(v) and not all(v)}
