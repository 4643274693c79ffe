"""What a lab should look like for a cluster state: the plan, as plain data.

`make_plan(state, lab)` decides every name, address and route of the lab from
the ClusterState (nodes with their InternalIPs and podCIDRs, pods with their
IPs and container ports, Services with their virtual addresses) and checks what
would fail later (a port declared twice in one namespace, a pod IP outside its
node's podCIDR). The plan round-trips through JSON (`to_json`/`plan_from_json`)
so `status`, `exec` and `probe` work from the state a previous `up` left.

Topology (see docs/architecture.md, "Node lab"):

    pod netns --ptp veth-- node netns --eth0-- [fabric netns: bridge] --eth0-- external netns

- node addresses are the Nodes' InternalIPs with the prefix of the configured
  node range that holds them (172.18.0.0/16 by default), else /32 (/128) with
  host routes to every peer on the fabric;
- each node routes the other nodes' podCIDRs via their node IP, and the service
  CIDRs onto the fabric link, so locally generated traffic to a ClusterIP has a
  route for nftables' output hook to rewrite (as a real node's default route gives);
- the external client sits on the fabric at the highest free address of the node
  range; it routes LoadBalancer ingress IPs and externalIPs to one node (the
  first node with a local endpoint when externalTrafficPolicy is Local, else the
  first node), as an L2 load balancer announcing from that node would;
- no namespace gets a default route: nothing leaves the lab.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab import names
from netlet.dataplane.lab.errors import LabError
from netlet.resources.core import Node, Pod, Service
from netlet.resources.net import IPNetwork
from netlet.resources.selectors import selector_from_labels

PLAN_VERSION = 1
HTTP_APP_PROTOCOLS = frozenset({"http"})


def is_http_port_name(name: str | None) -> bool:
    """Ports named http* serve HTTP (the issue's rule). https* is TLS, which the
    workload does not terminate, so those answer like plain TCP ports."""
    return bool(name) and name.startswith("http") and not name.startswith("https")  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class PortSpec:
    port: int
    protocol: str  # TCP, UDP or SCTP
    name: str | None = None
    http: bool = False

    @property
    def label(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class Route:
    dst: str  # CIDR
    via: str | None = None  # None: on-link (scope link) through the uplink


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    netns: str
    fabric_port: str  # the node's veth end in the fabric namespace
    addresses: tuple[str, ...]  # "ip/prefix" on the node's uplink
    pod_cidrs: tuple[str, ...]
    routes: tuple[Route, ...]

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.split("/")[0] for a in self.addresses)

    def gateways(self) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(c).network_address + 1) for c in self.pod_cidrs)


@dataclass(frozen=True, slots=True)
class ExternalPlan:
    netns: str
    fabric_port: str
    addresses: tuple[str, ...]
    routes: tuple[Route, ...]

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.split("/")[0] for a in self.addresses)


@dataclass(frozen=True, slots=True)
class PodPlan:
    namespace: str
    name: str
    node: str
    netns: str  # the pod's own namespace, or its node's for host-network pods
    host_network: bool
    ips: tuple[str, ...]  # wanted IPs (from the manifests / allocation); may be empty
    ports: tuple[PortSpec, ...]
    container_id: str

    @property
    def key(self) -> str:
        return names.pod_key(self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class ServicePortView:
    name: str | None
    port: int
    protocol: str
    node_port: int | None
    http: bool


@dataclass(frozen=True, slots=True)
class ServiceView:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePortView, ...]
    load_balancer_ips: tuple[str, ...]
    external_ips: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class LabPlan:
    lab: str
    fabric_netns: str
    bridge: str
    nodes: tuple[NodePlan, ...]
    external: ExternalPlan
    pods: tuple[PodPlan, ...]
    services: tuple[ServiceView, ...]
    service_cidrs: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pod(self, key: str) -> PodPlan:
        for pod in self.pods:
            if pod.key == key:
                return pod
        raise KeyError(key)

    def to_json(self) -> str:
        return json.dumps({"version": PLAN_VERSION, **asdict(self)}, indent=1)


# Building ------------------------------------------------------------------------------


def _prefix_for(ip: str, node_cidrs: tuple[IPNetwork, ...]) -> int:
    addr = ipaddress.ip_address(ip)
    for cidr in node_cidrs:
        if addr.version == cidr.version and addr in cidr:
            return cidr.prefixlen
    return 32 if addr.version == 4 else 128


def _covered(ip: str, addresses: tuple[str, ...]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(
        addr in ipaddress.ip_interface(a).network
        for a in addresses
        if ipaddress.ip_interface(a).version == addr.version
    )


def _host_routes(own: tuple[str, ...], peers: list[str]) -> list[Route]:
    """On-link host routes to fabric peers that no connected prefix covers."""
    out = []
    for ip in peers:
        if not _covered(ip, own):
            bits = 32 if ipaddress.ip_address(ip).version == 4 else 128
            out.append(Route(f"{ip}/{bits}"))
    return out


def _external_addresses(node_ips: list[str], node_cidrs: tuple[IPNetwork, ...]) -> tuple[str, ...]:
    """The highest free address of each node range in use (172.18.255.254/16 by default)."""
    used = {ipaddress.ip_address(ip) for ip in node_ips}
    families = sorted({a.version for a in used}) or [4]
    out = []
    for fam in families:
        cidr = next((c for c in node_cidrs if c.version == fam), None)
        if cidr is None:
            continue
        top = int(cidr.broadcast_address) - (1 if fam == 4 else 0)
        for value in range(top, top - 1024, -1):
            addr = ipaddress.ip_address(value) if fam == 6 else ipaddress.IPv4Address(value)
            if addr not in used:
                out.append(f"{addr}/{cidr.prefixlen}")
                break
    return tuple(out)


TargetKey = tuple[int | str, str]  # (container port number or name, protocol)


def _container_ports(pod: Pod, http_targets: set[TargetKey]) -> tuple[PortSpec, ...]:
    ports = []
    for container in pod.spec.serving_containers:
        for p in container.ports:
            proto = p.protocol.value
            http = proto == "TCP" and (
                is_http_port_name(p.name)
                or (p.container_port, proto) in http_targets
                or (p.name is not None and (p.name, proto) in http_targets)
            )
            ports.append(PortSpec(p.container_port, proto, p.name, http))
    return tuple(ports)


def _http_targets(pod: Pod, services: list[Service]) -> set[TargetKey]:
    """Container ports that a Service selecting this pod marks with appProtocol http."""
    out: set[TargetKey] = set()
    for svc in services:
        if svc.namespace != pod.namespace or not svc.spec.selector:
            continue
        if not selector_from_labels(svc.spec.selector).matches(pod.labels):
            continue
        for port in svc.spec.ports:
            if (port.app_protocol or "").lower() not in HTTP_APP_PROTOCOLS:
                continue
            target = port.target_port if port.target_port is not None else port.port
            out.add((target, port.protocol.value))
    return out


def _service_view(svc: Service) -> ServiceView | None:
    spec = svc.spec
    if spec.type == "ExternalName":
        return None
    cluster_ips = tuple(ip for ip in spec.cluster_ips if ip != "None")
    ports = tuple(
        ServicePortView(
            p.name,
            p.port,
            p.protocol.value,
            p.node_port,
            p.protocol.value == "TCP"
            and (is_http_port_name(p.name) or (p.app_protocol or "").lower() in HTTP_APP_PROTOCOLS),
        )
        for p in spec.ports
    )
    lb_ips = tuple(i.ip for i in svc.status.load_balancer.ingress if i.ip)
    if spec.type != "LoadBalancer":
        lb_ips = ()
    return ServiceView(
        svc.namespace, svc.name, spec.type, cluster_ips, ports, lb_ips, tuple(spec.external_ips)
    )


def _announcing_node(svc: Service, pods: list[Pod], nodes: list[str]) -> str | None:
    if not nodes:
        return None
    if svc.spec.external_traffic_policy == "Local" and svc.spec.selector:
        selector = selector_from_labels(svc.spec.selector)
        hosting = sorted(
            p.spec.node_name
            for p in pods
            if p.namespace == svc.namespace
            and p.spec.node_name
            and p.ready
            and selector.matches(p.labels)
        )
        if hosting:
            return hosting[0]
    return nodes[0]


def _ip(address: str) -> str:
    return address.split("/", maxsplit=1)[0]


def _same_family(addresses: tuple[str, ...], version: int) -> str | None:
    """The first address (without prefix) of this IP family."""
    return next((_ip(a) for a in addresses if ipaddress.ip_interface(a).version == version), None)


def _plan_nodes(
    lab: str,
    nodes: list[Node],
    addresses: dict[str, tuple[str, ...]],
    external_ips: list[str],
    service_cidrs: tuple[str, ...],
) -> list[NodePlan]:
    out = []
    for node in nodes:
        own = addresses[node.name]
        routes: list[Route] = []
        peer_ips = list(external_ips)
        for peer in nodes:
            if peer.name == node.name:
                continue
            peer_ips.extend(_ip(a) for a in addresses[peer.name])
            for cidr in _node_pod_cidrs(peer):
                via = _same_family(addresses[peer.name], ipaddress.ip_network(cidr).version)
                if via is not None:
                    routes.append(Route(cidr, via))
        routes.extend(_host_routes(own, peer_ips))
        routes.extend(Route(c) for c in service_cidrs)
        out.append(
            NodePlan(
                node.name,
                names.node_netns(lab, node.name),
                names.ifname(lab, "node", node.name),
                own,
                _node_pod_cidrs(node),
                tuple(routes),
            )
        )
    return out


def _pod_ip_problems(pod: Pod, key: str, node: Node) -> list[str]:
    cidrs = [ipaddress.ip_network(c) for c in _node_pod_cidrs(node)]
    problems = []
    for ip in pod.ips:
        addr = ipaddress.ip_address(ip)
        home = next((c for c in cidrs if addr.version == c.version and addr in c), None)
        if home is None:
            problems.append(
                f"Pod {key}: IP {ip} is outside node {node.name}'s podCIDRs "
                f"({', '.join(map(str, cidrs)) or 'none'}); the lab routes pods by podCIDR"
            )
        elif addr == home.network_address + 1:
            problems.append(
                f"Pod {key}: IP {ip} is the gateway address of node {node.name}'s {home}"
            )
    return problems


def _plan_pods(
    lab: str,
    state: ClusterState,
    addresses: dict[str, tuple[str, ...]],
    problems: list[str],
    warnings: list[str],
) -> list[PodPlan]:
    services = state.list(Service)
    out: list[PodPlan] = []
    bound: dict[tuple[str, int, str], str] = {}  # (netns, port, protocol) -> pod
    for pod in state.list(Pod):
        key = names.pod_key(pod.namespace, pod.name)
        node = state.node(pod.spec.node_name or "")
        if node is None or node.name not in addresses:
            warnings.append(f"Pod {key}: not scheduled to a node of the lab; skipped")
            continue
        if pod.status.phase in ("Succeeded", "Failed"):
            warnings.append(f"Pod {key}: phase {pod.status.phase}; skipped")
            continue
        host_network = pod.spec.host_network
        netns = (
            names.node_netns(lab, node.name)
            if host_network
            else names.pod_netns(lab, pod.namespace, pod.name)
        )
        ports = _container_ports(pod, _http_targets(pod, services))
        if any(p.host_port for c in pod.spec.serving_containers for p in c.ports):
            warnings.append(f"Pod {key}: hostPort is not mapped by the lab (no portmap plugin)")
        for port in ports:
            where = (netns, port.port, port.protocol)
            if where in bound:
                scope = f"node {node.name}'s network" if host_network else "the pod"
                problems.append(
                    f"port clash: Pod {key} declares {port.label}, already served in {scope} "
                    f"by Pod {bound[where]}"
                )
            else:
                bound[where] = key
        if host_network:
            ips = tuple(_ip(a) for a in addresses[node.name])
        else:
            ips = tuple(pod.ips)
            problems.extend(_pod_ip_problems(pod, key, node))
        out.append(
            PodPlan(
                pod.namespace,
                pod.name,
                node.name,
                netns,
                host_network,
                ips,
                ports,
                names.container_id(lab, pod.namespace, pod.name),
            )
        )
    return out


def _external_routes(state: ClusterState, addresses: dict[str, tuple[str, ...]]) -> list[Route]:
    """LoadBalancer ingress IPs and externalIPs, each to the node announcing it."""
    routes: dict[str, Route] = {}
    pods = state.list(Pod)
    ordered_nodes = sorted(addresses)
    for svc in state.list(Service):
        view = _service_view(svc)
        announcer = _announcing_node(svc, pods, ordered_nodes)
        if view is None or announcer is None:
            continue
        for ip in view.load_balancer_ips + view.external_ips:
            version = ipaddress.ip_address(ip).version
            via = _same_family(addresses[announcer], version)
            if via is not None:
                routes.setdefault(ip, Route(f"{ip}/{32 if version == 4 else 128}", via))
    return list(routes.values())


def make_plan(state: ClusterState, lab: str) -> LabPlan:
    """The lab for this cluster state. Raises LabError for what cannot be built."""
    names.check_lab_name(lab)
    config = state.config
    problems: list[str] = []
    warnings: list[str] = []
    nodes = state.list(Node)
    node_cidrs = tuple(config.node_cidrs)
    addresses: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        if not node.internal_ips:
            problems.append(f"Node {node.name}: status.addresses has no InternalIP")
        addresses[node.name] = tuple(
            f"{ip}/{_prefix_for(ip, node_cidrs)}" for ip in node.internal_ips
        )
    node_ips = [_ip(a) for addrs in addresses.values() for a in addrs]
    families = {ipaddress.ip_address(ip).version for ip in node_ips}
    service_cidrs = tuple(str(c) for c in config.service_cidrs if c.version in families)
    ext_addresses = _external_addresses(node_ips, node_cidrs)
    node_plans = _plan_nodes(lab, nodes, addresses, [_ip(a) for a in ext_addresses], service_cidrs)
    pods = _plan_pods(lab, state, addresses, problems, warnings)
    ext_routes = _host_routes(ext_addresses, node_ips) + _external_routes(state, addresses)
    external = ExternalPlan(
        names.external_netns(lab), names.ifname(lab, "external"), ext_addresses, tuple(ext_routes)
    )
    if problems:
        raise LabError("cannot build the lab:\n  " + "\n  ".join(problems))
    views = [v for svc in state.list(Service) if (v := _service_view(svc)) is not None]
    return LabPlan(
        lab=lab,
        fabric_netns=names.fabric_netns(lab),
        bridge=names.ifname(lab, "bridge"),
        nodes=tuple(node_plans),
        external=external,
        pods=tuple(pods),
        services=tuple(views),
        service_cidrs=service_cidrs,
        warnings=tuple(warnings),
    )


def _node_pod_cidrs(node: Node) -> tuple[str, ...]:
    if node.spec.pod_cidrs:
        return tuple(node.spec.pod_cidrs)
    return (node.spec.pod_cidr,) if node.spec.pod_cidr else ()


# JSON ------------------------------------------------------------------------------------


def _routes(items: list[dict[str, Any]]) -> tuple[Route, ...]:
    return tuple(Route(**r) for r in items)


def plan_from_dict(data: dict[str, Any]) -> LabPlan:
    if data.get("version") != PLAN_VERSION:
        raise LabError(f"lab state has version {data.get('version')}, expected {PLAN_VERSION}")
    return LabPlan(
        lab=data["lab"],
        fabric_netns=data["fabric_netns"],
        bridge=data["bridge"],
        nodes=tuple(
            NodePlan(
                n["name"],
                n["netns"],
                n["fabric_port"],
                tuple(n["addresses"]),
                tuple(n["pod_cidrs"]),
                _routes(n["routes"]),
            )
            for n in data["nodes"]
        ),
        external=ExternalPlan(
            data["external"]["netns"],
            data["external"]["fabric_port"],
            tuple(data["external"]["addresses"]),
            _routes(data["external"]["routes"]),
        ),
        pods=tuple(pod_from_dict(p) for p in data["pods"]),
        services=tuple(
            ServiceView(
                s["namespace"],
                s["name"],
                s["type"],
                tuple(s["cluster_ips"]),
                tuple(ServicePortView(**p) for p in s["ports"]),
                tuple(s["load_balancer_ips"]),
                tuple(s["external_ips"]),
            )
            for s in data["services"]
        ),
        service_cidrs=tuple(data["service_cidrs"]),
        warnings=tuple(data.get("warnings", ())),
    )


def pod_from_dict(p: dict[str, Any]) -> PodPlan:
    return PodPlan(
        p["namespace"],
        p["name"],
        p["node"],
        p["netns"],
        p["host_network"],
        tuple(p["ips"]),
        tuple(PortSpec(**x) for x in p["ports"]),
        p["container_id"],
    )


def plan_from_json(text: str) -> LabPlan:
    return plan_from_dict(json.loads(text))
