"""Problems with Services and their endpoints that loading alone does not see.

Each finding is a Diagnostic with a stable code (for `netlet check`):

- named-port-unresolved: a targetPort name that no selected pod declares (for
  the Service port's protocol), or that some selected pods lack (those pods are
  left out of that port, as the EndpointSlice controller does);
- no-endpoints: a proxied Service port without a usable endpoint: connections
  to it are rejected;
- vip-conflict: two Service ports claim the same address, protocol and port
  (ClusterIP, externalIP or load balancer IP); kube-proxy keeps one of them;
- endpointslice-orphan / endpointslice-port-unmatched: manifest slices that no
  Service uses, or whose ports match no Service port;
- topology-not-modelled: the service.kubernetes.io/topology-mode annotation
  (CPU-proportional hints) is not modelled; no hints are generated;
- traffic-distribution-no-zone: zone hints are ignored by kube-proxy unless
  every ready endpoint has one, and some endpoint's node has no zone label;
- local-policy-no-local-endpoints (info): nodes where a Local traffic policy
  finds no endpoint, so that traffic is dropped there.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from netlet.cluster.state import ClusterState
from netlet.resources.core import EndpointSlice, Node, Service
from netlet.resources.diagnostics import Diagnostic, ObjectRef, Severity, warning
from netlet.services.endpoints import merge_slices, proxied_slice
from netlet.services.endpointslices import (
    SliceSource,
    has_selector,
    pod_in_endpoints,
    service_name,
    topology_annotation,
)
from netlet.services.entries import externally_accessible, proxied
from netlet.services.table import ServiceName, format_address


def _ref(obj: Service | EndpointSlice) -> ObjectRef:
    return ObjectRef(obj.KIND, obj.namespace, obj.name)


def _diag(
    state: ClusterState,
    obj: Service | EndpointSlice,
    message: str,
    *,
    path: str = "",
    code: str,
    severity: Severity = Severity.WARNING,
) -> Diagnostic:
    return Diagnostic(severity, message, state.origin(obj), _ref(obj), path, code)


def find_service_problems(state: ClusterState) -> list[Diagnostic]:
    source = SliceSource(state)
    services = state.list(Service)
    out: list[Diagnostic] = []
    for svc in services:
        out.extend(_named_ports(state, source, svc))
        out.extend(_endpoints(state, source, svc))
        out.extend(_topology(state, source, svc))
    out.extend(_vip_conflicts(state, services))
    out.extend(_slices(state, {service_name(s): s for s in services}))
    return out


def _named_ports(state: ClusterState, source: SliceSource, svc: Service) -> list[Diagnostic]:
    if not has_selector(svc) or source.manifest_slices(service_name(svc)):
        return []
    pods = [p for p in source.selected_pods(svc) if pod_in_endpoints(p)]
    if not pods:
        return []
    out = []
    for i, port in enumerate(svc.spec.ports):
        target = port.target_port
        if not isinstance(target, str):
            continue
        lacking = [p for p in pods if p.named_port(target, port.protocol) is None]
        if not lacking:
            continue
        path = f"spec.ports[{i}].targetPort"
        if len(lacking) == len(pods):
            message = (
                f"targetPort {target!r} is not a {port.protocol.value} containerPort name of any "
                f"of the {len(pods)} selected pod(s): port {port.port} has no endpoints"
            )
        else:
            names = ", ".join(f"{p.namespace}/{p.name}" for p in lacking[:3])
            more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
            message = (
                f"targetPort {target!r} is not declared by pod(s) {names}{more}: they are left "
                f"out of port {port.port}"
            )
        out.append(_diag(state, svc, message, path=path, code="named-port-unresolved"))
    return out


def _endpoints(state: ClusterState, source: SliceSource, svc: Service) -> list[Diagnostic]:
    if not proxied(svc):
        return []
    slices = source.slices_for(svc)
    out = []
    nodes = [n.name for n in state.list(Node)]
    for ip_text in svc.spec.cluster_ips:
        family = ipaddress.ip_address(ip_text).version
        merged = merge_slices(slices.slices, family, "")
        for i, port in enumerate(svc.spec.ports):
            endpoints = merged.get((port.name or "", port.protocol), ())
            usable = [ep for ep in endpoints if ep.ready or (ep.serving and ep.terminating)]
            label = f"port {port.port}/{port.protocol.value}" + (" (IPv6)" if family == 6 else "")
            if not usable:
                why = _why_empty(source, svc, slices.generated, bool(slices.slices), endpoints)
                message = f"{label} has no usable endpoint ({why}): connections are rejected"
                out.append(_diag(state, svc, message, path=f"spec.ports[{i}]", code="no-endpoints"))
                continue
            local_policy = svc.spec.internal_traffic_policy == "Local" or (
                externally_accessible(svc) and svc.spec.external_traffic_policy == "Local"
            )
            if local_policy:
                have = {ep.node for ep in usable}
                missing = [n for n in nodes if n not in have]
                if missing:
                    message = (
                        f"{label}: a Local traffic policy finds no endpoint on node(s) "
                        f"{', '.join(missing)}; that traffic is dropped there"
                    )
                    out.append(
                        _diag(
                            state,
                            svc,
                            message,
                            path=f"spec.ports[{i}]",
                            code="local-policy-no-local-endpoints",
                            severity=Severity.INFO,
                        )
                    )
    return out


def _why_empty(
    source: SliceSource, svc: Service, generated: bool, any_slice: bool, endpoints: object
) -> str:
    if endpoints:
        return "no endpoint is ready, or serving while terminating"
    if generated and not source.selected_pods(svc):
        return f"the selector {_selector(svc)} matches no pod"
    if generated:
        return "no selected pod is running with an address and this port"
    if not has_selector(svc) and not any_slice:
        return "the Service has no selector and no EndpointSlice names it"
    return "no EndpointSlice of this Service has this port"


def _selector(svc: Service) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((svc.spec.selector or {}).items()))


def _topology(state: ClusterState, source: SliceSource, svc: Service) -> list[Diagnostic]:
    out = []
    annotation = topology_annotation(svc)
    if annotation is not None and has_selector(svc):
        out.append(
            _diag(
                state,
                svc,
                f"topology-mode {annotation} (hints proportional to zone CPU) is not modelled: "
                "netlet generates no hints and routes cluster-wide",
                path="metadata.annotations",
                code="topology-not-modelled",
            )
        )
    if svc.spec.traffic_distribution and annotation is None and has_selector(svc):
        slices = source.slices_for(svc)
        if slices.generated:
            zoneless = sorted(
                {
                    ep.node_name or "<no node>"
                    for es in slices.slices
                    for ep in es.endpoints
                    if ep.conditions.ready and not ep.zone
                }
            )
            if zoneless:
                out.append(
                    _diag(
                        state,
                        svc,
                        f"trafficDistribution {svc.spec.traffic_distribution} has no effect: "
                        f"kube-proxy uses zone hints only when every ready endpoint has one, and "
                        f"node(s) {', '.join(zoneless)} have no topology.kubernetes.io/zone label",
                        path="spec.trafficDistribution",
                        code="traffic-distribution-no-zone",
                    )
                )
    return out


def _vip_conflicts(state: ClusterState, services: list[Service]) -> list[Diagnostic]:
    claims: dict[tuple[str, str, int], list[tuple[Service, str]]] = defaultdict(list)
    for svc in services:
        if not proxied(svc):
            continue
        addresses = [(ip, "clusterIP") for ip in svc.spec.cluster_ips if ip != "None"]
        addresses += [(ip, "externalIPs") for ip in svc.spec.external_ips]
        addresses += [
            (ing.ip, "status.loadBalancer.ingress")
            for ing in svc.status.load_balancer.ingress
            if ing.ip and ing.ip_mode != "Proxy"
        ]
        for ip, where in addresses:
            for port in svc.spec.ports:
                claims[(str(ipaddress.ip_address(ip)), port.protocol.value, port.port)].append(
                    (svc, where)
                )
    out = []
    for (ip, proto, number), owners in sorted(claims.items()):
        distinct = {service_name(s) for s, _ in owners}
        if len(distinct) < 2:
            continue
        first = sorted(owners, key=lambda o: service_name(o[0]))
        names = ", ".join(f"{service_name(s)} ({where})" for s, where in first)
        address = format_address(ipaddress.ip_address(ip), number)
        for svc, where in first[1:]:
            message = (
                f"{address}/{proto} is claimed by {names}: kube-proxy sends it to one Service only "
                f"(netlet: {service_name(first[0][0])})"
            )
            out.append(_diag(state, svc, message, path=f"spec.{where}", code="vip-conflict"))
    return out


def _slices(state: ClusterState, services: dict[ServiceName, Service]) -> list[Diagnostic]:
    out = []
    for es in state.list(EndpointSlice):
        label = es.service_name
        if not label:
            out.append(
                _diag(
                    state,
                    es,
                    "no kubernetes.io/service-name label: no Service uses this slice",
                    path="metadata.labels",
                    code="endpointslice-orphan",
                )
            )
            continue
        svc = services.get(ServiceName(es.namespace, label))
        if svc is None:
            out.append(
                _diag(
                    state,
                    es,
                    f"kubernetes.io/service-name names {es.namespace}/{label}, "
                    "which does not exist",
                    path="metadata.labels",
                    code="endpointslice-orphan",
                )
            )
            continue
        if not proxied_slice(es) or es.address_type == "FQDN":
            continue
        wanted = {(p.name or "", p.protocol) for p in svc.spec.ports}
        for i, port in enumerate(es.ports):
            if (port.name or "", port.protocol) not in wanted:
                name = port.name or '""'
                out.append(
                    warning(
                        f"port name {name}/{port.protocol.value} matches no port of Service "
                        f"{es.namespace}/{label}: these endpoints are not used for it",
                        origin=state.origin(es),
                        obj=_ref(es),
                        path=f"ports[{i}].name",
                        code="endpointslice-port-unmatched",
                    )
                )
    return out
