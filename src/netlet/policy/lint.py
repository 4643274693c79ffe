"""Policy findings for `netlet check` (and `netlet policy lint`).

Every finding is judged against the cluster as loaded (which pods and nodes
exist now), with no DNS answers:

- ``policy-shadowed-rule``: an Admin/Baseline rule no connection can reach,
  because an earlier rule of the same policy, or a rule of a policy earlier in
  the same tier whose subject covers this one's, matches every peer and port
  it does. ``policy-redundant-rule``: a NetworkPolicy rule another rule of the
  same policy already allows.
- ``policy-selects-nothing``: a subject that selects no pod (warning: the policy
  does nothing), a peer that selects no pod or node (info: manifests often
  leave out the pods a peer names, such as kube-system's).
- ``policy-named-port-unresolved``: a named port that no destination pod of
  the rule declares (ingress: the subject pods; egress: the peer pods).
- ``policy-same-priority``: two policies of one tier with the same priority
  whose rules can match the same connection. Upstream leaves the order
  undefined; netlet evaluates them by name (program.py).
- ``policy-fail-closed``: a peer with no field netlet knows.
- ``policy-domain-names`` (info): domainNames peers match nothing until DNS
  answers are given.

Peers are compared as bitsets over the endpoint classes plus the address sets
they name; named ports are compared symbolically, so "covers" is never claimed
when it might not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from netlet.cluster.state import ClusterState
from netlet.policy.classes import build_classes
from netlet.policy.compile import compile_program
from netlet.policy.matrix import BitsetWalker
from netlet.policy.program import (
    Direction,
    NamedPort,
    PeerKind,
    Policy,
    PolicyProgram,
    PortEntry,
    PortRange,
    Rule,
    Tier,
)
from netlet.policy.verdict import PolicyEngine
from netlet.resources.core import Protocol
from netlet.resources.diagnostics import Diagnostic, ObjectRef, Origin, Severity
from netlet.resources.net import AddressSet

OriginOf = Callable[[ObjectRef], Origin | None]
_PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


@dataclass(frozen=True, slots=True)
class _Footprint:
    """Who a rule's peers match: class bits, named address sets, or everything."""

    any: bool
    bits: int
    addresses: AddressSet

    def covers(self, other: _Footprint) -> bool:
        if self.any:
            return True
        if other.any:
            return False
        return other.bits & ~self.bits == 0 and not (other.addresses - self.addresses)

    def overlaps(self, other: _Footprint) -> bool:
        if self.any or other.any:
            return not self.empty and not other.empty
        return bool(self.bits & other.bits) or bool(self.addresses & other.addresses)

    @property
    def empty(self) -> bool:
        return not self.any and not self.bits and not self.addresses


def _spans(ports: tuple[PortEntry, ...], protocol: Protocol) -> list[tuple[int, int]]:
    return sorted(
        (e.first, e.last) for e in ports if isinstance(e, PortRange) and e.protocol == protocol
    )


def _range_covered(spans: list[tuple[int, int]], first: int, last: int) -> bool:
    reach = first
    for lo, hi in spans:
        if lo > reach:
            break
        reach = max(reach, hi + 1)
        if reach > last:
            return True
    return reach > last


