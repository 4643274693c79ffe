"""The per-node service table: what one node's service proxy must do, as plain values.

This is the intermediate representation between the services brain and its
consumers (the nftables backend, `netlet svc trace`, `netlet get svc -o wide`).
It is the decided state of a kube-proxy in nftables mode on one node, one entry
per *service port and IP family* (upstream's ServicePortName, per family
proxier), with every semantic choice already made, so a backend only lays it out.
Everything is immutable: frozen dataclasses with slots, tuples, frozensets,
`ipaddress` values and persistent `immutables.Map`s (updating one service makes
a new table that shares everything else with the old one).

Layout (names in quotes are upstream nftables objects the fields feed)::

    ServiceTable (one node)
      node, zone, node_ips                 "fib saddr/daddr type local"
      nodeport_addresses                   "nodeport-ips"; never loopback
      pod_cidrs                            local traffic detector (ip saddr <pod CIDR>)
      service_cidrs                        "cluster-ips-check": drop unallocated
      masquerade_all                       kube-proxy --masquerade-all
      entries:     ServicePortName -> ServicePortEntry
      services:    ServiceName -> (ServicePortName, ...)
      service_ips: (address, protocol, port) -> ServicePortName   "service-ips",
                                           "no-endpoint-services", "firewall-ips"
      node_ports:  (family, protocol, port) -> ServicePortName    "service-nodeports",
                                           "no-endpoint-nodeports"
      cluster_ips: address -> ServiceName  "cluster-ips" (reject undefined ports)

    ServicePortEntry (one service port, one family)
      cluster_ip, port, protocol, node_port, external_ips,
      load_balancer_ips (ipMode VIP only), proxy_mode_ips (ipMode Proxy: not programmed)
      frontends: Frontend(kind, address, protocol, port, target, dispatch, no_endpoints)
      internal_policy / external_policy (Cluster | Local), affinity_timeout (seconds)
      firewall: Firewall(source_ranges, allowed, addresses) for loadBalancerSourceRanges
      cluster_endpoints  "service-..." chain: endpoints for Cluster policy (after
                         ready -> serving+terminating fallback and topology hints)
      local_endpoints    "local-..." chain: this node's endpoints for Local policy
      endpoints          every endpoint of the port (any condition), for display
      derived: internal_endpoints / internal_verdict, external_endpoints /
               external_verdict, uses_external_chain, reachable_endpoints

    Endpoint: ip, port, ready, serving, terminating, node, zone, local,
              zone_hints, node_hints, target ("Pod ns/name")

How a backend reads an entry (kube-proxy nftables mode, pkg/proxy/nftables):

- Each `Frontend` with `dispatch` True is an element of "service-ips" (with an
  address) or "service-nodeports" (address None: every nodeport address) that
  jumps to the internal chain (`target` internal: the ClusterIP) or to the
  external chain (`target` external: externalIPs, load balancer VIPs, NodePort).
  A frontend with `no_endpoints` set is an element of "no-endpoint-services" /
  "no-endpoint-nodeports" with that verdict (reject or drop). Both can be set on
  one external frontend: under externalTrafficPolicy Local with no local
  endpoint, pod and node sources are short-circuited by the external chain and
  everything else falls through to the drop.
- Internal chain = the cluster chain (internalTrafficPolicy Cluster) or the local
  chain (Local). It first marks for masquerade when `masquerade_all`, or when the
  destination is the ClusterIP and the source is outside `pod_cidrs`
  (off-cluster traffic to a ClusterIP).
- External chain: policy Cluster marks for masquerade then goes to the cluster
  chain. Policy Local: sources in `pod_cidrs` go to the cluster chain
  (short-circuit, no masquerade); sources local to the node are marked for
  masquerade and go to the cluster chain; the rest go to the local chain when
  there are local endpoints.
- Cluster/local chains: with `affinity_timeout`, an affinity set per endpoint
  (timeout = affinity_timeout) is checked first; then `numgen random mod N`
  over the chain's endpoints in their order. Each endpoint chain marks for
  masquerade when the source is the endpoint itself (hairpin), updates the
  affinity set, and DNATs to ip:port.
- `firewall` (LoadBalancer VIPs with loadBalancerSourceRanges; never NodePorts):
  before DNAT, a new connection to one of `firewall.addresses` from a source
  outside `firewall.allowed` is dropped.
- Table level: a ClusterIP in `cluster_ips` on an undefined port/protocol is
  rejected; any other address in `service_cidrs` is dropped.

The flow evaluator (netlet.services.flow) walks exactly these fields in this
order; it is the executable statement of the layout above.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import immutables

from netlet.resources.core import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Policy(enum.StrEnum):
    """internalTrafficPolicy / externalTrafficPolicy."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class Verdict(enum.StrEnum):
    """What happens to a new connection no endpoint can take."""

    REJECT = "reject"  # ICMP unreachable / TCP reset: "goto reject-chain"
    DROP = "drop"


