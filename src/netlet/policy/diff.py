"""What changes between two clusters' policies: connections that flip, and why.

Endpoints are matched by name (``ns/pod``, ``node/NAME``, probe CIDR). Both
clusters are classified separately; endpoints are then grouped by the pair
(old class, new class, ports probed), so the comparison runs once per pair of
such groups and probe instead of once per pair of pods. Each change carries a
representative verdict from before and after, whose explanations name the
rules responsible. Rows from nodes are compared per destination endpoint
(ingress from a pod's own node is exempt, which classes do not capture).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from netlet.policy.classes import ClassIndex, build_classes
from netlet.policy.matrix import (
    ConnectivityMatrix,
    Probe,
    compute_matrix,
    default_probes,
)
from netlet.policy.verdict import EndpointKind, PolicyEngine, Verdict
from netlet.resources.core import Protocol
from netlet.resources.net import IPNetwork


@dataclass(frozen=True, slots=True)
class Change:
    sources: tuple[str, ...]  # endpoint labels sharing this change
    destinations: tuple[str, ...]
    probe: Probe
    before: bool
    after: bool
    pairs: int  # endpoint pairs the change applies to
    before_verdict: Verdict
    after_verdict: Verdict


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    probes: tuple[Probe, ...]
    changes: tuple[Change, ...]
    added: tuple[str, ...]  # endpoints only in the new cluster
    removed: tuple[str, ...]  # endpoints only in the old cluster


@dataclass(frozen=True, slots=True)
class _Group:
    labels: tuple[str, ...]
    old: tuple[int, ...]  # endpoint indexes in the old index
    new: tuple[int, ...]
    ports: frozenset[tuple[Protocol, int]]
    node_kind: bool


def _groups(old: ClassIndex, new: ClassIndex, default_ports: bool) -> list[_Group]:
    old_pos = {e.label: i for i, e in enumerate(old.endpoints)}
    buckets: dict[tuple[object, ...], list[tuple[str, int, int]]] = defaultdict(list)
    ports_of: dict[tuple[object, ...], frozenset[tuple[Protocol, int]]] = {}
    for j, endpoint in enumerate(new.endpoints):
        i = old_pos.get(endpoint.label)
        if i is None:
            continue
        before = old.endpoints[i]
        ports = frozenset(before.declared_ports) | frozenset(endpoint.declared_ports)
        key: tuple[object, ...] = (
            before.cls,
            endpoint.cls,
            ports if default_ports else frozenset(),
        )
        buckets[key].append((endpoint.label, i, j))
        ports_of[key] = ports
    out = []
    for key, items in buckets.items():
        node_kind = new.endpoints[items[0][2]].endpoint.kind == EndpointKind.NODE
        out.append(
            _Group(
                labels=tuple(label for label, _, _ in items),
                old=tuple(i for _, i, _ in items),
                new=tuple(j for _, _, j in items),
                ports=ports_of[key],
                node_kind=node_kind,
            )
        )
    return out


def _probe_indexes(probes: tuple[Probe, ...], group: _Group, default_ports: bool) -> list[int]:
    if not default_ports:
        return list(range(len(probes)))
    return [k for k, p in enumerate(probes) if (p.protocol, p.port) in group.ports]


def diff_policies(
    old_engine: PolicyEngine,
    new_engine: PolicyEngine,
    *,
    family: int = 4,
    probes: Sequence[Probe] | None = None,
    cidr_probes: Sequence[IPNetwork] = (),
    include_nodes: bool = False,
    namespaces: frozenset[str] | None = None,
) -> PolicyDiff:
    default = probes is None
    old_index, new_index = (
        build_classes(
            engine.program,
            family=family,
            probes=cidr_probes,
            include_nodes=include_nodes,
            with_declared_ports=default,
            namespaces=namespaces,
        )
        for engine in (old_engine, new_engine)
    )
    chosen = (
        tuple(probes)
        if probes is not None
        else tuple(sorted(set(default_probes(old_index)) | set(default_probes(new_index))))
    )
    old_m = compute_matrix(old_engine, old_index, chosen)
    new_m = compute_matrix(new_engine, new_index, chosen)
    groups = _groups(old_index, new_index, default)
    changes: list[Change] = []
    for src in groups:
        for dst in groups:
            for k in _probe_indexes(chosen, dst, default):
                if src.node_kind:
                    changes.extend(
                        _per_destination(src, dst, k, old_m, new_m, old_engine, new_engine)
                    )
                else:
                    change = _class_level(src, dst, k, old_m, new_m, old_engine, new_engine)
                    if change is not None:
                        changes.append(change)
    old_labels = {e.label for e in old_index.endpoints}
    new_labels = {e.label for e in new_index.endpoints}
    return PolicyDiff(
        probes=chosen,
        changes=tuple(changes),
        added=tuple(e.label for e in new_index.endpoints if e.label not in old_labels),
        removed=tuple(e.label for e in old_index.endpoints if e.label not in new_labels),
    )


def _explain(
    matrix: ConnectivityMatrix, engine: PolicyEngine, src: int, dst: int, probe: Probe
) -> Verdict:
    a, b = matrix.index.endpoints[src].endpoint, matrix.index.endpoints[dst].endpoint
    return engine.verdict(a, b, probe.protocol, probe.port)


def _class_level(
    src: _Group,
    dst: _Group,
    k: int,
    old_m: ConnectivityMatrix,
    new_m: ConnectivityMatrix,
    old_engine: PolicyEngine,
    new_engine: PolicyEngine,
) -> Change | None:
    pairs = len(src.labels) * len(dst.labels) - (len(src.labels) if src is dst else 0)
    if pairs == 0:
        return None
    o_src, o_dst = old_m.index.endpoints[src.old[0]].cls, old_m.index.endpoints[dst.old[0]].cls
    n_src, n_dst = new_m.index.endpoints[src.new[0]].cls, new_m.index.endpoints[dst.new[0]].cls
    before = old_m.class_allowed(o_src, o_dst, k)
    after = new_m.class_allowed(n_src, n_dst, k)
    if before == after:
        return None
    # A representative pair that is not a pod and itself.
    d = 1 if src is dst else 0
    probe = old_m.probes[k]
    return Change(
        src.labels,
        dst.labels,
        probe,
        before,
        after,
        pairs,
        _explain(old_m, old_engine, src.old[0], dst.old[d], probe),
        _explain(new_m, new_engine, src.new[0], dst.new[d], probe),
    )


def _per_destination(
    src: _Group,
    dst: _Group,
    k: int,
    old_m: ConnectivityMatrix,
    new_m: ConnectivityMatrix,
    old_engine: PolicyEngine,
    new_engine: PolicyEngine,
) -> list[Change]:
    out: dict[tuple[bool, bool], list[int]] = defaultdict(list)
    for s in range(len(src.labels)):
        for t in range(len(dst.labels)):
            if src is dst and s == t:
                continue
            before = old_m.allowed(src.old[s], dst.old[t], k)
            after = new_m.allowed(src.new[s], dst.new[t], k)
            if before != after:
                out[(before, after)].append(s * len(dst.labels) + t)
    changes = []
    probe = old_m.probes[k]
    for (before, after), cells in out.items():
        s0, t0 = divmod(cells[0], len(dst.labels))
        sources = tuple(dict.fromkeys(src.labels[c // len(dst.labels)] for c in cells))
        targets = tuple(dict.fromkeys(dst.labels[c % len(dst.labels)] for c in cells))
        changes.append(
            Change(
                sources,
                targets,
                probe,
                before,
                after,
                len(cells),
                _explain(old_m, old_engine, src.old[s0], dst.old[t0], probe),
                _explain(new_m, new_engine, src.new[s0], dst.new[t0], probe),
            )
        )
    return changes
