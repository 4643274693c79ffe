"""Building one node's service table, in full or incrementally from ClusterState events.

`build_table(state, node)` is the pure entry point. `ServiceTableBuilder` is
the same computation kept up to date: it remembers, per Service, the entries it
produced, and indexes pods, selector Services and slices (netlet.services
.endpointslices.SliceSource), so an event costs work proportional to the
Services it touches, not to the cluster:

- a Service event recomputes that Service;
- an EndpointSlice event recomputes the Service named by its
  kubernetes.io/service-name label (before and after);
- a Pod event recomputes the selector Services whose selector matches the pod's
  labels before or after (found through (namespace, label, value) buckets);
- a Node event rebuilds everything (zones, node IPs and nodeport addresses are
  node-wide; upstream kube-proxy does a full sync on node label changes too).

Events are recorded as they arrive; `sync()` applies them and returns the
`TableDiff` (like kube-proxy's change trackers and syncProxyRules). Tables are
persistent maps, so each sync makes a new immutable table sharing everything
it did not change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import immutables

from netlet.cluster.config import ClusterConfig
from netlet.cluster.state import ClusterState, Event
from netlet.resources.core import EndpointSlice, Node, Pod, Service
from netlet.services.changes import ServiceChange, TableDiff, diff_tables, service_change
from netlet.services.endpointslices import SliceSource, service_name
from netlet.services.entries import NodeContext, service_entries
from netlet.services.table import (
    IPAddress,
    IPNetwork,
    NodePortKey,
    ServiceIPKey,
    ServiceName,
    ServicePortEntry,
    ServicePortName,
    ServiceTable,
)

PRIMARY = "primary"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The kube-proxy options that change the table.

    nodeport_addresses: "primary" (the nftables-mode default: the node's primary
    IPv4/IPv6 address) or CIDRs selecting node addresses. Loopback addresses
    never serve NodePorts in nftables mode, whatever the option says.
    masquerade_all: --masquerade-all (SNAT every ClusterIP connection).
    """

    nodeport_addresses: tuple[str, ...] = (PRIMARY,)
    masquerade_all: bool = False


class UnknownNodeError(KeyError):
    def __str__(self) -> str:
        return f"no node named {self.args[0]!r}"


def node_context(node: Node) -> NodeContext:
    ips: list[IPAddress] = []
    primary: dict[int, IPAddress] = {}
    for address in node.status.addresses:
        if address.type not in ("InternalIP", "ExternalIP"):
            continue
        try:
            ip = ipaddress.ip_address(address.address)
        except ValueError:
            continue
        ips.append(ip)
        if address.type == "InternalIP":
            primary.setdefault(ip.version, ip)
    for ip in ips:
        primary.setdefault(ip.version, ip)
    return NodeContext(
        node=node.name,
        zone=node.zone or None,
        node_ips=tuple(dict.fromkeys(ips)),
        primary_ips=tuple(primary[f] for f in sorted(primary)),
    )


def nodeport_addresses(ctx: NodeContext, config: ProxyConfig) -> tuple[IPAddress, ...]:
    out: list[IPAddress] = []
    for item in config.nodeport_addresses:
        if item == PRIMARY:
            out.extend(ctx.primary_ips)
            continue
        net = ipaddress.ip_network(item, strict=False)
        out.extend(ip for ip in ctx.node_ips if ip.version == net.version and ip in net)
    return tuple(
        ip
        for ip in dict.fromkeys(out)
        if not any(ip in lo for lo in LOOPBACK if lo.version == ip.version)
    )


def _cidrs(cidrs: Iterable[IPNetwork], families: set[int]) -> tuple[IPNetwork, ...]:
    return tuple(c for c in cidrs if c.version in families)


def _frontend_keys(
    entry: ServicePortEntry,
) -> tuple[list[ServiceIPKey], list[NodePortKey]]:
    ips: list[ServiceIPKey] = []
    ports: list[NodePortKey] = []
    for fe in entry.frontends:
        if fe.address is None:
            ports.append((entry.name.family, fe.protocol, fe.port))
        else:
            ips.append((fe.address, fe.protocol, fe.port))
    return ips, ports