class FrontendKind(enum.StrEnum):
    CLUSTER_IP = "ClusterIP"
    EXTERNAL_IP = "ExternalIP"
    LOAD_BALANCER = "LoadBalancer"
    NODE_PORT = "NodePort"


class Target(enum.StrEnum):
    """Which chain a captured frontend jumps to."""

    INTERNAL = "internal"  # the ClusterIP: internal traffic policy
    EXTERNAL = "external"  # externalIPs, load balancer IPs, NodePorts: external policy


@dataclass(frozen=True, slots=True, order=True)
class ServiceName:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """Upstream's ServicePortName (namespace/name:port + protocol), per IP family."""

    namespace: str
    name: str
    port: str  # the Service port's name ("" when the Service has one unnamed port)
    protocol: Protocol
    family: int  # 4 or 6

    @property
    def service(self) -> ServiceName:
        return ServiceName(self.namespace, self.name)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        family = " (IPv6)" if self.family == 6 else ""
        return f"{self.namespace}/{self.name}{port}/{self.protocol.value}{family}"


def format_address(ip: IPAddress, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend of one service port, as this node sees it."""

    ip: IPAddress
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node: str | None
    zone: str | None
    local: bool  # node == the table's node
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()
    target: str | None = None  # "Pod ns/name" when the slice names one

    def __str__(self) -> str:
        return format_address(self.ip, self.port)

    @property
    def conditions(self) -> str:
        """kubectl-like summary: Ready, Serving+Terminating, NotReady..."""
        if self.ready:
            return "Ready" + ("+Terminating" if self.terminating else "")
        if self.serving:
            return "Serving" + ("+Terminating" if self.terminating else "")
        return "NotReady" + ("+Terminating" if self.terminating else "")


def no_endpoints_verdict(has_endpoints: bool, chain: Sequence[Endpoint]) -> Verdict | None:
    """REJECT when the service port has no usable endpoint anywhere in the cluster; DROP
    when only a Local traffic policy leaves this chain empty; None when it has endpoints."""
    if not has_endpoints:
        return Verdict.REJECT
    return None if chain else Verdict.DROP


@dataclass(frozen=True, slots=True)
class Frontend:
    """One address . protocol . port this node captures for a service port."""

    kind: FrontendKind
    address: IPAddress | None  # None for NodePorts: every address in nodeport_addresses
    protocol: Protocol
    port: int
    target: Target
    dispatch: bool  # in "service-ips" / "service-nodeports"
    no_endpoints: Verdict | None  # in "no-endpoint-services" / "no-endpoint-nodeports"

    def __str__(self) -> str:
        where = "<node>" if self.address is None else str(self.address)
        if self.address is not None and self.address.version == 6:
            where = f"[{where}]"
        return f"{self.kind.value} {where}:{self.port}/{self.protocol.value}"


@dataclass(frozen=True, slots=True)
class Firewall:
    """loadBalancerSourceRanges of one family, applied to the load balancer VIPs only."""

    source_ranges: tuple[IPNetwork, ...]
    # The ranges, plus the VIPs themselves when a range holds the node's IP: a node
    # reaching its own VIP loops back with the VIP as source.
    allowed: tuple[IPNetwork, ...]
    addresses: tuple[IPAddress, ...]

    def allows(self, source: IPAddress) -> bool:
        return any(source in net for net in self.allowed if net.version == source.version)


@dataclass(frozen=True, slots=True)
class ServicePortEntry:
    """Everything the node does for one service port of one IP family."""

    name: ServicePortName
    cluster_ip: IPAddress
    port: int
    protocol: Protocol
    node_port: int | None
    external_ips: tuple[IPAddress, ...]
    load_balancer_ips: tuple[IPAddress, ...]  # status ingress IPs with ipMode VIP
    proxy_mode_ips: tuple[IPAddress, ...]  # ipMode Proxy: left to the load balancer
    firewall: Firewall | None
    affinity_timeout: int | None  # ClientIP session affinity, seconds
    internal_policy: Policy
    external_policy: Policy
    health_check_node_port: int | None
    has_endpoints: bool  # usable endpoints anywhere in the cluster
    cluster_endpoints: tuple[Endpoint, ...]
    local_endpoints: tuple[Endpoint, ...]
    cluster_selection: str  # why cluster_endpoints are these (explanations)
    local_selection: str
    endpoints: tuple[Endpoint, ...]  # every endpoint of this port and family
    frontends: tuple[Frontend, ...] = field(default=())

    @property
    def service(self) -> ServiceName:
        return self.name.service

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def internal_endpoints(self) -> tuple[Endpoint, ...]:
        """Endpoints of the internal chain (ClusterIP traffic)."""
        if self.internal_policy == Policy.LOCAL:
            return self.local_endpoints
        return self.cluster_endpoints

    @property
    def internal_verdict(self) -> Verdict | None:
        """Verdict for ClusterIP traffic when the internal chain has no endpoint."""
        return no_endpoints_verdict(self.has_endpoints, self.internal_endpoints)

    @property
    def external_endpoints(self) -> tuple[Endpoint, ...]:
        """Endpoints external sources reach through the external chain."""
        if self.external_policy == Policy.LOCAL:
            return self.local_endpoints
        return self.cluster_endpoints

    @property
    def external_verdict(self) -> Verdict | None:
        """Verdict for external frontends that the external chain does not DNAT."""
        return no_endpoints_verdict(self.has_endpoints, self.external_endpoints)

    @property
    def uses_external_chain(self) -> bool:
        # Needed even without external endpoints: it short-circuits pod/node traffic.
        return self.has_endpoints and self.externally_accessible

    @property
    def reachable_endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint some chain of this entry may DNAT to (one endpoint chain each)."""
        seen: dict[tuple[IPAddress, int], Endpoint] = {}
        for ep in self.cluster_endpoints + self.local_endpoints:
            seen.setdefault((ep.ip, ep.port), ep)
        return tuple(seen.values())


ServiceIPKey = tuple[IPAddress, Protocol, int]
NodePortKey = tuple[int, Protocol, int]  # (family, protocol, port)


def _empty_map() -> immutables.Map[Any, Any]:
    return immutables.Map()


@dataclass(frozen=True, slots=True)
class ServiceTable:
    """The service proxy state of one node (both IP families)."""

    node: str
    zone: str | None
    node_ips: tuple[IPAddress, ...]
    nodeport_addresses: tuple[IPAddress, ...]
    pod_cidrs: tuple[IPNetwork, ...]
    service_cidrs: tuple[IPNetwork, ...]
    masquerade_all: bool = False
    entries: immutables.Map[ServicePortName, ServicePortEntry] = field(default_factory=_empty_map)
    services: immutables.Map[ServiceName, tuple[ServicePortName, ...]] = field(
        default_factory=_empty_map
    )
    service_ips: immutables.Map[ServiceIPKey, ServicePortName] = field(default_factory=_empty_map)
    node_ports: immutables.Map[NodePortKey, ServicePortName] = field(default_factory=_empty_map)
    cluster_ips: immutables.Map[IPAddress, ServiceName] = field(default_factory=_empty_map)

    def entries_of(self, service: ServiceName) -> tuple[ServicePortEntry, ...]:
        return tuple(self.entries[key] for key in self.services.get(service, ()))

    def is_local_address(self, address: IPAddress) -> bool:
        """`fib saddr/daddr type local`, as far as the manifests tell: the node's IPs."""
        return address in self.node_ips

    def in_pod_cidr(self, address: IPAddress) -> bool:
        return any(address in net for net in self.pod_cidrs if net.version == address.version)

    def accepts_node_port(self, address: IPAddress) -> bool:
        return address in self.nodeport_addresses

    def in_service_cidr(self, address: IPAddress) -> bool:
        return any(address in net for net in self.service_cidrs if net.version == address.version)

    @property
    def settings(self) -> tuple[object, ...]:
        """The node-wide fields; when they change a backend needs a full sync."""
        return (
            self.node,
            self.zone,
            self.node_ips,
            self.nodeport_addresses,
            self.pod_cidrs,
            self.service_cidrs,
            self.masquerade_all,
        )
