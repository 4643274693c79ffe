"""From a ClusterState to a PolicyProgram: policies translated, groups resolved.

What this module decides (the rest of the package only evaluates):

- NetworkPolicy v1: subject = pods of the policy's namespace matching
  ``podSelector`` (``{}`` selects all); ``policyTypes`` (already defaulted by the
  model: Ingress, plus Egress when there are egress rules) becomes
  ``isolates``; rules of a type not listed are ignored. A rule with no
  ``from``/``to`` matches every peer, with no ``ports`` every port. Peers:
  ``podSelector`` alone = pods of the policy's namespace; ``namespaceSelector``
  alone = every pod of the matching namespaces; both in one peer = AND; ipBlock
  = the CIDR minus its ``except`` holes, matched against any address (pod IPs
  too). Ports: protocol defaults to TCP; no port = every port of that protocol;
  ``endPort`` makes a range; a name stays symbolic (resolved on the destination).
- ClusterNetworkPolicy v1alpha2 and AdminNetworkPolicy/BaselineAdminNetworkPolicy
  v1alpha1: Allow is Accept; ANP is the Admin tier, BANP the Baseline tier.
  Subjects and pod peers never include host-network pods. A peer with no field
  netlet knows (written for a newer CRD) makes the rule *fail closed*: an
  Accept rule then matches nothing; a Deny or Pass rule becomes "Deny all"
  (every peer, every port), as the peer types' doc comments require.
- Policies are ordered inside each tier as program.py documents.

Selector evaluation is exact: selectors are evaluated once per distinct
(namespace, pod labels) pair ("label set"), never on projections.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netlet.cluster.state import ClusterState
from netlet.policy.dns import resolve_patterns
from netlet.policy.program import (
    BANP_PRIORITY,
    POLICY_KIND_RANK,
    TIER_ORDER,
    Action,
    Direction,
    DnsAnswers,
    DomainGroup,
    NamedPort,
    NodeGroup,
    NodeInfo,
    Peer,
    PeerKind,
    PodGroup,
    PodInfo,
    PodKey,
    Policy,
    PolicyProgram,
    PolicyRef,
    PortEntry,
    PortRange,
    Rule,
    Tier,
    TierProgram,
    stable_id,
)
from netlet.resources.base import LabelSelector
from netlet.resources.core import Namespace, Node, Pod, Protocol
from netlet.resources.net import AddressSet, IPAddress
from netlet.resources.networking import (
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
)
from netlet.resources.policy_api import (
    AdminNetworkPolicy,
    ANPEgressRule,
    ANPIngressRule,
    ANPPort,
    BANPEgressRule,
    BANPIngressRule,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
    CNPProtocol,
    EgressPeer,
    IngressPeer,
    NamespacedPod,
    Subject,
)
from netlet.resources.policy_api import Port as CNPPort
from netlet.resources.selectors import EVERYTHING, Selector, compile_selector

ACTIONS = {
    "Accept": Action.ACCEPT,
    "Allow": Action.ACCEPT,
    "Deny": Action.DENY,
    "Pass": Action.PASS,
}
ALL_PORTS = (1, 65535)
_TERMINATED = ("Succeeded", "Failed")

AnyPeer = IngressPeer | EgressPeer


@dataclass(frozen=True, slots=True)
class _LabelSet:
    namespace: str
    labels: dict[str, str]
    pods: tuple[PodKey, ...]


class _Builder:
    """Resolves selectors to groups, memoized; collects the groups it made."""

    def __init__(self, state: ClusterState, dns: DnsAnswers) -> None:
        self.state = state
        self.dns = dns
        self.pods: list[Pod] = [
            p
            for p in state.list(Pod)
            if p.ips and p.status.phase not in _TERMINATED and not p.metadata.deletion_timestamp
        ]
        names = {ns.name for ns in state.list(Namespace)} | {p.namespace for p in self.pods}
        self.namespace_labels = {ns: state.namespace_labels(ns) for ns in sorted(names)}
        by_key: dict[tuple[str, frozenset[tuple[str, str]]], list[PodKey]] = defaultdict(list)
        for pod in self.pods:
            if not pod.spec.host_network:
                by_key[(pod.namespace, frozenset(pod.labels.items()))].append(
                    PodKey(pod.namespace, pod.name)
                )
        self.label_sets = [
            _LabelSet(ns, dict(labels), tuple(keys)) for (ns, labels), keys in by_key.items()
        ]
        self.sets_by_ns: dict[str, list[int]] = defaultdict(list)
        for index, ls in enumerate(self.label_sets):
            self.sets_by_ns[ls.namespace].append(index)
        self.pod_ips: dict[PodKey, tuple[IPAddress, ...]] = {
            PodKey(p.namespace, p.name): tuple(ipaddress.ip_address(ip) for ip in p.ips)
            for p in self.pods
        }
        self.nodes = state.list(Node)
        self.node_ips = {n.name: _node_ips(n) for n in self.nodes}
        self.pod_groups: dict[str, PodGroup] = {}
        self.group_sets: dict[str, tuple[int, ...]] = {}  # group id -> label set indexes
        self.node_groups: dict[str, NodeGroup] = {}
        self.domain_groups: dict[str, DomainGroup] = {}
        self._ns_cache: dict[Selector, tuple[str, ...]] = {}
        self._select_cache: dict[tuple[str, Selector], tuple[int, ...]] = {}

    # Selection ------------------------------------------------------------------------

    def _namespaces(self, selector: Selector) -> tuple[str, ...]:
        found = self._ns_cache.get(selector)
        if found is None:
            found = tuple(ns for ns, lbl in self.namespace_labels.items() if selector.matches(lbl))
            self._ns_cache[selector] = found
        return found

    def _select(self, namespace: str, selector: Selector) -> tuple[int, ...]:
        key = (namespace, selector)
        found = self._select_cache.get(key)
        if found is None:
            found = tuple(
                i
                for i in self.sets_by_ns.get(namespace, ())
                if selector.matches(self.label_sets[i].labels)
            )
            self._select_cache[key] = found
        return found

    def pod_group(
        self, namespace: str | None, namespace_selector: Selector | None, pod_selector: Selector
    ) -> str:
        if namespace is not None:
            text = f"namespace={namespace}|pods={pod_selector}"
        else:
            text = f"namespaces={namespace_selector}|pods={pod_selector}"
        group_id = stable_id("pods", text)
        if group_id in self.pod_groups:
            return group_id
        namespaces = (
            (namespace,)
            if namespace is not None
            else self._namespaces(namespace_selector or EVERYTHING)
        )
        sets = tuple(i for ns in namespaces for i in self._select(ns, pod_selector))
        members = frozenset(k for i in sets for k in self.label_sets[i].pods)
        addresses = _addresses(ip for k in members for ip in self.pod_ips[k])
        self.group_sets[group_id] = sets
        self.pod_groups[group_id] = PodGroup(
            group_id, namespace, namespace_selector, pod_selector, members, addresses
        )
        return group_id

    def node_group(self, selector: Selector) -> str:
        group_id = stable_id("nodes", str(selector))
        if group_id not in self.node_groups:
            members = frozenset(n.name for n in self.nodes if selector.matches(n.labels))
            addresses = _addresses(ip for name in members for ip in self.node_ips[name])
            self.node_groups[group_id] = NodeGroup(group_id, selector, members, addresses)
        return group_id

    def domain_group(self, patterns: Sequence[str]) -> str:
        canonical = tuple(sorted({p.rstrip(".").lower() for p in patterns}))
        group_id = stable_id("domains", ",".join(canonical))
        if group_id not in self.domain_groups:
            names, ips = resolve_patterns(self.dns, canonical)
            self.domain_groups[group_id] = DomainGroup(group_id, canonical, names, _addresses(ips))
        return group_id

    # Tables -------------------------------------------------------------------------

    def pod_infos(self) -> tuple[PodInfo, ...]:
        groups_of_set: dict[int, set[str]] = defaultdict(set)
        for group_id, sets in self.group_sets.items():
            for i in sets:
                groups_of_set[i].add(group_id)
        frozen = {i: frozenset(groups_of_set.get(i, ())) for i in range(len(self.label_sets))}
        set_of_pod = {k: i for i, ls in enumerate(self.label_sets) for k in ls.pods}
        infos = []
        for pod in self.pods:
            key = PodKey(pod.namespace, pod.name)
            named: dict[tuple[str, Protocol], int] = {}
            declared: set[tuple[Protocol, int]] = set()
            for container in pod.spec.serving_containers:
                for port in container.ports:
                    declared.add((port.protocol, port.container_port))
                    if port.name:
                        named[(port.name, port.protocol)] = port.container_port
            index = set_of_pod.get(key)
            infos.append(
                PodInfo(
                    key=key,
                    labels=pod.labels,
                    node=pod.spec.node_name or "",
                    ips=self.pod_ips[key],
                    host_network=pod.spec.host_network,
                    named_ports=named,
                    declared_ports=tuple(sorted(declared)),
                    groups=frozen[index] if index is not None else frozenset(),
                )
            )
        return tuple(infos)

    def node_infos(self) -> tuple[NodeInfo, ...]:
        host_pods: dict[str, list[PodKey]] = defaultdict(list)
        for pod in self.pods:
            if pod.spec.host_network and pod.spec.node_name:
                host_pods[pod.spec.node_name].append(PodKey(pod.namespace, pod.name))
        return tuple(
            NodeInfo(
                name=node.name,
                labels=node.labels,
                ips=self.node_ips[node.name],
                groups=frozenset(g.id for g in self.node_groups.values() if node.name in g.members),
                host_network_pods=tuple(host_pods.get(node.name, ())),
            )
            for node in self.nodes
        )


def _node_ips(node: Node) -> tuple[IPAddress, ...]:
    out = []
    for address in node.status.addresses:
        if address.type in ("InternalIP", "ExternalIP"):
            try:
                out.append(ipaddress.ip_address(address.address))
            except ValueError:
                continue
    return tuple(out)


def _addresses(ips: Iterable[IPAddress]) -> AddressSet:
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for ip in ips:
        value = int(ip)
        (v4 if ip.version == 4 else v6).append((value, value))
    return AddressSet(_merge(v4), _merge(v6))


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


# NetworkPolicy ----------------------------------------------------------------------


def _np_peer(b: _Builder, np: NetworkPolicy, peer: NetworkPolicyPeer, path: str) -> Peer:
    if peer.ip_block is not None:
        block = peer.ip_block
        addresses = AddressSet.of(block.network)
        if block.holes:
            addresses = addresses - AddressSet.of(*block.holes)
        text = f"ipBlock {block.cidr}" + (
            f" except {', '.join(block.except_)}" if block.except_ else ""
        )
        return Peer(PeerKind.CIDRS, addresses=addresses, text=text, field=path)
    pods = compile_selector(peer.pod_selector) if peer.pod_selector is not None else EVERYTHING
    if peer.namespace_selector is None:
        group = b.pod_group(np.namespace, None, pods)
    else:
        group = b.pod_group(None, compile_selector(peer.namespace_selector), pods)
    return Peer(PeerKind.PODS, group=group, field=path)


def _np_ports(ports: tuple[NetworkPolicyPort, ...]) -> tuple[PortEntry, ...] | None:
    if not ports:
        return None
    out: list[PortEntry] = []
    for port in ports:
        if port.port is None:
            out.append(PortRange(port.protocol, *ALL_PORTS))
        elif isinstance(port.port, str):
            out.append(NamedPort(port.port, port.protocol))
        else:
            out.append(PortRange(port.protocol, port.port, port.end_port or port.port))
    return tuple(out)


def _network_policy(b: _Builder, np: NetworkPolicy) -> Policy:
    spec = np.spec
    subject = b.pod_group(np.namespace, None, compile_selector(spec.pod_selector))
    isolates = frozenset(Direction(t) for t in spec.policy_types)
    ingress: list[Rule] = []
    egress: list[Rule] = []
    if Direction.INGRESS in isolates:
        for i, rule in enumerate(spec.ingress):
            base = f"spec.ingress[{i}]"
            peers = tuple(
                _np_peer(b, np, p, f"{base}.from[{j}]") for j, p in enumerate(rule.from_)
            ) or (Peer(PeerKind.ANY, field=base),)
            ingress.append(
                Rule(Direction.INGRESS, i, "", Action.ACCEPT, peers, _np_ports(rule.ports), base)
            )
    if Direction.EGRESS in isolates:
        for i, out_rule in enumerate(spec.egress):
            base = f"spec.egress[{i}]"
            peers = tuple(
                _np_peer(b, np, p, f"{base}.to[{j}]") for j, p in enumerate(out_rule.to)
            ) or (Peer(PeerKind.ANY, field=base),)
            egress.append(
                Rule(Direction.EGRESS, i, "", Action.ACCEPT, peers, _np_ports(out_rule.ports), base)
            )
    return Policy(
        PolicyRef(np.KIND, np.namespace, np.name),
        Tier.NETWORK_POLICY,
        0,
        subject,
        isolates,
        tuple(ingress),
        tuple(egress),
    )


# ClusterNetworkPolicy / AdminNetworkPolicy / BaselineAdminNetworkPolicy -----------------


def _selector(selector: LabelSelector) -> Selector:
    return compile_selector(selector)


def _subject(b: _Builder, subject: Subject) -> str:
    if subject.namespaces is not None:
        return b.pod_group(None, _selector(subject.namespaces), EVERYTHING)
    pods = subject.pods
    assert pods is not None  # the model requires exactly one
    return b.pod_group(None, _selector(pods.namespace_selector), _selector(pods.pod_selector))


def _admin_peer(b: _Builder, peer: AnyPeer, path: str) -> Peer | None:
    """None when the peer has no field netlet knows (fail closed)."""
    if peer.namespaces is not None:
        group = b.pod_group(None, _selector(peer.namespaces), EVERYTHING)
        return Peer(PeerKind.PODS, group=group, field=path)
    pods: NamespacedPod | None = peer.pods
    if pods is not None:
        group = b.pod_group(None, _selector(pods.namespace_selector), _selector(pods.pod_selector))
        return Peer(PeerKind.PODS, group=group, field=path)
    if isinstance(peer, EgressPeer):
        if peer.nodes is not None:
            return Peer(PeerKind.NODES, group=b.node_group(_selector(peer.nodes)), field=path)
        if peer.networks is not None:
            text = "networks " + ", ".join(peer.networks)
            addresses = AddressSet.of(*peer.networks)
            return Peer(PeerKind.CIDRS, addresses=addresses, text=text, field=path)
        if peer.domain_names is not None:
            return Peer(PeerKind.DOMAINS, group=b.domain_group(peer.domain_names), field=path)
    return None


def _cnp_ports(protocols: tuple[CNPProtocol, ...] | None) -> tuple[PortEntry, ...] | None:
    if protocols is None:
        return None
    out: list[PortEntry] = []
    for entry in protocols:
        if entry.destination_named_port is not None:
            out.append(NamedPort(entry.destination_named_port, None))
            continue
        for proto, value in (
            (Protocol.TCP, entry.tcp),
            (Protocol.UDP, entry.udp),
            (Protocol.SCTP, entry.sctp),
        ):
            if value is not None:
                out.append(_cnp_range(proto, value.destination_port))
    return tuple(out)


def _cnp_range(protocol: Protocol, port: CNPPort | None) -> PortRange:
    if port is not None and port.number is not None:
        return PortRange(protocol, port.number, port.number)
    if port is not None and port.range is not None:
        return PortRange(protocol, port.range.start, port.range.end)
    # destinationPort omitted ("all ports for the specified protocol", api-overview "Rules");
    # the v0.2.0 CRD requires it, the model does too, this keeps the reading total.
    return PortRange(protocol, *ALL_PORTS)


def _anp_ports(ports: tuple[ANPPort, ...] | None) -> tuple[PortEntry, ...] | None:
    if ports is None:
        return None
    out: list[PortEntry] = []
    for port in ports:
        if port.port_number is not None:
            number = port.port_number
            out.append(PortRange(Protocol(number.protocol), number.port, number.port))
        elif port.port_range is not None:
            span = port.port_range
            out.append(PortRange(Protocol(span.protocol), span.start, span.end))
        elif port.named_port is not None:
            out.append(NamedPort(port.named_port, None))
    return tuple(out)


def _admin_rule(
    b: _Builder,
    direction: Direction,
    index: int,
    name: str,
    action_text: str,
    peers: Sequence[AnyPeer],
    ports: tuple[PortEntry, ...] | None,
) -> Rule:
    side = "ingress" if direction == Direction.INGRESS else "egress"
    list_name = "from" if direction == Direction.INGRESS else "to"
    base = f"spec.{side}[{index}]"
    resolved = [_admin_peer(b, p, f"{base}.{list_name}[{j}]") for j, p in enumerate(peers)]
    action = ACTIONS[action_text]
    if any(p is None for p in resolved):
        if action == Action.ACCEPT:
            return Rule(direction, index, name, action, (), ports, base, fail_closed=True)
        return Rule(
            direction,
            index,
            name,
            Action.DENY,
            (Peer(PeerKind.ANY, field=base),),
            None,
            base,
            fail_closed=True,
        )
    known = tuple(p for p in resolved if p is not None)
    return Rule(direction, index, name, action, known, ports, base)


def _cluster_policy(b: _Builder, cnp: ClusterNetworkPolicy) -> Policy:
    spec = cnp.spec
    ingress = tuple(
        _admin_rule(b, Direction.INGRESS, i, r.name, r.action, r.from_, _cnp_ports(r.protocols))
        for i, r in enumerate(spec.ingress)
    )
    egress = tuple(
        _admin_rule(b, Direction.EGRESS, i, r.name, r.action, r.to, _cnp_ports(r.protocols))
        for i, r in enumerate(spec.egress)
    )
    tier = Tier.ADMIN if spec.tier == "Admin" else Tier.BASELINE
    return Policy(
        PolicyRef(cnp.KIND, "", cnp.name),
        tier,
        spec.priority,
        _subject(b, spec.subject),
        frozenset(),
        ingress,
        egress,
    )


def _v1alpha1_policy(b: _Builder, obj: AdminNetworkPolicy | BaselineAdminNetworkPolicy) -> Policy:
    spec = obj.spec
    ingress_rules: Sequence[ANPIngressRule | BANPIngressRule] = spec.ingress
    egress_rules: Sequence[ANPEgressRule | BANPEgressRule] = spec.egress
    ingress = tuple(
        _admin_rule(b, Direction.INGRESS, i, r.name, r.action, r.from_, _anp_ports(r.ports))
        for i, r in enumerate(ingress_rules)
    )
    egress = tuple(
        _admin_rule(b, Direction.EGRESS, i, r.name, r.action, r.to, _anp_ports(r.ports))
        for i, r in enumerate(egress_rules)
    )
    if isinstance(obj, AdminNetworkPolicy):
        tier, priority = Tier.ADMIN, obj.spec.priority
    else:
        tier, priority = Tier.BASELINE, BANP_PRIORITY
    return Policy(
        PolicyRef(obj.KIND, "", obj.name),
        tier,
        priority,
        _subject(b, spec.subject),
        frozenset(),
        ingress,
        egress,
    )


def tier_order_key(policy: Policy) -> tuple[int, str, int, str]:
    """Evaluation order inside a tier (netlet's documented tie-break)."""
    return (
        policy.priority,
        policy.ref.name,
        POLICY_KIND_RANK.get(policy.ref.kind, 9),
        policy.ref.namespace,
    )


def compile_program(state: ClusterState, dns: DnsAnswers | None = None) -> PolicyProgram:
    """Translate every policy in `state` and resolve its groups."""
    b = _Builder(state, dns or DnsAnswers())
    policies: list[Policy] = []
    for np in state.list(NetworkPolicy):
        policies.append(_network_policy(b, np))
    for cnp in state.list(ClusterNetworkPolicy):
        policies.append(_cluster_policy(b, cnp))
    for anp in state.list(AdminNetworkPolicy):
        policies.append(_v1alpha1_policy(b, anp))
    for banp in state.list(BaselineAdminNetworkPolicy):
        policies.append(_v1alpha1_policy(b, banp))
    tiers = []
    for tier in TIER_ORDER:
        members = [p for p in policies if p.tier == tier]
        if tier == Tier.NETWORK_POLICY:
            members.sort(key=lambda p: (p.ref.namespace, p.ref.name))
        else:
            members.sort(key=tier_order_key)
        tiers.append(TierProgram(tier, tuple(members)))
    return PolicyProgram(
        tiers=tuple(tiers),
        pod_groups=tuple(sorted(b.pod_groups.values(), key=lambda g: g.id)),
        node_groups=tuple(sorted(b.node_groups.values(), key=lambda g: g.id)),
        domain_groups=tuple(sorted(b.domain_groups.values(), key=lambda g: g.id)),
        pods=b.pod_infos(),
        nodes=b.node_infos(),
        dns=b.dns,
    )
