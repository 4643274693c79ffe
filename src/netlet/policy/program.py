"""The compiled policy program: every tier's rules, resolved against the cluster.

This is the intermediate representation (IR) that the analyzer (verdicts,
matrix, lint) and the kernel backend both consume. It is a plain immutable
value: building it is `compile.compile_program(state, dns)`; nothing here
does I/O or reads the clock.

Layout
------

``PolicyProgram.tiers`` holds the three tiers in evaluation order
(``TIER_ORDER``: Admin, NetworkPolicy, Baseline; anything no tier decides is
allowed). Each ``TierProgram`` lists its ``Policy`` values already sorted in
evaluation order:

- Admin and Baseline (ClusterNetworkPolicy v1alpha2; AdminNetworkPolicy and
  BaselineAdminNetworkPolicy v1alpha1 mapped onto them, Allow -> Accept) are
  *first match*: policies by ascending ``priority``; on equal priority by
  ``name``, then ClusterNetworkPolicy before AdminNetworkPolicy
  (``POLICY_KIND_RANK``). Upstream leaves equal priorities undefined; this
  order is netlet's choice and `lint` warns where it matters. The singleton
  BaselineAdminNetworkPolicy has no priority: it gets ``BANP_PRIORITY`` (after
  every Baseline ClusterNetworkPolicy). Within a policy, rules run in list
  order; the first rule whose peers *and* ports match decides: Accept and Deny
  end the walk for that direction, Pass skips the rest of the tier.
- NetworkPolicy is an *allow list*: a pod is isolated in a direction when any
  policy whose ``subject`` contains it lists that direction in ``isolates``;
  an isolated pod's connection is accepted when any rule of those policies
  matches, denied otherwise. A pod that is not isolated falls through to
  Baseline (that is the only way into Baseline).

A connection is allowed when the source's egress walk and the destination's
ingress walk both accept. Policies only ever apply to pod-network pods: nodes,
host-network pods (treated as their node) and external addresses are never
subjects.

Sets (designed for nftables named sets)
---------------------------------------

Rules never list pods. They name *groups*, whose identity (``id``) is a
stable hash of the selector that defines them, not of their members:

- ``PodGroup``: pods chosen by namespace (exact name, or a namespace
  selector) AND a pod selector. ``members`` and ``addresses`` are what the
  group holds now. A label change moves pods between groups: set elements
  change, rules do not. ``PodInfo.groups`` is the inverse (the groups a pod's
  IPs belong to), i.e. the elements to add when a pod appears.
- ``NodeGroup``: nodes by node label selector (CNP/ANP ``nodes`` peers),
  matched on the node's addresses.
- ``DomainGroup``: ``domainNames`` patterns, resolved with the DNS answers the
  user gave (``DnsAnswers``); with no answer they match nothing, and every
  verdict that reaches such a rule says it depends on DNS.
- ``Peer.addresses`` of a CIDRS peer is an interval set (ipBlock with its
  ``except`` holes already removed, or ``networks``); ``set_name`` gives it a
  stable name.
- Ports: ``PortRange(protocol, first, last)`` entries render as one interval
  set of ``l4proto . port`` (``port_set_name``). ``NamedPort`` entries stay
  symbolic because they resolve per destination pod: ingress rules on the
  subject pod, egress rules on the destination peer pod;
  ``PolicyProgram.named_port_elements(name, protocol)`` lists the ``(ip,
  protocol, port)`` elements for a ``ip . l4proto . port`` set. A named port
  never matches a destination that is not a pod-network pod.

Invariants: group ids are unique and stable across compiles of equivalent
selectors; every group id a rule names is present in the program; ``members``
never contain host-network pods or pods without an IP; tuples are in a
deterministic order (tier order, policy order, rule index, sorted members).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from netlet.resources.core import Protocol
from netlet.resources.net import AddressSet, IPAddress
from netlet.resources.selectors import Selector


class Tier(enum.StrEnum):
    ADMIN = "Admin"
    NETWORK_POLICY = "NetworkPolicy"
    BASELINE = "Baseline"


TIER_ORDER: tuple[Tier, ...] = (Tier.ADMIN, Tier.NETWORK_POLICY, Tier.BASELINE)


class Action(enum.StrEnum):
    ACCEPT = "Accept"
    DENY = "Deny"
    PASS = "Pass"


class Direction(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


# Tie-break between kinds on equal priority and name (netlet's documented choice).
POLICY_KIND_RANK: Mapping[str, int] = {
    "ClusterNetworkPolicy": 0,
    "AdminNetworkPolicy": 1,
    "BaselineAdminNetworkPolicy": 2,
    "NetworkPolicy": 3,
}
# BaselineAdminNetworkPolicy has no priority field; it runs after every Baseline CNP.
BANP_PRIORITY = 1001

KIND_SHORT: Mapping[str, str] = {
    "NetworkPolicy": "netpol",
    "ClusterNetworkPolicy": "cnp",
    "AdminNetworkPolicy": "anp",
    "BaselineAdminNetworkPolicy": "banp",
}


@dataclass(frozen=True, slots=True, order=True)
class PolicyRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def qualified(self) -> str:
        """'cnp/deny-all', 'netpol/shop/api': unambiguous across kinds."""
        return f"{KIND_SHORT.get(self.kind, self.kind)}/{self}"


class PodKey(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod as policy sees it. Host-network pods are listed (so endpoints resolve)
    but belong to no group: their traffic is their node's."""

    key: PodKey
    labels: Mapping[str, str]
    node: str
    ips: tuple[IPAddress, ...]
    host_network: bool
    # (port name, protocol) -> container port number, for named ports.
    named_ports: Mapping[tuple[str, Protocol], int]
    # Declared container ports (protocol, number), sorted: the matrix's default probes.
    declared_ports: tuple[tuple[Protocol, int], ...]
    # Ids of the pod groups this pod is a member of.
    groups: frozenset[str]

    def ip(self, family: int) -> IPAddress | None:
        return next((ip for ip in self.ips if ip.version == family), None)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str]
    # Every IP in status.addresses (InternalIP and ExternalIP), as the nodes peer reads them.
    ips: tuple[IPAddress, ...]
    groups: frozenset[str]
    host_network_pods: tuple[PodKey, ...] = ()

    def ip(self, family: int) -> IPAddress | None:
        return next((ip for ip in self.ips if ip.version == family), None)


