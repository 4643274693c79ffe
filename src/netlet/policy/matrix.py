"""The connectivity matrix, computed on equivalence classes with bitsets.

For each probe (protocol, port) and each subject class, one walk through the
tiers computes the whole row at once: every rule is reduced to a bitset of the
peer classes it matches (pod groups, node groups and address atoms are
precomputed as bitsets), and the first-match semantics become set algebra
(``undecided``, ``accepted``, ``passed``). Egress rows (source class -> which
destination classes its egress allows) and ingress rows (destination class ->
which source classes its ingress allows) are combined with one bit-matrix
transpose. Cost: classes x applicable rules x distinct probes big-integer
operations, instead of pods^2 x rules.

Rows depend only on what the walk reads, so they are shared: egress rows by
the subject's applicable policies, ingress rows by those and the subject's
named ports. Probes that no rule can tell apart (same protocol, same interval
between port-range boundaries, no named port resolving to them) share rows.

Per-pod exemptions are applied on lookup (`allowed`): a pod to its own IP,
and ingress from the destination pod's own node.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from netlet.policy.classes import ClassIndex
from netlet.policy.program import (
    Action,
    Direction,
    NamedPort,
    PeerKind,
    Policy,
    PolicyProgram,
    PortRange,
    Rule,
)
from netlet.policy.verdict import Applicable, EndpointKind, PolicyEngine
from netlet.resources.core import Protocol
from netlet.resources.net import AddressSet


@dataclass(frozen=True, slots=True, order=True)
class Probe:
    protocol: Protocol
    port: int

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol.value}"


def parse_probe(text: str) -> Probe:
    """`80`, `80/TCP`, `53/udp`."""
    number, _, proto = text.strip().partition("/")
    try:
        port = int(number)
    except ValueError:
        raise ValueError(f"{text!r}: expected PORT[/PROTOCOL], e.g. 80/TCP") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port must be between 1 and 65535")
    try:
        protocol = Protocol((proto or "TCP").upper())
    except ValueError:
        raise ValueError(f"{text!r}: protocol must be TCP, UDP or SCTP") from None
    return Probe(protocol, port)


@dataclass(frozen=True, slots=True)
class ConnectivityMatrix:
    index: ClassIndex
    probes: tuple[Probe, ...]
    # True: each destination is probed only on its declared container ports.
    default_ports: bool
    # rows[probe][src class] = bitset of destination classes the connection reaches.
    rows: tuple[tuple[int, ...], ...]

    def class_allowed(self, src_cls: int, dst_cls: int, probe: int) -> bool:
        return bool(self.rows[probe][src_cls] >> dst_cls & 1)

    def allowed(self, src: int, dst: int, probe: int) -> bool:
        """Endpoint-level verdict, with the per-pod exemptions."""
        a, b = self.index.endpoints[src], self.index.endpoints[dst]
        if a.endpoint.kind == EndpointKind.POD and a.endpoint.pod == b.endpoint.pod:
            return True  # a pod to its own IP
        if (
            a.endpoint.kind == EndpointKind.NODE
            and b.endpoint.kind == EndpointKind.POD
            and a.endpoint.node == b.endpoint.node
        ):
            return True  # ingress from the pod's own node; nodes have no egress policy
        return self.class_allowed(a.cls, b.cls, probe)

    def probes_for(self, dst: int) -> tuple[int, ...]:
        """Probe indexes that apply to destination endpoint `dst`."""
        if not self.default_ports:
            return tuple(range(len(self.probes)))
        declared = set(self.index.endpoints[dst].declared_ports)
        return tuple(i for i, p in enumerate(self.probes) if (p.protocol, p.port) in declared)


def default_probes(index: ClassIndex) -> tuple[Probe, ...]:
    ports = {Probe(proto, port) for e in index.endpoints for proto, port in e.declared_ports}
    return tuple(sorted(ports))


class BitsetWalker:
    def __init__(self, program: PolicyProgram, engine: PolicyEngine, index: ClassIndex) -> None:
        self.engine = engine
        self.index = index
        self.n = len(index.classes)
        self.all = (1 << self.n) - 1
        self.pod_bits: dict[str, int] = defaultdict(int)
        self.node_bits: dict[str, int] = defaultdict(int)
        self.named_bits: dict[tuple[str, Protocol, int], int] = defaultdict(int)
        for cls in index.classes:
            bit = 1 << cls.index
            if cls.pod is not None:
                for group in cls.pod.groups:
                    self.pod_bits[group] |= bit
                for (name, proto), number in cls.pod.named_ports.items():
                    self.named_bits[(name, proto, number)] |= bit
            if cls.node is not None:
                for group in cls.node.groups:
                    self.node_bits[group] |= bit
        self.domain_sets = {g.id: g.addresses for g in program.domain_groups}
        self._addr_bits: dict[AddressSet, int] = {}
        self._peer_bits: dict[int, int] = {}
        self._ports: dict[tuple[int, Probe], tuple[bool, tuple[str, ...]]] = {}

    def addresses_bits(self, addresses: AddressSet) -> int:
        found = self._addr_bits.get(addresses)
        if found is None:
            spans = addresses.v4 if self.index.family == 4 else addresses.v6
            cuts = self.index.cuts
            found = 0
            for atom, bits in self.index.atom_bits.items():
                if atom < 0:
                    continue
                start = cuts[atom - 1] if atom > 0 else 0
                i = bisect.bisect_right(spans, (start, 2**129)) - 1
                if i >= 0 and spans[i][0] <= start <= spans[i][1]:
                    found |= bits
            self._addr_bits[addresses] = found
        return found

    def peers(self, rule: Rule) -> int:
        found = self._peer_bits.get(id(rule))
        if found is None:
            found = 0
            for peer in rule.peers:
                if peer.kind == PeerKind.ANY:
                    found = self.all
                    break
                if peer.kind == PeerKind.PODS:
                    found |= self.pod_bits.get(peer.group, 0)
                elif peer.kind == PeerKind.NODES:
                    found |= self.node_bits.get(peer.group, 0)
                elif peer.kind == PeerKind.CIDRS:
                    found |= self.addresses_bits(peer.addresses)
                else:
                    found |= self.addresses_bits(self.domain_sets[peer.group])
            self._peer_bits[id(rule)] = found
        return found

    def port_info(self, rule: Rule, probe: Probe) -> tuple[bool, tuple[str, ...]]:
        """(a numeric entry covers the probe, named ports that could resolve to it)."""
        key = (id(rule), probe)
        found = self._ports.get(key)
        if found is None:
            if rule.ports is None:
                found = (True, ())
            else:
                numeric = any(
                    type(e) is PortRange
                    and e.protocol == probe.protocol
                    and e.first <= probe.port <= e.last
                    for e in rule.ports
                )
                names = tuple(
                    e.name
                    for e in rule.ports
                    if isinstance(e, NamedPort) and e.protocol in (None, probe.protocol)
                )
                found = (numeric, names)
            self._ports[key] = found
        return found

    def egress_match(self, rule: Rule, probe: Probe) -> int:
        numeric, names = self.port_info(rule, probe)
        peers = self.peers(rule)
        if numeric:
            return peers
        named = 0
        for name in names:
            named |= self.named_bits.get((name, probe.protocol, probe.port), 0)
        return peers & named

    def walk(self, applicable: Applicable, match: Callable[[Rule], int]) -> int:
        """Bitset of peer classes the subject's side accepts."""
        admin, nps, baseline = applicable
        accepted, passed, undecided = self._walk_tier(admin, match, self.all)
        remaining = undecided | passed
        if nps:
            allowed = 0
            for _, rules in nps:
                for rule in rules:
                    allowed |= match(rule)
            return accepted | (remaining & allowed)
        more, passed, undecided = self._walk_tier(baseline, match, remaining)
        return accepted | more | undecided | passed  # what no tier decided is allowed

    @staticmethod
    def _walk_tier(
        tier: tuple[tuple[Policy, tuple[Rule, ...]], ...],
        match: Callable[[Rule], int],
        undecided: int,
    ) -> tuple[int, int, int]:
        """First-match walk of one admin-style tier over the undecided peer classes:
        (accepted, passed on to the next tier, still undecided). Deny is what is left out."""
        accepted = passed = 0
        for _, rules in tier:
            for rule in rules:
                hit = match(rule) & undecided
                if hit:
                    if rule.action is Action.ACCEPT:
                        accepted |= hit
                    elif rule.action is Action.PASS:
                        passed |= hit
                    undecided ^= hit
            if not undecided:
                break
        return accepted, passed, undecided

    def _ingress_match(
        self, named: Mapping[tuple[str, Protocol], int], probe: Probe
    ) -> Callable[[Rule], int]:
        """Ingress named ports resolve on the subject (the destination) itself."""

        def match(rule: Rule) -> int:
            numeric, names = self.port_info(rule, probe)
            if numeric or any(named.get((n, probe.protocol)) == probe.port for n in names):
                return self.peers(rule)
            return 0

        return match

    def egress_rows(self, probe: Probe) -> list[int]:
        rows: list[int] = []
        cache: dict[int, int] = {}
        for cls in self.index.classes:
            if cls.pod is None:
                rows.append(self.all)
                continue
            applicable = self.engine.applicable(cls.pod, Direction.EGRESS)
            row = cache.get(id(applicable))
            if row is None:
                row = self.walk(applicable, lambda r: self.egress_match(r, probe))
                cache[id(applicable)] = row
            rows.append(row)
        return rows

    def ingress_rows(self, probe: Probe) -> list[int]:
        rows: list[int] = []
        cache: dict[tuple[int, frozenset[tuple[tuple[str, Protocol], int]]], int] = {}
        for cls in self.index.classes:
            pod = cls.pod
            if pod is None:
                rows.append(self.all)
                continue
            applicable = self.engine.applicable(pod, Direction.INGRESS)
            key = (id(applicable), frozenset(pod.named_ports.items()))
            row = cache.get(key)
            if row is None:
                row = self.walk(applicable, self._ingress_match(pod.named_ports, probe))
                cache[key] = row
            rows.append(row)
        return rows


