"""The policy renderer: the policy program -> the `netlet-policy` table per family.

Owns how one node enforces the policy program (netlet.policy.program) in the
kernel. Evaluation follows netlet.policy.verdict exactly:

- A connection is decided when it starts: `ct state established,related
  accept` comes first, so replies of an allowed connection always pass.
- The egress walk runs at the *source* pod's node, the ingress walk at the
  *destination* pod's node, each in its own base chain (`egress-forward` and
  `egress-input`: from local pods; `ingress-forward`: to local pods). Both are
  `filter` chains after `nat` prerouting (priority 0 and 1 > dstnat), so they
  see Service traffic already DNATed to its endpoint. A connection passes when
  neither walk drops it: `accept` ends one base chain only, the next still runs.
- Nodes, host-network pods and outside addresses are never subjects (only local
  pod-network pods enter the walks); ingress from the pod's own node is always
  allowed and needs no rule: the node's own traffic takes the output hook, where
  no walk runs (a pod on another node is checked by that node's ingress walk).
- Tiers are chains entered with `goto`, so the walk never returns into a
  finished tier: `{dir}-admin` jumps to each Admin policy's chain in
  precedence order (Accept = accept, Deny = drop, Pass = goto `{dir}-np`, no
  match = back to the next policy), then goes to `{dir}-np`: the NetworkPolicy
  tier accepts when any rule of a policy selecting the pod matches, drops when
  one of them isolates it, else goes to `{dir}-baseline`, which ends with the
  default `accept`.
- Rules never list pods: each selector class (pod group, node group, domain
  group) is a named set of addresses, each CIDR peer an interval set, each
  rule's numeric ports an interval set of `l4proto . port`, each named port a
  set of `address . l4proto . port` resolved on the pods that have it. A label
  change moves addresses between sets: elements change, rules do not.

Fragments: the skeleton (base chains), the local pods, the tier chains (one
jump per policy), one per policy (its chains) and one per set; a change
re-renders only what it touches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from netlet.dataplane.nft.desired import DesiredTable, Fragment, FragmentBuilder
from netlet.dataplane.nft.gcpause import paused_gc
from netlet.dataplane.nft.model import Chain, ChainType, Family, Hook, Set
from netlet.dataplane.nft.names import hashed
from netlet.policy.program import (
    TIER_ORDER,
    Action,
    Direction,
    NamedPort,
    Peer,
    PeerKind,
    Policy,
    PolicyProgram,
    PortEntry,
    PortRange,
    Rule,
    Tier,
    port_set_name,
)
from netlet.resources.net import AddressSet

TABLE = "netlet-policy"
TABLE_COMMENT = "netlet network policy (Admin, NetworkPolicy, Baseline tiers)"
LOCAL_PODS = "local-pods"

# Base chains: (name, hook, priority, direction). Egress before ingress (either order
# gives the same AND); both after nat prerouting (-100): they see DNATed addresses.
BASE_CHAINS: tuple[tuple[str, Hook, int, Direction], ...] = (
    ("egress-forward", Hook.FORWARD, 0, Direction.EGRESS),
    ("egress-input", Hook.INPUT, 0, Direction.EGRESS),
    ("ingress-forward", Hook.FORWARD, 1, Direction.INGRESS),
)

TIER_CHAIN_SUFFIX = {Tier.ADMIN: "admin", Tier.NETWORK_POLICY: "np", Tier.BASELINE: "baseline"}
DIRECTION_WORD = {Direction.EGRESS: "egress", Direction.INGRESS: "ingress"}
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def tier_chain(direction: Direction, tier: Tier) -> str:
    return f"{DIRECTION_WORD[direction]}-{TIER_CHAIN_SUFFIX[tier]}"


def policy_chain(policy: Policy, direction: Direction) -> str:
    return hashed(f"{DIRECTION_WORD[direction]}-", policy.ref.qualified)


def _subject_side(direction: Direction) -> str:
    """Which address is the local pod the walk is about: the source for egress."""
    return "saddr" if direction == Direction.EGRESS else "daddr"


def _peer_side(direction: Direction) -> str:
    return "daddr" if direction == Direction.EGRESS else "saddr"


def named_port_set(port: NamedPort) -> str:
    proto = port.protocol.value.lower() if port.protocol else "any"
    return f"named-{port.name}-{proto}"


def _ranges(addresses: AddressSet, family: Family) -> list[str]:
    """Interval elements: a CIDR when a span is one, else first-last."""
    spans = addresses.v4 if family == Family.IP else addresses.v6
    cls = ipaddress.IPv4Address if family == Family.IP else ipaddress.IPv6Address
    out = []
    for lo, hi in spans:
        cidrs = list(ipaddress.summarize_address_range(cls(lo), cls(hi)))
        out.append(str(cidrs[0]) if len(cidrs) == 1 else f"{cls(lo)}-{cls(hi)}")
    return out


@dataclass
class _Sets:
    """The sets the policies of one family need, as fragments keyed by set name."""

    family: Family
    program: PolicyProgram
    fragments: dict[str, Fragment] = field(default_factory=dict)

    def _fragment(self, name: str, definition: Set, elements: Iterable[tuple[str, ...]]) -> str:
        if name not in self.fragments:
            b = FragmentBuilder(self.family)
            b.set(definition)
            for key in elements:
                b.element(name, key)
            self.fragments[name] = b.build()
        return name

    def peer(self, peer: Peer) -> str | None:
        """The set a peer matches, or None for ANY (no match expression)."""
        fam = self.family
        version = fam.version
        if peer.kind == PeerKind.ANY:
            return None
        if peer.kind == PeerKind.CIDRS:
            name = peer.set_name
            definition = Set(name, fam.addr_type, flags=("interval",), comment=peer.text[:128])
            return self._fragment(name, definition, ((r,) for r in _ranges(peer.addresses, fam)))
        if peer.kind == PeerKind.PODS:
            group = self.program.pod_group(peer.group)
            ips = sorted(
                {
                    ip
                    for key in group.members
                    if (pod := self.program.pod(key)) is not None
                    for ip in pod.ips
                    if ip.version == version
                },
                key=int,
            )
            definition = Set(peer.group, fam.addr_type, comment=_short(group.describe()))
            return self._fragment(peer.group, definition, ((str(ip),) for ip in ips))
        if peer.kind == PeerKind.NODES:
            ngroup = self.program.node_group(peer.group)
            definition = Set(
                peer.group, fam.addr_type, flags=("interval",), comment=_short(ngroup.describe())
            )
            elements = ((r,) for r in _ranges(ngroup.addresses, fam))
            return self._fragment(peer.group, definition, elements)
        dgroup = self.program.domain_group(peer.group)
        definition = Set(
            peer.group, fam.addr_type, flags=("interval",), comment=_short(dgroup.describe())
        )
        return self._fragment(
            peer.group, definition, ((r,) for r in _ranges(dgroup.addresses, fam))
        )

    def subject(self, group_id: str) -> str:
        return self.peer(Peer(PeerKind.PODS, group=group_id)) or group_id

    def ports(self, ports: Sequence[PortEntry]) -> str | None:
        ranges = sorted(p for p in ports if isinstance(p, PortRange))
        if not ranges:
            return None
        name = port_set_name(tuple(ports))
        definition = Set(
            name,
            "inet_proto . inet_service",
            flags=("interval",),
            comment=_short(", ".join(str(p) for p in ranges)),
        )
        elements = []
        for r in ranges:
            port = str(r.first) if r.first == r.last else f"{r.first}-{r.last}"
            elements.append((PROTOCOLS[r.protocol.value], port))
        return self._fragment(name, definition, _merge_port_elements(elements))

    def named(self, port: NamedPort) -> str:
        name = named_port_set(port)
        definition = Set(
            name,
            f"{self.family.addr_type} . inet_proto . inet_service",
            comment=f"named port {port}",
        )
        version = self.family.version
        elements = dict.fromkeys(
            (str(ip), PROTOCOLS[proto.value], str(number))
            for ip, proto, number in self.program.named_port_elements(port.name, port.protocol)
            if ip.version == version
        )
        return self._fragment(name, definition, elements)


def _merge_port_elements(elements: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Overlapping port ranges of one protocol merged (nft refuses overlaps)."""
    by_proto: dict[str, list[tuple[int, int]]] = {}
    for proto, port in elements:
        first, _, last = port.partition("-")
        by_proto.setdefault(proto, []).append((int(first), int(last or first)))
    out: list[tuple[str, str]] = []
    for proto in sorted(by_proto):
        spans = sorted(by_proto[proto])
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out.extend((proto, str(lo) if lo == hi else f"{lo}-{hi}") for lo, hi in merged)
    return out