def stable_id(prefix: str, text: str) -> str:
    """A short name that depends only on `text` (the canonical selector or set)."""
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class PodGroup:
    id: str
    # Exactly one of namespace / namespace_selector is set.
    namespace: str | None
    namespace_selector: Selector | None
    pod_selector: Selector
    members: frozenset[PodKey]
    addresses: AddressSet

    def describe(self) -> str:
        where = (
            f"namespace {self.namespace}"
            if self.namespace is not None
            else f"namespaces {self.namespace_selector}"
        )
        return f"pods {self.pod_selector} in {where}"


@dataclass(frozen=True, slots=True)
class NodeGroup:
    id: str
    selector: Selector
    members: frozenset[str]
    addresses: AddressSet

    def describe(self) -> str:
        return f"nodes {self.selector}"


@dataclass(frozen=True, slots=True)
class DomainGroup:
    id: str
    patterns: tuple[str, ...]
    # The answered names that match a pattern, and their addresses.
    names: tuple[str, ...]
    addresses: AddressSet

    def describe(self) -> str:
        return "domainNames " + ", ".join(self.patterns)


class PeerKind(enum.StrEnum):
    ANY = "any"  # NetworkPolicy rule without from/to: every source or destination
    PODS = "pods"
    NODES = "nodes"
    CIDRS = "cidrs"  # ipBlock (holes removed) or networks
    DOMAINS = "domains"


@dataclass(frozen=True, slots=True)
class Peer:
    kind: PeerKind
    group: str = ""  # PODS, NODES, DOMAINS: the group id
    addresses: AddressSet = field(default_factory=AddressSet)  # CIDRS
    text: str = ""  # as written, for explanations
    field: str = ""  # field path inside the policy, e.g. spec.egress[1].to[0]

    @property
    def set_name(self) -> str:
        """The named set a backend keeps for this peer."""
        if self.kind == PeerKind.CIDRS:
            return stable_id("cidrs", str(self.addresses))
        return self.group


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    protocol: Protocol
    first: int
    last: int

    def __str__(self) -> str:
        if self.first == 1 and self.last == 65535:
            return f"{self.protocol.value}"
        port = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{port}/{self.protocol.value}"


@dataclass(frozen=True, slots=True, order=True)
class NamedPort:
    name: str
    protocol: Protocol | None  # None: the container port's own protocol (CNP/ANP)

    def __str__(self) -> str:
        return f"{self.name}/{self.protocol.value}" if self.protocol else self.name


PortEntry = PortRange | NamedPort


def port_set_name(ports: tuple[PortEntry, ...]) -> str:
    """Stable name of the `l4proto . port` interval set holding a rule's numeric ports."""
    ranges = sorted(p for p in ports if isinstance(p, PortRange))
    return stable_id("ports", ",".join(str(p) for p in ranges))


@dataclass(frozen=True, slots=True)
class Rule:
    direction: Direction
    index: int  # position in the policy's ingress or egress list
    name: str  # CNP/ANP rule name; "" for NetworkPolicy
    action: Action
    peers: tuple[Peer, ...]  # OR'ed; () matches nothing
    ports: tuple[PortEntry, ...] | None  # OR'ed; None matches every port and protocol
    field: str  # spec.ingress[0]
    fail_closed: bool = False  # a peer had no known field (see compile.py)

    @property
    def label(self) -> str:
        return f"rule {self.index}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True, slots=True)
