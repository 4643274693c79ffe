"""From EndpointSlices to the endpoints one node's proxy uses for a service port.

Two steps, both as kube-proxy does them:

1. `merge_slices` (pkg/proxy/endpointslicecache.go): the slices of one Service
   and one address type are merged per (port name, protocol). Each endpoint is
   its first address; unset conditions read as ready = true, serving = true,
   terminating = false; a port without a number is ignored and a port without a
   name is the unnamed port ""; the same ip:port from several slices is one
   endpoint (a copy on this node wins). Slices labelled
   service.kubernetes.io/headless or service.kubernetes.io/service-proxy-name are
   not for kube-proxy. Endpoints are ordered by address, then port.
2. `categorize` (pkg/proxy/topology.go CategorizeEndpoints): the endpoints the
   Cluster-policy chain and the Local-policy chain use on this node. Ready
   endpoints first, else serving-and-terminating ones (independently for Cluster
   and Local); not-serving endpoints never. Topology hints narrow the Cluster set
   only when every ready endpoint carries hints: node hints naming this node
   first (PreferSameNode), else zone hints naming this node's zone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from netlet.resources.core import (
    HEADLESS_LABEL,
    SERVICE_PROXY_NAME_LABEL,
    EndpointSlice,
    Protocol,
)
from netlet.services.table import Endpoint, IPAddress

PortKey = tuple[str, Protocol]  # (port name, protocol) as in ServicePortName


@lru_cache(maxsize=262144)
def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def proxied_slice(es: EndpointSlice) -> bool:
    """kube-proxy's informer selects slices without these labels."""
    labels = es.labels
    return HEADLESS_LABEL not in labels and SERVICE_PROXY_NAME_LABEL not in labels


def merge_slices(
    slices: Iterable[EndpointSlice], family: int, node: str, *, proxied_only: bool = True
) -> dict[PortKey, tuple[Endpoint, ...]]:
    """The endpoints of each service port (name, protocol) in one family, `local`
    computed for `node`. Slices are taken in name order; with `proxied_only` (what
    kube-proxy sees) slices of headless or other-proxy Services are skipped."""
    address_type = "IPv6" if family == 6 else "IPv4"
    by_port: dict[PortKey, dict[tuple[IPAddress, int], Endpoint]] = {}
    for es in sorted(slices, key=lambda s: s.name):
        if es.address_type != address_type or (proxied_only and not proxied_slice(es)):
            continue
        infos = []
        for ep in es.endpoints:
            ip = _ip(ep.addresses[0])
            if ip.version != family:
                continue
            cond = ep.conditions
            hints = ep.hints
            infos.append(
                (
                    ip,
                    cond.ready is None or cond.ready,
                    cond.serving is None or cond.serving,
                    bool(cond.terminating),
                    ep.node_name,
                    ep.zone,
                    frozenset(z.name for z in hints.for_zones) if hints else frozenset(),
                    frozenset(n.name for n in hints.for_nodes) if hints else frozenset(),
                    _target(ep.target_ref),
                )
            )
        for port in es.ports:
            if port.port is None or port.port == 0:
                continue
            key = (port.name or "", port.protocol)
            bucket = by_port.setdefault(key, {})
            number = port.port
            for ip, ready, serving, term, node_name, zone, zh, nh, target in infos:
                local = node_name is not None and node_name == node
                existing = bucket.get((ip, number))
                if existing is not None and not local:
                    continue  # first copy wins, unless this one is on our node
                bucket[(ip, number)] = Endpoint(
                    ip, number, ready, serving, term, node_name, zone, local, zh, nh, target
                )
    return {
        key: tuple(bucket[k] for k in sorted(bucket, key=_order)) for key, bucket in by_port.items()
    }


def _order(key: tuple[IPAddress, int]) -> tuple[int, int]:
    return int(key[0]), key[1]


def _target(ref: object) -> str | None:
    kind = getattr(ref, "kind", None)
    name = getattr(ref, "name", None)
    if not kind or not name:
        return None
    namespace = getattr(ref, "namespace", None)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass(frozen=True, slots=True)
class Categorized:
    """The result of CategorizeEndpoints for one service port on one node."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    has_any: bool  # usable endpoints anywhere in the cluster
    cluster_why: str
    local_why: str


def topology_mode(endpoints: Sequence[Endpoint], node: str, zone: str | None) -> str:
    """topologyModeFromHints: "PreferSameNode", "PreferSameZone" or "" (no topology)."""
    ready = [ep for ep in endpoints if ep.ready]
    if not ready:
        return ""
    if all(ep.node_hints for ep in ready) and any(node in ep.node_hints for ep in ready):
        return "PreferSameNode"
    if all(ep.zone_hints for ep in ready) and any(zone in ep.zone_hints for ep in ready):
        return "PreferSameZone"
    return ""


def _available(ep: Endpoint, mode: str, node: str, zone: str | None) -> bool:
    if mode == "PreferSameNode":
        return node in ep.node_hints
    if mode == "PreferSameZone":
        return zone in ep.zone_hints
    return True


def _ignored_hints(endpoints: Sequence[Endpoint], zone: str | None) -> str:
    """Why hints that some endpoints carry were not used (empty when none carry any)."""
    ready = [ep for ep in endpoints if ep.ready]
    if not any(ep.zone_hints or ep.node_hints for ep in ready):
        return ""
    if not all(ep.zone_hints for ep in ready):
        return " (hints ignored: not every ready endpoint has a zone hint)"
    if zone is None:
        return " (hints ignored: this node has no topology.kubernetes.io/zone label)"
    return f" (hints ignored: none is for zone {zone}; routed cluster-wide)"


def categorize(
    endpoints: Sequence[Endpoint],
    *,
    uses_cluster: bool,
    uses_local: bool,
    node: str,
    zone: str | None,
) -> Categorized:
    if not endpoints:
        return Categorized((), (), False, "no endpoints", "no endpoints")
    cluster: tuple[Endpoint, ...] = ()
    cluster_why = "not used"
    has_any = False
    if uses_cluster:
        mode = topology_mode(endpoints, node, zone)
        cluster = tuple(ep for ep in endpoints if ep.ready and _available(ep, mode, node, zone))
        if mode == "PreferSameNode":
            cluster_why = f"ready endpoints hinted for node {node} (PreferSameNode)"
        elif mode == "PreferSameZone":
            cluster_why = f"ready endpoints hinted for zone {zone} (PreferSameZone)"
        else:
            cluster_why = "ready endpoints" + _ignored_hints(endpoints, zone)
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
            cluster_why = (
                "no ready endpoint: serving terminating endpoints"
                if cluster
                else "no ready or serving-terminating endpoint"
            )
        has_any = bool(cluster)
    local: tuple[Endpoint, ...] = ()
    local_why = "not used"
    if uses_local:
        local_ready = False
        local_terminating = False
        for ep in endpoints:
            if ep.ready:
                has_any = True
                local_ready = local_ready or ep.local
            elif ep.serving and ep.terminating:
                has_any = True
                local_terminating = local_terminating or ep.local
        if local_ready:
            local = tuple(ep for ep in endpoints if ep.local and ep.ready)
            local_why = f"ready endpoints on node {node}"
        elif local_terminating:
            local = tuple(ep for ep in endpoints if ep.local and ep.serving and ep.terminating)
            local_why = f"no ready endpoint on node {node}: its serving terminating endpoints"
        else:
            local_why = f"no ready or serving-terminating endpoint on node {node}"
    return Categorized(cluster, local, has_any, cluster_why, local_why)