def _short(text: str) -> str:
    text = text.replace('"', "'")
    return text if len(text) <= 120 else text[:117] + "..."


ACTION_VERDICT = {Action.ACCEPT: "accept", Action.DENY: "drop"}


def _rule_lines(rule: Rule, direction: Direction, tier: Tier, sets: _Sets, addr: str) -> list[str]:
    """nft rules for one policy rule: peers x port variants, all with its action."""
    if not rule.peers:
        return []  # matches nothing
    if tier == Tier.NETWORK_POLICY:
        verdict = "accept"
    elif rule.action == Action.PASS:
        # Pass leaves the tier: the Admin tier's Pass goes to NetworkPolicy; a Baseline
        # Pass has nothing after it but the default, allow.
        verdict = f"goto {tier_chain(direction, Tier.NETWORK_POLICY)}"
        if tier == Tier.BASELINE:
            verdict = "accept"
    else:
        verdict = ACTION_VERDICT[rule.action]
    port_matches: list[str] = []
    if rule.ports is None:
        port_matches = [""]
    else:
        numeric = sets.ports(rule.ports)
        if numeric is not None:
            port_matches.append(f"meta l4proto . th dport @{numeric}")
        for entry in rule.ports:
            if isinstance(entry, NamedPort):
                name = sets.named(entry)
                port_matches.append(f"{addr} daddr . meta l4proto . th dport @{name}")
    side = _peer_side(direction)
    lines = []
    for peer in rule.peers:
        set_name = sets.peer(peer)
        peer_match = f"{addr} {side} @{set_name}" if set_name else ""
        for port_match in port_matches:
            parts = [p for p in (peer_match, port_match, verdict) if p]
            lines.append(" ".join(parts))
    return list(dict.fromkeys(lines))


