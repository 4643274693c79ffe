"""Decides one connection, and says why: the per-pair interpreter over the program.

A connection (source endpoint, destination endpoint, protocol, destination
port) is allowed when the source's egress walk AND the destination's ingress
walk accept it. Each walk goes through the tiers (program.py): Admin rules by
precedence, first match wins (Accept/Deny decide, Pass jumps to the
NetworkPolicy tier); then NetworkPolicy if the pod is isolated in that
direction (some rule matches -> accept, none -> deny); then Baseline (only
for pods no NetworkPolicy isolates in that direction); then the default,
allow.

Connection semantics, as the model spells them out:

- A verdict is about *starting* a connection. Replies (and related ICMP) of
  an allowed connection are always allowed; nothing evaluates them.
- Only pod-network pods are subjects. Nodes, host-network pods (their traffic
  is their node's: they never match pod selectors, only address-based peers
  and `nodes` peers) and external addresses never have policy of their own,
  so their side of a connection is allowed ("not a subject").
- Ingress from the destination pod's own node (its node's addresses or a
  host-network pod on that node) is always allowed, before any tier
  (NetworkPolicy: "the only allowed connections into the pod are those from
  the pod's node and those allowed by the ingress list"), so kubelet probes
  work.
- A pod connecting to its own pod IP never leaves its network namespace and
  is not subject to policy; the same pod reached through a Service IP that
  load-balances back to itself is (`via_service=True`).

Explanations are data: each side's `Decision` names the deciding tier, policy,
rule index and action, the path of matching rules (Pass steps first), the
policies that applied but had no matching rule, and the `domainNames`
patterns the decision depended on.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from netlet.policy.program import (
    Action,
    Direction,
    NamedPort,
    NodeInfo,
    PeerKind,
    PodInfo,
    PodKey,
    Policy,
    PolicyProgram,
    PolicyRef,
    PortEntry,
    PortRange,
    Rule,
    Tier,
)
from netlet.resources.core import Protocol
from netlet.resources.net import IPAddress


class EndpointKind(enum.StrEnum):
    POD = "pod"
    NODE = "node"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: EndpointKind
    ip: IPAddress
    pod: PodKey | None = None  # POD; NODE when reached as a host-network pod
    node: str | None = None  # NODE; the pod's node for POD

    def __str__(self) -> str:
        if self.kind == EndpointKind.POD:
            return str(self.pod)
        if self.kind == EndpointKind.NODE:
            host = f" (host-network pod {self.pod})" if self.pod else ""
            return f"node/{self.node}{host}"
        return str(self.ip)


class EndpointError(ValueError):
    """An endpoint the user named does not exist or has no address of the family."""


def _address(owner: PodInfo | NodeInfo, family: int | None, name: str) -> IPAddress:
    """`owner`'s address of `family`; without one, IPv4 if it has it, else IPv6."""
    fam = family or (4 if owner.ip(4) is not None else 6)
    ip = owner.ip(fam)
    if ip is None:
        raise EndpointError(f"{name} has no IPv{fam} address")
    return ip


class Reason(enum.StrEnum):
    RULE = "rule"  # an Admin/Baseline rule or a NetworkPolicy rule decided
    ISOLATED = "isolated"  # NetworkPolicy isolates the pod and no rule matched
    DEFAULT = "default"  # no tier decided: allowed
    NOT_SUBJECT = "not-subject"  # node, host-network pod or external address
    SELF = "self"  # pod to its own IP
    OWN_NODE = "own-node"  # ingress from the pod's own node


@dataclass(frozen=True, slots=True)
class Step:
    """One matching rule on the walk."""

    tier: Tier
    policy: PolicyRef
    rule: int
    rule_name: str
    action: Action
    field: str

    def __str__(self) -> str:
        name = f" ({self.rule_name})" if self.rule_name else ""
        return f"[{self.tier}] {self.policy} rule {self.rule}{name} {self.action}"