class ServiceTableBuilder:
    """One node's service table, kept current from ClusterState events."""

    def __init__(
        self,
        state: ClusterState,
        node: str,
        config: ProxyConfig | None = None,
        *,
        follow: bool = False,
    ) -> None:
        if state.node(node) is None:
            raise UnknownNodeError(node)
        self.node = node
        self.config = config or ProxyConfig()
        self._state = state
        self._cluster: ClusterConfig = state.config
        self._dirty: set[ServiceName] = set()
        self._full = False
        self._rebuild()
        self._unsubscribe = state.subscribe(self.observe) if follow else None

    # Public ------------------------------------------------------------------------

    @property
    def table(self) -> ServiceTable:
        """The table as of the last sync."""
        return self._table

    @property
    def pending(self) -> bool:
        return self._full or bool(self._dirty)

    def observe(self, event: Event) -> None:
        """Record one ClusterState change (cheap); `sync()` applies it."""
        old, new = event.old, event.new
        if isinstance(old, Service) or isinstance(new, Service):
            if isinstance(old, Service):
                self._source.remove_service(old)
                self._services.pop(service_name(old), None)
                self._dirty.add(service_name(old))
            if isinstance(new, Service):
                self._source.add_service(new)
                self._services[service_name(new)] = new
                self._dirty.add(service_name(new))
        elif isinstance(old, EndpointSlice) or isinstance(new, EndpointSlice):
            for es in (old, new):
                if isinstance(es, EndpointSlice) and es.service_name:
                    self._dirty.add(ServiceName(es.namespace, es.service_name))
            if isinstance(old, EndpointSlice):
                self._source.remove_slice(old)
            if isinstance(new, EndpointSlice):
                self._source.add_slice(new)
        elif isinstance(old, Pod) or isinstance(new, Pod):
            if isinstance(old, Pod):
                self._dirty |= self._source.services_selecting(old)
                self._source.remove_pod(old)
            if isinstance(new, Pod):
                self._source.add_pod(new)
                self._dirty |= self._source.services_selecting(new)
        elif isinstance(old, Node) or isinstance(new, Node):
            self._full = True

    def observe_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.observe(event)

    def sync(self) -> TableDiff:
        """Apply recorded changes; return what changed since the previous sync."""
        if self._full:
            old = self._table
            self._rebuild()
            return diff_tables(old, self._table)
        dirty, self._dirty = self._dirty, set()
        changes = [c for name in sorted(dirty) if (c := self._update(name)) is not None]
        return TableDiff(self.node, False, tuple(changes), self._table)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # Building ----------------------------------------------------------------------

    def _rebuild(self) -> None:
        state = self._state
        node = state.node(self.node)
        if node is None:
            raise UnknownNodeError(self.node)
        self._full = False
        self._dirty = set()
        self._ctx = node_context(node)
        self._source = SliceSource(state)
        self._services = {service_name(s): s for s in state.list(Service)}
        families: set[int] = {ip.version for ip in self._ctx.node_ips} or {4}
        entries: dict[ServicePortName, ServicePortEntry] = {}
        services: dict[ServiceName, tuple[ServicePortName, ...]] = {}
        self._ip_claims: dict[ServiceIPKey, set[ServicePortName]] = {}
        self._port_claims: dict[NodePortKey, set[ServicePortName]] = {}
        self._cluster_claims: dict[IPAddress, set[ServiceName]] = {}
        for name, svc in self._services.items():
            made = self._compute(svc)
            if not made:
                continue
            services[name] = tuple(e.name for e in made)
            for entry in made:
                entries[entry.name] = entry
                self._claim(entry)
        self._table = ServiceTable(
            node=self.node,
            zone=self._ctx.zone,
            node_ips=self._ctx.node_ips,
            nodeport_addresses=nodeport_addresses(self._ctx, self.config),
            pod_cidrs=_cidrs(self._cluster.pod_cidrs, families),
            service_cidrs=_cidrs(self._cluster.service_cidrs, families),
            masquerade_all=self.config.masquerade_all,
            entries=immutables.Map(entries),
            services=immutables.Map(services),
            service_ips=immutables.Map({k: min(v) for k, v in self._ip_claims.items()}),
            node_ports=immutables.Map({k: min(v) for k, v in self._port_claims.items()}),
            cluster_ips=immutables.Map({k: min(v) for k, v in self._cluster_claims.items()}),
        )

    def _compute(self, svc: Service) -> tuple[ServicePortEntry, ...]:
        slices = self._source.slices_for(svc).slices
        return service_entries(svc, slices, self._ctx)

    def _claim(self, entry: ServicePortEntry) -> None:
        ips, ports = _frontend_keys(entry)
        for key in ips:
            self._ip_claims.setdefault(key, set()).add(entry.name)
        for port_key in ports:
            self._port_claims.setdefault(port_key, set()).add(entry.name)
        self._cluster_claims.setdefault(entry.cluster_ip, set()).add(entry.service)

    def _unclaim(self, entry: ServicePortEntry) -> None:
        ips, ports = _frontend_keys(entry)
        for key in ips:
            _discard(self._ip_claims, key, entry.name)
        for port_key in ports:
            _discard(self._port_claims, port_key, entry.name)
        _discard(self._cluster_claims, entry.cluster_ip, entry.service)

    def _update(self, name: ServiceName) -> ServiceChange | None:
        table = self._table
        old = table.entries_of(name)
        svc = self._services.get(name)
        new = self._compute(svc) if svc is not None else ()
        change = service_change(name, old, new)
        if change is None:
            return None
        for entry in old:
            self._unclaim(entry)
        for entry in new:
            self._claim(entry)
        touched_ips: set[ServiceIPKey] = set()
        touched_ports: set[NodePortKey] = set()
        for entry in old + new:
            ips, ports = _frontend_keys(entry)
            touched_ips.update(ips)
            touched_ports.update(ports)
        touched_cluster = {e.cluster_ip for e in old + new}
        with table.entries.mutate() as entries:
            for entry in old:
                del entries[entry.name]
            for entry in new:
                entries[entry.name] = entry
            new_entries = entries.finish()
        services = (
            table.services.set(name, tuple(e.name for e in new))
            if new
            else table.services.delete(name)
        )
        self._table = ServiceTable(
            node=table.node,
            zone=table.zone,
            node_ips=table.node_ips,
            nodeport_addresses=table.nodeport_addresses,
            pod_cidrs=table.pod_cidrs,
            service_cidrs=table.service_cidrs,
            masquerade_all=table.masquerade_all,
            entries=new_entries,
            services=services,
            service_ips=_refresh(table.service_ips, self._ip_claims, touched_ips),
            node_ports=_refresh(table.node_ports, self._port_claims, touched_ports),
            cluster_ips=_refresh(table.cluster_ips, self._cluster_claims, touched_cluster),
        )
        return change