def ports_cover(outer: tuple[PortEntry, ...] | None, inner: tuple[PortEntry, ...] | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return all(_range_covered(_spans(outer, p), 1, 65535) for p in _PROTOCOLS)
    for entry in inner:
        if isinstance(entry, PortRange):
            if not _range_covered(_spans(outer, entry.protocol), entry.first, entry.last):
                return False
        else:
            protocols = (entry.protocol,) if entry.protocol else _PROTOCOLS
            same = any(
                isinstance(e, NamedPort)
                and e.name == entry.name
                and e.protocol in (None, entry.protocol)
                for e in outer
            )
            if not same and not all(_range_covered(_spans(outer, p), 1, 65535) for p in protocols):
                return False
    return True


class _Linter:
    def __init__(self, program: PolicyProgram, origin_of: OriginOf) -> None:
        self.program = program
        self.origin_of = origin_of
        family = 4 if any(p.ip(4) for p in program.pods) or not program.pods else 6
        self.index = build_classes(program, family=family, include_nodes=True)
        self.walker = BitsetWalker(program, PolicyEngine(program), self.index)
        self.named_numbers: dict[tuple[str, Protocol | None], set[tuple[Protocol, int]]] = {}
        for pod in program.pods:
            for (name, proto), number in pod.named_ports.items():
                for key in ((name, proto), (name, None)):
                    self.named_numbers.setdefault(key, set()).add((proto, number))
        self._footprints: dict[int, _Footprint] = {}

    def diag(
        self, severity: Severity, policy: Policy, path: str, message: str, code: str
    ) -> Diagnostic:
        ref = ObjectRef(policy.ref.kind, policy.ref.namespace, policy.ref.name)
        return Diagnostic(severity, message, self.origin_of(ref), ref, path, code)

    def footprint(self, rule: Rule) -> _Footprint:
        found = self._footprints.get(id(rule))
        if found is None:
            addresses = AddressSet()
            for peer in rule.peers:
                if peer.kind == PeerKind.CIDRS:
                    addresses = addresses | peer.addresses
                elif peer.kind == PeerKind.DOMAINS:
                    addresses = addresses | self.program.domain_group(peer.group).addresses
            any_peer = any(p.kind == PeerKind.ANY for p in rule.peers)
            found = _Footprint(any_peer, self.walker.peers(rule), addresses)
            self._footprints[id(rule)] = found
        return found

    def subject_bits(self, policy: Policy) -> int:
        return self.walker.pod_bits.get(policy.subject, 0)

    # Findings -----------------------------------------------------------------------

    def run(self) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for policy in self.program.policies():
            out.extend(self.selects_nothing(policy))
            out.extend(self.fail_closed(policy))
            out.extend(self.unresolved_named_ports(policy))
        for tier in (Tier.ADMIN, Tier.BASELINE):
            policies = self.program.tier(tier).policies
            out.extend(self.shadowed(policies))
            out.extend(self.same_priority(policies))
        for policy in self.program.tier(Tier.NETWORK_POLICY).policies:
            out.extend(self.redundant(policy))
        return out

    def _subject_field(self, policy: Policy) -> str:
        return "spec.podSelector" if policy.tier == Tier.NETWORK_POLICY else "spec.subject"

    def selects_nothing(self, policy: Policy) -> Iterator[Diagnostic]:
        if not self.program.pod_group(policy.subject).members:
            yield self.diag(
                Severity.WARNING,
                policy,
                self._subject_field(policy),
                "selects no pods: the policy has no effect",
                "policy-selects-nothing",
            )
        for rule in policy.ingress + policy.egress:
            for peer in rule.peers:
                if peer.kind == PeerKind.PODS and not self.program.pod_group(peer.group).members:
                    what = self.program.pod_group(peer.group).describe()
                    yield self.diag(
                        Severity.INFO,
                        policy,
                        peer.field,
                        f"selects no pods ({what})",
                        "policy-selects-nothing",
                    )
                elif (
                    peer.kind == PeerKind.NODES and not self.program.node_group(peer.group).members
                ):
                    what = self.program.node_group(peer.group).describe()
                    yield self.diag(
                        Severity.INFO,
                        policy,
                        peer.field,
                        f"selects no nodes ({what})",
                        "policy-selects-nothing",
                    )
                elif (
                    peer.kind == PeerKind.DOMAINS
                    and not self.program.domain_group(peer.group).names
                ):
                    yield self.diag(
                        Severity.INFO,
                        policy,
                        peer.field,
                        "domainNames match nothing until DNS answers are given "
                        "(netlet policy explain/matrix --resolve NAME=IP)",
                        "policy-domain-names",
                    )

    def fail_closed(self, policy: Policy) -> Iterator[Diagnostic]:
        for rule in policy.ingress + policy.egress:
            if rule.fail_closed:
                effect = (
                    "matches nothing" if not rule.peers else "denies all traffic of its direction"
                )
                yield self.diag(
                    Severity.WARNING,
                    policy,
                    rule.field,
                    "a peer has no field netlet knows (written for a newer CRD?): the rule "
                    f"fails closed and {effect}",
                    "policy-fail-closed",
                )

    def unresolved_named_ports(self, policy: Policy) -> Iterator[Diagnostic]:
        subject = self.program.pod_group(policy.subject).members
        for rule in policy.ingress + policy.egress:
            named = [e for e in rule.ports or () if isinstance(e, NamedPort)]
            if not named:
                continue
            if rule.direction == Direction.INGRESS:
                targets = [self.program.pod(k) for k in subject]
            else:
                bits = self.footprint(rule).bits
                targets = [
                    c.pod for c in self.index.classes if c.pod is not None and bits >> c.index & 1
                ]
            pods = [p for p in targets if p is not None]
            if not pods:
                continue
            for entry in named:
                found = any(
                    name == entry.name and (entry.protocol is None or proto == entry.protocol)
                    for pod in pods
                    for (name, proto) in pod.named_ports
                )
                if not found:
                    side = "subject" if rule.direction == Direction.INGRESS else "destination"
                    yield self.diag(
                        Severity.WARNING,
                        policy,
                        rule.field,
                        f"named port {entry} is declared by none of the {len(pods)} "
                        f"{side} pod(s): this port entry matches nothing",
                        "policy-named-port-unresolved",
                    )

    def shadowed(self, policies: tuple[Policy, ...]) -> Iterator[Diagnostic]:
        for p_index, policy in enumerate(policies):
            subject = self.subject_bits(policy)
            if not subject:
                continue
            for direction in Direction:
                rules = policy.rules(direction)
                for j, rule in enumerate(rules):
                    mine = self.footprint(rule)
                    if mine.empty or rule.fail_closed:
                        continue
                    cover = self._covering(policies[:p_index], subject, direction, rule, mine)
                    if cover is None:
                        cover = next(
                            (
                                (policy, r)
                                for r in rules[:j]
                                if self.footprint(r).covers(mine)
                                and ports_cover(r.ports, rule.ports)
                            ),
                            None,
                        )
                    if cover is not None:
                        by, earlier = cover
                        where = "" if by is policy else f"{by.ref.qualified} "
                        yield self.diag(
                            Severity.WARNING,
                            policy,
                            rule.field,
                            f"{rule.label} is shadowed: {where}{earlier.label} ({earlier.action}) "
                            "matches every connection it could, first",
                            "policy-shadowed-rule",
                        )

    def _covering(
        self,
        earlier: tuple[Policy, ...],
        subject: int,
        direction: Direction,
        rule: Rule,
        mine: _Footprint,
    ) -> tuple[Policy, Rule] | None:
        for other in earlier:
            if subject & ~self.subject_bits(other):
                continue
            for candidate in other.rules(direction):
                if self.footprint(candidate).covers(mine) and ports_cover(
                    candidate.ports, rule.ports
                ):
                    return other, candidate
        return None

    def _numbers(
        self, ports: tuple[PortEntry, ...] | None
    ) -> list[tuple[Protocol, int, int]] | None:
        if ports is None:
            return None
        out = []
        for entry in ports:
            if isinstance(entry, PortRange):
                out.append((entry.protocol, entry.first, entry.last))
            else:
                for proto, number in self.named_numbers.get((entry.name, entry.protocol), ()):
                    out.append((proto, number, number))
        return out

    def _ports_overlap(self, a: Rule, b: Rule) -> bool:
        left, right = self._numbers(a.ports), self._numbers(b.ports)
        if left is None or right is None:
            return (left is None or bool(left)) and (right is None or bool(right))
        return any(
            pa == pb and lo_a <= hi_b and lo_b <= hi_a
            for pa, lo_a, hi_a in left
            for pb, lo_b, hi_b in right
        )

    def same_priority(self, policies: tuple[Policy, ...]) -> Iterator[Diagnostic]:
        for i, first in enumerate(policies):
            for second in policies[i + 1 :]:
                if second.priority != first.priority:
                    break
                if not self.subject_bits(first) & self.subject_bits(second):
                    continue
                clash = self._clash(first, second)
                if clash is None:
                    continue
                a, b = clash
                differ = (
                    f"with different actions ({a.action} vs {b.action}): the verdict depends on "
                    if a.action != b.action
                    else "with the same action: only the explanation depends on "
                )
                yield self.diag(
                    Severity.WARNING,
                    second,
                    b.field,
                    f"same priority {second.priority} as {first.ref.qualified}, and both "
                    f"{first.ref.qualified} {a.label} and this {b.label} can match the same "
                    f"connection {differ}the order, which upstream leaves undefined (netlet "
                    f"evaluates {first.ref.qualified} first: by name)",
                    "policy-same-priority",
                )

    def _clash(self, first: Policy, second: Policy) -> tuple[Rule, Rule] | None:
        same_action: tuple[Rule, Rule] | None = None
        for direction in Direction:
            for a in first.rules(direction):
                for b in second.rules(direction):
                    if not (
                        self.footprint(a).overlaps(self.footprint(b)) and self._ports_overlap(a, b)
                    ):
                        continue
                    if a.action != b.action:
                        return a, b
                    same_action = same_action or (a, b)
        return same_action

    def redundant(self, policy: Policy) -> Iterator[Diagnostic]:
        for direction in Direction:
            rules = policy.rules(direction)
            for j, rule in enumerate(rules):
                mine = self.footprint(rule)
                if mine.empty:
                    continue
                for i, other in enumerate(rules):
                    if i == j:
                        continue
                    if self.footprint(other).covers(mine) and ports_cover(other.ports, rule.ports):
                        mutual = mine.covers(self.footprint(other)) and ports_cover(
                            rule.ports, other.ports
                        )
                        if mutual and i > j:
                            continue  # identical rules: report only the later one
                        yield self.diag(
                            Severity.WARNING,
                            policy,
                            rule.field,
                            f"{rule.label} is redundant: {other.label} already allows every "
                            "connection it does",
                            "policy-redundant-rule",
                        )
                        break


def lint_program(program: PolicyProgram, origin_of: OriginOf) -> list[Diagnostic]:
    return _Linter(program, origin_of).run()


def policy_findings(state: ClusterState) -> list[Diagnostic]:
    """The `netlet check` finder."""
    program = compile_program(state)
    if not program.policies():
        return []
    return lint_program(program, state.origin)
