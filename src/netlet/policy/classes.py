"""Equivalence classes of endpoints: endpoints no policy can tell apart.

Two pod-network pods get the same verdict for every connection (as source and
as destination, against every other endpoint) when they share:

- the namespace (NetworkPolicy subjects and podSelector-only peers are
  namespace-scoped; namespace labels follow from the name);
- the values of the label keys some selector mentions (labels no selector
  reads cannot change a match, whatever the operator);
- the named ports some rule mentions, with their protocol and number;
- the *address atom* of their IP: the address space is cut at every boundary of
  every CIDR-like set in the program (ipBlock, networks, resolved domainNames),
  so an atom lies wholly inside or wholly outside each of them.

Nodes are one class each (ingress from a pod's own node is exempt, and they are
few); host-network pods are endpoints of their node's class. External probe
ranges are split at the same cuts, one class per piece.

Invariant (checked by the property tests): every member of a class gets the
same verdicts as the class representative, except the per-pod exemptions that
`matrix.py` applies on lookup (a pod to its own IP; ingress from its own node).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from netlet.policy.program import (
    NamedPort,
    NodeInfo,
    PeerKind,
    PodInfo,
    PolicyProgram,
)
from netlet.policy.verdict import Endpoint, EndpointKind
from netlet.resources.core import Protocol
from netlet.resources.net import AddressSet, IPNetwork

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class MatrixEndpoint:
    """One row/column of the matrix."""

    label: str  # ns/pod, node/NAME, or a CIDR
    endpoint: Endpoint
    cls: int  # index of its class
    declared_ports: tuple[tuple[Protocol, int], ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointClass:
    index: int
    kind: EndpointKind
    members: tuple[int, ...]  # indexes of MatrixEndpoints
    pod: PodInfo | None = None  # representative, POD classes
    node: NodeInfo | None = None  # NODE classes
    atom: int = -1  # address atom of the class's IP


@dataclass(frozen=True, slots=True)
class ClassIndex:
    family: int
    endpoints: tuple[MatrixEndpoint, ...]
    classes: tuple[EndpointClass, ...]
    cuts: tuple[int, ...]  # sorted boundaries of the address atoms
    atom_bits: dict[int, int]  # atom -> bitset of classes whose IP lies in it

    def atom_of(self, value: int) -> int:
        return bisect.bisect_right(self.cuts, value)


def referenced_label_keys(program: PolicyProgram) -> frozenset[str]:
    return frozenset(
        req.key for group in program.pod_groups for req in group.pod_selector.requirements
    )


def referenced_port_names(program: PolicyProgram) -> frozenset[str]:
    names: set[str] = set()
    for policy in program.policies():
        for rule in policy.ingress + policy.egress:
            for entry in rule.ports or ():
                if isinstance(entry, NamedPort):
                    names.add(entry.name)
    return frozenset(names)


def address_sets(program: PolicyProgram) -> list[AddressSet]:
    """Every address set a rule can test: CIDR peers and resolved domain groups."""
    sets = [
        peer.addresses
        for policy in program.policies()
        for rule in policy.ingress + policy.egress
        for peer in rule.peers
        if peer.kind == PeerKind.CIDRS
    ]
    sets.extend(g.addresses for g in program.domain_groups)
    return sets


def cuts_for(sets: Iterable[AddressSet], family: int) -> tuple[int, ...]:
    points: set[int] = set()
    for addresses in sets:
        for lo, hi in addresses.v4 if family == 4 else addresses.v6:
            points.add(lo)
            points.add(hi + 1)
    return tuple(sorted(points))


def pod_class_key(
    pod: PodInfo,
    keys: frozenset[str],
    names: frozenset[str],
    atom: int,
    with_declared: bool,
) -> tuple[object, ...]:
    labels = frozenset((k, v) for k, v in pod.labels.items() if k in keys)
    named = tuple(
        sorted((n, p.value, num) for (n, p), num in pod.named_ports.items() if n in names)
    )
    declared = pod.declared_ports if with_declared else ()
    return (pod.key.namespace, labels, named, atom, declared)


def split_probe(network: IPNetwork, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """The pieces of `network` between consecutive cuts, as inclusive int ranges."""
    lo, hi = int(network.network_address), int(network.broadcast_address)
    pieces = []
    start = lo
    i = bisect.bisect_right(cuts, lo)
    while i < len(cuts) and cuts[i] <= hi:
        pieces.append((start, cuts[i] - 1))
        start = cuts[i]
        i += 1
    pieces.append((start, hi))
    return pieces


def _range_label(lo: int, hi: int, family: int) -> str:
    cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    nets = list(ipaddress.summarize_address_range(cls(lo), cls(hi)))
    return str(nets[0]) if len(nets) == 1 else f"{cls(lo)}-{cls(hi)}"


@dataclass
class _Draft:
    """A class while endpoints are being added."""

    kind: EndpointKind
    atom: int
    pod: PodInfo | None = None
    node: NodeInfo | None = None
    members: list[int] = field(default_factory=list)


class _ClassBuilder:
    def __init__(self, program: PolicyProgram, family: int, with_declared_ports: bool) -> None:
        self.program = program
        self.family = family
        self.with_declared_ports = with_declared_ports
        self.keys = referenced_label_keys(program)
        self.names = referenced_port_names(program)
        self.cuts = cuts_for(address_sets(program), family)
        self.endpoints: list[MatrixEndpoint] = []
        self.drafts: list[_Draft] = []
        self.by_key: dict[tuple[object, ...], int] = {}
        self.node_class: dict[str, int] = {}

    def _add(
        self, cls: int, label: str, endpoint: Endpoint, ports: tuple[tuple[Protocol, int], ...] = ()
    ) -> None:
        self.drafts[cls].members.append(len(self.endpoints))
        self.endpoints.append(MatrixEndpoint(label, endpoint, cls, ports))

    def _new(self, draft: _Draft) -> int:
        self.drafts.append(draft)
        return len(self.drafts) - 1

    def class_of_node(self, node: NodeInfo) -> int:
        if node.name not in self.node_class:
            ip = node.ip(self.family)
            atom = bisect.bisect_right(self.cuts, int(ip)) if ip is not None else -1
            self.node_class[node.name] = self._new(_Draft(EndpointKind.NODE, atom, node=node))
        return self.node_class[node.name]

    def add_node(self, node: NodeInfo) -> None:
        ip = node.ip(self.family)
        if ip is not None:
            endpoint = Endpoint(EndpointKind.NODE, ip, node=node.name)
            self._add(self.class_of_node(node), f"node/{node.name}", endpoint)

    def add_pod(self, pod: PodInfo) -> None:
        if pod.host_network:
            host = self.program.node(pod.node)
            node_ip = host.ip(self.family) if host is not None else None
            if host is None or node_ip is None:
                return
            endpoint = Endpoint(EndpointKind.NODE, node_ip, pod=pod.key, node=pod.node)
            self._add(self.class_of_node(host), str(pod.key), endpoint, pod.declared_ports)
            return
        ip = pod.ip(self.family)
        if ip is None:
            return
        atom = bisect.bisect_right(self.cuts, int(ip))
        key = pod_class_key(pod, self.keys, self.names, atom, self.with_declared_ports)
        cls = self.by_key.get(key)
        if cls is None:
            cls = self.by_key[key] = self._new(_Draft(EndpointKind.POD, atom, pod=pod))
        endpoint = Endpoint(EndpointKind.POD, ip, pod=pod.key, node=pod.node)
        self._add(cls, str(pod.key), endpoint, pod.declared_ports)

    def add_probe(self, network: IPNetwork) -> None:
        if network.version != self.family:
            return
        for lo, hi in split_probe(network, self.cuts):
            cls = self._new(_Draft(EndpointKind.EXTERNAL, bisect.bisect_right(self.cuts, lo)))
            address = ipaddress.ip_address(lo) if self.family == 4 else ipaddress.IPv6Address(lo)
            endpoint = Endpoint(EndpointKind.EXTERNAL, address)
            self._add(cls, _range_label(lo, hi, self.family), endpoint)

    def build(self) -> ClassIndex:
        classes = tuple(
            EndpointClass(i, d.kind, tuple(d.members), d.pod, d.node, d.atom)
            for i, d in enumerate(self.drafts)
        )
        atom_bits: dict[int, int] = defaultdict(int)
        for cls in classes:
            atom_bits[cls.atom] |= 1 << cls.index
        return ClassIndex(self.family, tuple(self.endpoints), classes, self.cuts, dict(atom_bits))


def build_classes(
    program: PolicyProgram,
    *,
    family: int = 4,
    probes: Sequence[IPNetwork] = (),
    include_nodes: bool = False,
    with_declared_ports: bool = False,
    namespaces: frozenset[str] | None = None,
) -> ClassIndex:
    """Endpoints of the matrix and their classes. `namespaces` limits the pods shown
    (policies still see the whole cluster); host-network pods are shown as endpoints of
    their node's class; `include_nodes` adds each node itself; `probes` adds external
    ranges, split at the address cuts; `with_declared_ports` keeps pods that declare
    different container ports apart (needed when each destination is probed on its own)."""
    builder = _ClassBuilder(program, family, with_declared_ports)
    if include_nodes:
        for node in program.nodes:
            builder.add_node(node)
    for pod in program.pods:
        if namespaces is None or pod.key.namespace in namespaces:
            builder.add_pod(pod)
    for network in probes:
        builder.add_probe(network)
    return builder.build()