def transpose(rows: Sequence[int], n: int) -> list[int]:
    """Transpose an n x n bit matrix given as row bitsets (bit j of rows[i] is (i, j))."""
    if n == 0:
        return []
    texts = [format(row, f"0{n}b") for row in rows]  # column j sits at text[n - 1 - j]
    columns = ["".join(col) for col in zip(*texts, strict=True)]
    return [int(columns[n - 1 - j][::-1], 2) for j in range(n)]


def _probe_signatures(
    program: PolicyProgram, probes: Sequence[Probe], walker: BitsetWalker
) -> list[tuple[object, ...]]:
    """Probes with equal signatures get equal rows."""
    cuts: dict[Protocol, set[int]] = defaultdict(set)
    for policy in program.policies():
        for rule in policy.ingress + policy.egress:
            for entry in rule.ports or ():
                if isinstance(entry, PortRange):
                    cuts[entry.protocol].update((entry.first, entry.last + 1))
    sorted_cuts = {proto: sorted(points) for proto, points in cuts.items()}
    named_ports = {(proto, number) for (_, proto, number) in walker.named_bits}
    out: list[tuple[object, ...]] = []
    for probe in probes:
        if (probe.protocol, probe.port) in named_ports:
            out.append(("exact", probe))
        else:
            atom = bisect.bisect_right(sorted_cuts.get(probe.protocol, []), probe.port)
            out.append(("atom", probe.protocol, atom))
    return out