@dataclass(frozen=True, slots=True)
class Decision:
    direction: Direction
    allowed: bool
    reason: Reason
    tier: Tier | None = None
    policy: PolicyRef | None = None
    rule: int | None = None
    rule_name: str = ""
    action: Action | None = None
    path: tuple[Step, ...] = ()
    not_matched: tuple[PolicyRef, ...] = ()
    dns: tuple[str, ...] = ()  # domainNames patterns this decision depended on


@dataclass(frozen=True, slots=True)
class Verdict:
    src: Endpoint
    dst: Endpoint
    protocol: Protocol
    port: int
    allowed: bool
    egress: Decision
    ingress: Decision
    via_service: bool = False

    @property
    def depends_on_dns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.egress.dns + self.ingress.dns))


@dataclass(frozen=True, slots=True)
class _Other:
    """The far side of a walk: what peers are matched against."""

    ip: IPAddress
    pod_groups: frozenset[str] | None
    node_groups: frozenset[str] | None


class _Walk:
    """One direction's walk: the connection, and what it met so far."""

    __slots__ = ("direction", "dns", "dst", "not_matched", "other", "path", "port", "protocol")

    def __init__(
        self,
        direction: Direction,
        other: _Other,
        protocol: Protocol,
        port: int,
        dst: PodInfo | None,
    ) -> None:
        self.direction = direction
        self.other = other
        self.protocol = protocol
        self.port = port
        self.dst = dst
        self.path: list[Step] = []
        self.not_matched: list[PolicyRef] = []
        self.dns: list[str] = []

    def decision(
        self,
        allowed: bool,
        reason: Reason,
        tier: Tier | None = None,
        policy: Policy | None = None,
        rule: Rule | None = None,
    ) -> Decision:
        return Decision(
            self.direction,
            allowed,
            reason,
            tier,
            policy.ref if policy else None,
            rule.index if rule else None,
            rule.name if rule else "",
            rule.action if rule else None,
            tuple(self.path),
            tuple(self.not_matched),
            tuple(dict.fromkeys(self.dns)),
        )


_EMPTY: frozenset[str] = frozenset()
Applicable = tuple[tuple[tuple[Policy, tuple[Rule, ...]], ...], ...]


def ports_match(
    ports: tuple[PortEntry, ...] | None, protocol: Protocol, port: int, dst: PodInfo | None
) -> bool:
    """Whether a rule's ports cover the connection; named ports resolve on `dst` (the
    destination pod; None when the destination is not a pod-network pod)."""
    if ports is None:
        return True
    for entry in ports:
        if type(entry) is PortRange:
            if entry.protocol == protocol and entry.first <= port <= entry.last:
                return True
        elif dst is not None and isinstance(entry, NamedPort):
            if entry.protocol is not None and entry.protocol != protocol:
                continue
            if dst.named_ports.get((entry.name, protocol)) == port:
                return True
    return False