class Policy:
    ref: PolicyRef
    tier: Tier
    priority: int
    subject: str  # pod group id
    # NetworkPolicy only: the directions in policyTypes (isolation). Empty for tiers.
    isolates: frozenset[Direction]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction == Direction.INGRESS else self.egress

    def affects(self, direction: Direction) -> bool:
        """Whether the policy takes part in `direction` at all."""
        if self.tier == Tier.NETWORK_POLICY:
            return direction in self.isolates
        return bool(self.rules(direction))


@dataclass(frozen=True, slots=True)
class TierProgram:
    tier: Tier
    policies: tuple[Policy, ...]  # evaluation order


@dataclass(frozen=True, slots=True)
class DnsAnswers:
    """Resolved names the user supplied (netlet does not query DNS): name -> addresses.
    Names are lower case without the trailing dot."""

    answers: tuple[tuple[str, tuple[IPAddress, ...]], ...] = ()

    def as_dict(self) -> dict[str, tuple[IPAddress, ...]]:
        return dict(self.answers)


@dataclass(frozen=True, slots=True)
class PolicyProgram:
    tiers: tuple[TierProgram, ...]
    pod_groups: tuple[PodGroup, ...]
    node_groups: tuple[NodeGroup, ...]
    domain_groups: tuple[DomainGroup, ...]
    pods: tuple[PodInfo, ...]
    nodes: tuple[NodeInfo, ...]
    dns: DnsAnswers
    _pod_group: dict[str, PodGroup] = field(init=False, repr=False, compare=False)
    _node_group: dict[str, NodeGroup] = field(init=False, repr=False, compare=False)
    _domain_group: dict[str, DomainGroup] = field(init=False, repr=False, compare=False)
    _pod: dict[PodKey, PodInfo] = field(init=False, repr=False, compare=False)
    _node: dict[str, NodeInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lookup tables over the tuples above; derived, so excluded from equality.
        object.__setattr__(self, "_pod_group", {g.id: g for g in self.pod_groups})
        object.__setattr__(self, "_node_group", {g.id: g for g in self.node_groups})
        object.__setattr__(self, "_domain_group", {g.id: g for g in self.domain_groups})
        object.__setattr__(self, "_pod", {p.key: p for p in self.pods})
        object.__setattr__(self, "_node", {n.name: n for n in self.nodes})

    def tier(self, tier: Tier) -> TierProgram:
        return next(t for t in self.tiers if t.tier == tier)

    def policies(self) -> tuple[Policy, ...]:
        return tuple(p for t in self.tiers for p in t.policies)

    def pod_group(self, group_id: str) -> PodGroup:
        return self._pod_group[group_id]

    def node_group(self, group_id: str) -> NodeGroup:
        return self._node_group[group_id]

    def domain_group(self, group_id: str) -> DomainGroup:
        return self._domain_group[group_id]

    def pod(self, key: PodKey) -> PodInfo | None:
        return self._pod.get(key)

    def node(self, name: str) -> NodeInfo | None:
        return self._node.get(name)

    def describe_peer(self, peer: Peer) -> str:
        if peer.kind == PeerKind.ANY:
            return "any peer"
        if peer.kind == PeerKind.CIDRS:
            return peer.text or str(peer.addresses)
        if peer.kind == PeerKind.PODS:
            return self.pod_group(peer.group).describe()
        if peer.kind == PeerKind.NODES:
            return self.node_group(peer.group).describe()
        return self.domain_group(peer.group).describe()

    def named_port_elements(
        self, name: str, protocol: Protocol | None
    ) -> tuple[tuple[IPAddress, Protocol, int], ...]:
        """(pod IP, protocol, port) for every pod-network pod where the named port
        resolves: the elements of a backend's `ip . l4proto . port` set."""
        out: list[tuple[IPAddress, Protocol, int]] = []
        for pod in self.pods:
            if pod.host_network:
                continue
            for (port_name, proto), number in pod.named_ports.items():
                if port_name == name and (protocol is None or proto == protocol):
                    out.extend((ip, proto, number) for ip in pod.ips)
        return tuple(sorted(out, key=lambda e: (e[0].version, int(e[0]), e[1], e[2])))

    def isolated(self, direction: Direction) -> frozenset[PodKey]:
        """Pods some NetworkPolicy isolates in `direction` (they skip Baseline)."""
        keys: set[PodKey] = set()
        for policy in self.tier(Tier.NETWORK_POLICY).policies:
            if direction in policy.isolates:
                keys |= self.pod_group(policy.subject).members
        return frozenset(keys)