def compute_matrix(
    engine: PolicyEngine,
    index: ClassIndex,
    probes: Sequence[Probe] | None = None,
) -> ConnectivityMatrix:
    """The class-level matrix for `probes` (default: the destinations' declared ports)."""
    program = engine.program
    default = probes is None
    chosen = tuple(probes) if probes is not None else default_probes(index)
    walker = BitsetWalker(program, engine, index)
    signatures = _probe_signatures(program, chosen, walker)
    computed: dict[object, tuple[int, ...]] = {}
    rows: list[tuple[int, ...]] = []
    for probe, signature in zip(chosen, signatures, strict=True):
        found = computed.get(signature)
        if found is None:
            egress = walker.egress_rows(probe)
            ingress_t = transpose(walker.ingress_rows(probe), walker.n)
            found = tuple(e & i for e, i in zip(egress, ingress_t, strict=True))
            computed[signature] = found
        rows.append(found)
    return ConnectivityMatrix(index, chosen, default, tuple(rows))


# Views: what the CLI renders ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """Probe indexes allowed for every pair of the cell, denied for every pair, or
    allowed for some pairs only (grouped rows from nodes: own-node exemption)."""

    allowed: tuple[int, ...]
    denied: tuple[int, ...]
    mixed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MatrixView:
    probes: tuple[Probe, ...]
    default_ports: bool
    labels: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]
    # cells[row][column]; None when there is nothing to probe (no declared port, or
    # the only pair is an endpoint and itself).
    cells: tuple[tuple[Cell | None, ...], ...]


def group_label(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    namespace = labels[0].split("/", 1)[0] + "/"
    if len(prefix) > len(namespace) + 1:
        return f"{prefix}* ({len(labels)})"
    return f"{labels[0]} +{len(labels) - 1}"


def _cell(results: Sequence[tuple[int, list[bool]]]) -> Cell | None:
    if not results:
        return None
    allowed, denied, mixed = [], [], []
    for k, values in results:
        if not values:
            continue
        if all(values):
            allowed.append(k)
        elif not any(values):
            denied.append(k)
        else:
            mixed.append(k)
    if not (allowed or denied or mixed):
        return None
    return Cell(tuple(allowed), tuple(denied), tuple(mixed))


def endpoint_view(matrix: ConnectivityMatrix) -> MatrixView:
    """One row and column per endpoint."""
    endpoints = matrix.index.endpoints
    rows = []
    for i in range(len(endpoints)):
        row: list[Cell | None] = []
        for j in range(len(endpoints)):
            if i == j:
                row.append(None)
                continue
            row.append(_cell([(k, [matrix.allowed(i, j, k)]) for k in matrix.probes_for(j)]))
        rows.append(tuple(row))
    labels = tuple(e.label for e in endpoints)
    return MatrixView(
        matrix.probes, matrix.default_ports, labels, tuple((x,) for x in labels), tuple(rows)
    )


def class_view(matrix: ConnectivityMatrix) -> MatrixView:
    """One row and column per class that has endpoints (pods that policy cannot tell
    apart share a row). Cells touching a node class are checked pair by pair: the
    own-node exemption and the members' declared ports (a node and its host-network
    pods) differ inside such a class."""
    index = matrix.index
    groups = [c for c in index.classes if c.members]
    rows = []
    for src in groups:
        row: list[Cell | None] = []
        for dst in groups:
            results: dict[int, list[bool]] = defaultdict(list)
            pairs = [(a, b) for a in src.members for b in dst.members if a != b]
            if EndpointKind.NODE in (src.kind, dst.kind):
                for a, b in pairs:
                    for k in matrix.probes_for(b):
                        results[k].append(matrix.allowed(a, b, k))
            elif pairs:
                for k in matrix.probes_for(dst.members[0]):
                    results[k].append(matrix.class_allowed(src.index, dst.index, k))
            row.append(_cell(sorted(results.items())))
        rows.append(tuple(row))
    members = tuple(tuple(index.endpoints[m].label for m in c.members) for c in groups)
    return MatrixView(
        matrix.probes,
        matrix.default_ports,
        tuple(group_label(m) for m in members),
        members,
        tuple(rows),
    )