def _discard(claims: dict[Any, set[Any]], key: Any, value: Any) -> None:
    bucket = claims.get(key)
    if bucket is not None:
        bucket.discard(value)
        if not bucket:
            del claims[key]


def _refresh(
    current: immutables.Map[Any, Any], claims: dict[Any, set[Any]], keys: Iterable[Any]
) -> immutables.Map[Any, Any]:
    """Point each touched key at its winning claim (the smallest name: deterministic
    whatever the order of events), or drop it when nobody claims it any more."""
    m = current.mutate()
    for key in keys:
        bucket = claims.get(key)
        if bucket:
            m[key] = min(bucket)
        elif key in m:
            del m[key]
    return m.finish()


def build_table(state: ClusterState, node: str, config: ProxyConfig | None = None) -> ServiceTable:
    """The service table of `node` (a pure function of the state)."""
    return ServiceTableBuilder(state, node, config).table


def diff_states(
    old: ClusterState, new: ClusterState, node: str, config: ProxyConfig | None = None
) -> TableDiff:
    """What changed for `node` between two cluster states, per Service."""
    return diff_tables(build_table(old, node, config), build_table(new, node, config))


__all__ = [
    "ProxyConfig",
    "ServiceTableBuilder",
    "UnknownNodeError",
    "build_table",
    "diff_states",
    "node_context",
    "nodeport_addresses",
]
