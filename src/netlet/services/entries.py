"""One Service (and its slices) -> its ServicePortEntries on one node.

This is kube-proxy's per-service-port decision (pkg/proxy/serviceport.go
newBaseServiceInfo, pkg/proxy/nftables/proxier.go syncProxyRules) as a pure
function: which addresses are captured, under which traffic policy, with which
endpoints, and what a connection gets when no endpoint can take it. Node-wide
facts (node IPs, nodeport addresses, CIDRs) come in a `NodeContext`.

Rules kept here:
- kube-proxy skips Services labelled service.kubernetes.io/service-proxy-name,
  headless Services and ExternalName Services (no virtual IP; DNS only);
- one entry per Service port and per family of spec.clusterIPs; externalIPs,
  load balancer IPs and loadBalancerSourceRanges are split by family;
- load balancer ingress IPs are programmed only with ipMode VIP (the default);
  ipMode Proxy leaves the traffic to the load balancer;
- externalTrafficPolicy Local applies only to externally accessible Services;
  the Cluster endpoints are still computed for them (short-circuit of pod and
  node traffic); the Local endpoints when either policy is Local;
- loadBalancerSourceRanges guard the load balancer VIPs, never NodePorts;
  when a range holds the node's IP the VIPs themselves are allowed sources;
- ClientIP affinity keeps timeoutSeconds (defaulted to 10800 by the API).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from netlet.resources.core import SERVICE_PROXY_NAME_LABEL, EndpointSlice, Protocol, Service
from netlet.services.endpoints import categorize, merge_slices
from netlet.services.table import (
    Endpoint,
    Firewall,
    Frontend,
    FrontendKind,
    IPAddress,
    IPNetwork,
    Policy,
    ServicePortEntry,
    ServicePortName,
    Target,
    no_endpoints_verdict,
)


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What one node's proxy knows about itself."""

    node: str
    zone: str | None
    node_ips: tuple[IPAddress, ...]  # every address of the node
    primary_ips: tuple[IPAddress, ...]  # first InternalIP per family (kube-proxy's nodeIPs)

    def primary(self, family: int) -> IPAddress | None:
        return next((ip for ip in self.primary_ips if ip.version == family), None)


def proxied(svc: Service) -> bool:
    """kube-proxy programs this Service (ShouldSkipService and the informer's selector)."""
    if SERVICE_PROXY_NAME_LABEL in svc.labels:
        return False
    if svc.spec.type == "ExternalName":
        return False
    ip = svc.spec.cluster_ip
    return bool(ip) and ip != "None"


def externally_accessible(svc: Service) -> bool:
    """apiservice.ExternallyAccessible: LoadBalancer, NodePort, or ClusterIP with externalIPs."""
    spec = svc.spec
    return spec.type in ("LoadBalancer", "NodePort") or (
        spec.type == "ClusterIP" and bool(spec.external_ips)
    )


def _ips(texts: Sequence[str], family: int) -> tuple[IPAddress, ...]:
    out = []
    for text in texts:
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            continue
        if ip.version == family:
            out.append(ip)
    return tuple(dict.fromkeys(out))


def _ranges(texts: Sequence[str], family: int) -> tuple[IPNetwork, ...]:
    out = []
    for text in texts:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            continue
        if net.version == family:
            out.append(net)
    return tuple(out)


def _load_balancer_ips(svc: Service, family: int) -> tuple[tuple[IPAddress, ...], ...]:
    vips: list[IPAddress] = []
    proxy: list[IPAddress] = []
    for ingress in svc.status.load_balancer.ingress:
        if not ingress.ip:
            continue
        ip = ipaddress.ip_address(ingress.ip)
        if ip.version != family:
            continue
        (proxy if ingress.ip_mode == "Proxy" else vips).append(ip)
    return tuple(dict.fromkeys(vips)), tuple(dict.fromkeys(proxy))