class PolicyEngine:
    """Indexes a PolicyProgram for fast per-connection verdicts."""

    def __init__(self, program: PolicyProgram) -> None:
        self.program = program
        self._pod_by_ip: dict[IPAddress, PodInfo] = {}
        self._node_by_ip: dict[IPAddress, NodeInfo] = {}
        for pod in program.pods:
            if not pod.host_network:
                for ip in pod.ips:
                    self._pod_by_ip[ip] = pod
        for node in program.nodes:
            for ip in node.ips:
                self._node_by_ip.setdefault(ip, node)
        self._domain_addresses = {g.id: g.addresses for g in program.domain_groups}
        self._domain_patterns = {g.id: g.patterns for g in program.domain_groups}
        self._admin = program.tier(Tier.ADMIN).policies
        self._baseline = program.tier(Tier.BASELINE).policies
        self._np_by_ns: dict[str, list[Policy]] = defaultdict(list)
        for policy in program.tier(Tier.NETWORK_POLICY).policies:
            self._np_by_ns[policy.ref.namespace].append(policy)
        self._applicable: dict[tuple[frozenset[str], str, Direction], Applicable] = {}

    # Endpoints ----------------------------------------------------------------------

    def pod_endpoint(self, key: PodKey, family: int | None = None) -> Endpoint:
        pod = self.program.pod(key)
        if pod is None:
            raise EndpointError(f"pod {key} not found (or it has no IP yet)")
        ip = _address(pod, family, f"pod {key}")
        if pod.host_network:
            return Endpoint(EndpointKind.NODE, ip, pod=key, node=pod.node)
        return Endpoint(EndpointKind.POD, ip, pod=key, node=pod.node)

    def node_endpoint(self, name: str, family: int | None = None) -> Endpoint:
        node = self.program.node(name)
        if node is None:
            raise EndpointError(f"node {name} not found")
        return Endpoint(EndpointKind.NODE, _address(node, family, f"node {name}"), node=name)

    def ip_endpoint(self, ip: IPAddress | str) -> Endpoint:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        pod = self._pod_by_ip.get(address)
        if pod is not None:
            return Endpoint(EndpointKind.POD, address, pod=pod.key, node=pod.node)
        node = self._node_by_ip.get(address)
        if node is not None:
            return Endpoint(EndpointKind.NODE, address, node=node.name)
        return Endpoint(EndpointKind.EXTERNAL, address)

    def parse_endpoint(self, text: str, family: int | None = None) -> Endpoint:
        """`NS/POD`, `POD` (namespace default), `node/NAME` or an IP address."""
        text = text.strip()
        try:
            return self.ip_endpoint(ipaddress.ip_address(text))
        except ValueError:
            pass
        if text.startswith("node/"):
            return self.node_endpoint(text[len("node/") :], family)
        namespace, _, name = text.rpartition("/")
        return self.pod_endpoint(PodKey(namespace or "default", name), family)

    # Verdicts -----------------------------------------------------------------------

    def verdict(
        self,
        src: Endpoint,
        dst: Endpoint,
        protocol: Protocol | str,
        port: int,
        *,
        via_service: bool = False,
    ) -> Verdict:
        proto = Protocol(protocol)
        if src.ip.version != dst.ip.version:
            raise EndpointError(f"{src} ({src.ip}) and {dst} ({dst.ip}) are of different families")
        if not 1 <= port <= 65535:
            raise EndpointError(f"port {port} is not between 1 and 65535")
        src_pod = self._subject_pod(src)
        dst_pod = self._subject_pod(dst)
        if src_pod is not None and src.pod == dst.pod and not via_service:
            egress = Decision(Direction.EGRESS, True, Reason.SELF)
            ingress = Decision(Direction.INGRESS, True, Reason.SELF)
            return Verdict(src, dst, proto, port, True, egress, ingress, via_service)
        egress = self._decide(Direction.EGRESS, src_pod, self._other(dst), proto, port, dst_pod)
        if (
            dst_pod is not None
            and src.kind == EndpointKind.NODE
            and src.node is not None
            and src.node == dst.node
        ):
            ingress = Decision(Direction.INGRESS, True, Reason.OWN_NODE)
        else:
            ingress = self._decide(
                Direction.INGRESS, dst_pod, self._other(src), proto, port, dst_pod
            )
        allowed = egress.allowed and ingress.allowed
        return Verdict(src, dst, proto, port, allowed, egress, ingress, via_service)

    def _subject_pod(self, endpoint: Endpoint) -> PodInfo | None:
        if endpoint.kind != EndpointKind.POD or endpoint.pod is None:
            return None
        return self.program.pod(endpoint.pod)

    def _other(self, endpoint: Endpoint) -> _Other:
        if endpoint.kind == EndpointKind.POD and endpoint.pod is not None:
            pod = self.program.pod(endpoint.pod)
            return _Other(endpoint.ip, pod.groups if pod else _EMPTY, None)
        if endpoint.kind == EndpointKind.NODE and endpoint.node is not None:
            node = self.program.node(endpoint.node)
            return _Other(endpoint.ip, None, node.groups if node else _EMPTY)
        return _Other(endpoint.ip, None, None)

    def applicable(self, pod: PodInfo, direction: Direction) -> Applicable:
        """(admin, networkpolicy, baseline) policies selecting `pod` in `direction`,
        each with its rules for that direction, in evaluation order."""
        key = (pod.groups, pod.key.namespace, direction)
        found = self._applicable.get(key)
        if found is None:
            groups = pod.groups
            admin = tuple(
                (p, p.rules(direction))
                for p in self._admin
                if p.subject in groups and p.rules(direction)
            )
            nps = tuple(
                (p, p.rules(direction))
                for p in self._np_by_ns.get(pod.key.namespace, ())
                if direction in p.isolates and p.subject in groups
            )
            baseline = tuple(
                (p, p.rules(direction))
                for p in self._baseline
                if p.subject in groups and p.rules(direction)
            )
            found = (admin, nps, baseline)
            self._applicable[key] = found
        return found

    def _first_match(
        self,
        rules: tuple[Rule, ...],
        other: _Other,
        protocol: Protocol,
        port: int,
        dst: PodInfo | None,
        dns: list[str],
    ) -> Rule | None:
        for rule in rules:
            if rule.ports is not None and not ports_match(rule.ports, protocol, port, dst):
                continue
            for peer in rule.peers:
                kind = peer.kind
                if kind is PeerKind.PODS:
                    if other.pod_groups is not None and peer.group in other.pod_groups:
                        return rule
                elif kind is PeerKind.ANY:
                    return rule
                elif kind is PeerKind.CIDRS:
                    if other.ip in peer.addresses:
                        return rule
                elif kind is PeerKind.NODES:
                    if other.node_groups is not None and peer.group in other.node_groups:
                        return rule
                else:
                    dns.extend(self._domain_patterns[peer.group])
                    if other.ip in self._domain_addresses[peer.group]:
                        return rule
        return None

    def _decide(
        self,
        direction: Direction,
        subject: PodInfo | None,
        other: _Other,
        protocol: Protocol,
        port: int,
        dst: PodInfo | None,
    ) -> Decision:
        if subject is None:
            return Decision(direction, True, Reason.NOT_SUBJECT)
        admin, nps, baseline = self.applicable(subject, direction)
        walk = _Walk(direction, other, protocol, port, dst)
        decided = self._first_match_tier(Tier.ADMIN, admin, walk)
        if decided is not None:
            return decided
        if nps:  # isolated: the NetworkPolicy tier decides, Baseline is never reached
            return self._network_policy_tier(nps, walk)
        decided = self._first_match_tier(Tier.BASELINE, baseline, walk)
        if decided is not None:
            return decided
        return walk.decision(True, Reason.DEFAULT)

    def _first_match_tier(
        self, tier: Tier, policies: tuple[tuple[Policy, tuple[Rule, ...]], ...], walk: _Walk
    ) -> Decision | None:
        """Admin or Baseline: the first matching rule decides; Pass or no match: None."""
        for policy, rules in policies:
            rule = self._first_match(
                rules, walk.other, walk.protocol, walk.port, walk.dst, walk.dns
            )
            if rule is None:
                walk.not_matched.append(policy.ref)
                continue
            walk.path.append(Step(tier, policy.ref, rule.index, rule.name, rule.action, rule.field))
            if rule.action == Action.PASS:
                return None
            return walk.decision(rule.action == Action.ACCEPT, Reason.RULE, tier, policy, rule)
        return None

    def _network_policy_tier(
        self, nps: tuple[tuple[Policy, tuple[Rule, ...]], ...], walk: _Walk
    ) -> Decision:
        """Isolated pod: accepted when any rule of the selecting policies matches."""
        tier = Tier.NETWORK_POLICY
        for policy, rules in nps:
            rule = self._first_match(
                rules, walk.other, walk.protocol, walk.port, walk.dst, walk.dns
            )
            if rule is None:
                walk.not_matched.append(policy.ref)
                continue
            walk.path.append(Step(tier, policy.ref, rule.index, rule.name, rule.action, rule.field))
            return walk.decision(True, Reason.RULE, tier, policy, rule)
        return walk.decision(False, Reason.ISOLATED, tier)