def policy_fragment(policy: Policy, sets: _Sets, family: Family) -> Fragment:
    b = FragmentBuilder(family, (policy.tier.value, policy.ref.qualified))
    addr = family.addr_match
    for direction in (Direction.EGRESS, Direction.INGRESS):
        if not policy.affects(direction):
            continue
        chain = b.chain(
            Chain(policy_chain(policy, direction), comment=_short(policy.ref.qualified))
        )
        for rule in policy.rules(direction):
            for line in _rule_lines(rule, direction, policy.tier, sets, addr):
                b.rule(chain, line, comment=_short(f"{rule.field} {rule.label}"))
    return b.build()


def tiers_fragment(program: PolicyProgram, sets: _Sets, family: Family) -> Fragment:
    """The tier chains: a jump per policy (in precedence order) gated on its subject."""
    b = FragmentBuilder(family)
    addr = family.addr_match
    for direction in (Direction.EGRESS, Direction.INGRESS):
        side = _subject_side(direction)
        for tier in TIER_ORDER:
            b.chain(tier_chain(direction, tier))
        for tier in TIER_ORDER:
            chain = tier_chain(direction, tier)
            policies = [p for p in program.tier(tier).policies if p.affects(direction)]
            for policy in policies:
                subject = sets.subject(policy.subject)
                b.rule(
                    chain,
                    f"{addr} {side} @{subject} jump {policy_chain(policy, direction)}",
                    comment=_short(f"{tier} {policy.ref.qualified}"),
                )
            if tier == Tier.NETWORK_POLICY:
                for policy in policies:
                    subject = sets.subject(policy.subject)
                    b.rule(
                        chain,
                        f"{addr} {side} @{subject} drop",
                        comment=_short(f"isolated by {policy.ref.qualified}"),
                    )
            nxt = TIER_ORDER.index(tier) + 1
            if nxt < len(TIER_ORDER):
                b.rule(chain, f"goto {tier_chain(direction, TIER_ORDER[nxt])}")
            else:
                b.rule(chain, "accept", comment="no tier decided: allowed")
    return b.build()


def skeleton(family: Family) -> Fragment:
    b = FragmentBuilder(family)
    addr = family.addr_match
    for name, hook, prio, direction in BASE_CHAINS:
        b.chain(Chain(name, ChainType.FILTER, hook, prio))
        side = _subject_side(direction)
        b.rule(name, "ct state established,related accept")
        b.rule(name, f"{addr} {side} @{LOCAL_PODS} goto {tier_chain(direction, Tier.ADMIN)}")
    return b.build()


def local_pods_fragment(program: PolicyProgram, node: str, family: Family) -> Fragment:
    b = FragmentBuilder(family)
    b.set(Set(LOCAL_PODS, family.addr_type, comment="pod-network pods of this node: the subjects"))
    for pod in program.pods:
        if pod.node != node or pod.host_network:
            continue
        for ip in pod.ips:
            if ip.version == family.version:
                b.element(LOCAL_PODS, (str(ip),))
    return b.build()


def render_policy(program: PolicyProgram, node: str, family: Family) -> DesiredTable:
    """The desired `netlet-policy` table of one family on `node`."""
    with paused_gc():
        return _render_policy(program, node, family)


def _render_policy(program: PolicyProgram, node: str, family: Family) -> DesiredTable:
    sets = _Sets(family, program)
    fragments: dict[str, Fragment] = {
        "skeleton": skeleton(family),
        "local-pods": local_pods_fragment(program, node, family),
    }
    for policy in program.policies():
        fragments[f"policy/{policy.ref.qualified}"] = policy_fragment(policy, sets, family)
    fragments["tiers"] = tiers_fragment(program, sets, family)
    for name, frag in sets.fragments.items():
        fragments[f"set/{name}"] = frag
    return DesiredTable(family, TABLE, TABLE_COMMENT, fragments)


class PolicyRenderer:
    """Renders the policy tables of one node, reusing fragments that did not change
    (equal fragments are replaced by the previous object, so the sync diff skips them)."""

    def __init__(self, node: str, families: Sequence[Family] = (Family.IP,)) -> None:
        self.node = node
        self.families = tuple(families)
        self._tables: dict[Family, DesiredTable] = {}

    def render(self, program: PolicyProgram) -> dict[Family, DesiredTable]:
        out = {}
        for family in self.families:
            table = render_policy(program, self.node, family)
            previous = self._tables.get(family)
            if previous is not None:
                table = table.with_fragments(
                    {
                        fid: prev if (prev := previous.fragments.get(fid)) == frag else frag
                        for fid, frag in table.fragments.items()
                    }
                )
            self._tables[family] = table
            out[family] = table
        return out