def service_entries(
    svc: Service, slices: Sequence[EndpointSlice], ctx: NodeContext
) -> tuple[ServicePortEntry, ...]:
    """Every entry of one Service on one node ((), when kube-proxy skips it)."""
    if not proxied(svc):
        return ()
    spec = svc.spec
    internal_local = spec.internal_traffic_policy == "Local"
    external_local = externally_accessible(svc) and spec.external_traffic_policy == "Local"
    affinity = None
    if spec.session_affinity == "ClientIP" and spec.session_affinity_config is not None:
        affinity = spec.session_affinity_config.client_ip.timeout_seconds
    health = spec.health_check_node_port if spec.type == "LoadBalancer" and external_local else None
    out: list[ServicePortEntry] = []
    for cluster_text in spec.cluster_ips:
        if cluster_text == "None":
            continue
        cluster_ip = ipaddress.ip_address(cluster_text)
        family = cluster_ip.version
        merged = merge_slices(slices, family, ctx.node)
        external_ips = _ips(spec.external_ips, family)
        vips, proxy_ips = _load_balancer_ips(svc, family)
        firewall = _firewall(spec.load_balancer_source_ranges, vips, ctx, family)
        for port in spec.ports:
            name = ServicePortName(svc.namespace, svc.name, port.name or "", port.protocol, family)
            endpoints = merged.get((port.name or "", port.protocol), ())
            node_port = port.node_port or None
            accessible = bool(node_port or vips or external_ips)
            uses_cluster = not internal_local or accessible
            uses_local = internal_local or (external_local and accessible)
            cat = categorize(
                endpoints,
                uses_cluster=uses_cluster,
                uses_local=uses_local,
                node=ctx.node,
                zone=ctx.zone,
            )
            internal_policy = Policy.LOCAL if internal_local else Policy.CLUSTER
            external_policy = Policy.LOCAL if external_local else Policy.CLUSTER
            frontends = _frontends(
                cluster_ip,
                external_ips,
                vips,
                port.protocol,
                port.port,
                node_port,
                has_endpoints=cat.has_any,
                internal=cat.local if internal_local else cat.cluster,
                external=cat.local if external_local else cat.cluster,
            )
            out.append(
                ServicePortEntry(
                    name=name,
                    cluster_ip=cluster_ip,
                    port=port.port,
                    protocol=port.protocol,
                    node_port=node_port,
                    external_ips=external_ips,
                    load_balancer_ips=vips,
                    proxy_mode_ips=proxy_ips,
                    firewall=firewall,
                    affinity_timeout=affinity,
                    internal_policy=internal_policy,
                    external_policy=external_policy,
                    health_check_node_port=health,
                    has_endpoints=cat.has_any,
                    cluster_endpoints=cat.cluster,
                    local_endpoints=cat.local,
                    cluster_selection=cat.cluster_why,
                    local_selection=cat.local_why,
                    endpoints=endpoints,
                    frontends=frontends,
                )
            )
    return tuple(out)


def _firewall(
    ranges_text: Sequence[str], vips: tuple[IPAddress, ...], ctx: NodeContext, family: int
) -> Firewall | None:
    ranges = _ranges(ranges_text, family)
    if not vips or not ranges:
        return None
    allowed = list(ranges)
    node_ip = ctx.primary(family)
    if node_ip is not None and any(node_ip in net for net in ranges):
        allowed += [ipaddress.ip_network(ip) for ip in vips]
    return Firewall(ranges, tuple(allowed), vips)


def _frontends(
    cluster_ip: IPAddress,
    external_ips: tuple[IPAddress, ...],
    vips: tuple[IPAddress, ...],
    proto: Protocol,
    port: int,
    node_port: int | None,
    *,
    has_endpoints: bool,
    internal: Sequence[Endpoint],
    external: Sequence[Endpoint],
) -> tuple[Frontend, ...]:
    internal_verdict = no_endpoints_verdict(has_endpoints, internal)
    external_verdict = no_endpoints_verdict(has_endpoints, external)
    out = [
        Frontend(
            FrontendKind.CLUSTER_IP,
            cluster_ip,
            proto,
            port,
            Target.INTERNAL,
            internal_verdict is None,
            internal_verdict,
        )
    ]
    externals: list[tuple[FrontendKind, IPAddress | None, int]] = [
        (FrontendKind.EXTERNAL_IP, ip, port) for ip in external_ips
    ]
    externals += [(FrontendKind.LOAD_BALANCER, ip, port) for ip in vips]
    if node_port:
        externals.append((FrontendKind.NODE_PORT, None, node_port))
    for kind, address, number in externals:
        # Captured whenever the service has endpoints somewhere: the external chain
        # short-circuits pod and node traffic even when no local endpoint exists.
        out.append(
            Frontend(kind, address, proto, number, Target.EXTERNAL, has_endpoints, external_verdict)
        )
    return tuple(out)
