"""What the API server and controllers fill in that manifests usually leave out.

- Namespaces referenced but not declared are created; every namespace carries
  the `kubernetes.io/metadata.name` label (set by the API server since 1.21).
- Nodes referenced by pods are created; with no node at all, one default node.
- Node addresses (InternalIP) and pod CIDRs, in node-name order, from the
  configured ranges (the node IPAM range allocator hands out CIDRs in order).
- Pods without nodeName are scheduled: replicas of one workload spread over the
  eligible nodes starting at a hash of the owner, bare pods by a hash of their
  name; nodeSelector and `unschedulable` respected, taints not modelled.
- Pod IPs from the node's pod CIDR(s); host-network pods get the node's IPs.
  Manifest-given IPs are kept and reserved first.
- Services: clusterIP(s) from the service CIDR(s) by ipFamilyPolicy, nodePorts
  and healthCheckNodePort from the node-port range; given values are kept and
  checked for collisions, as the API server's allocators do.

Every choice is a deterministic function of the input, and hashes rather than
positions are used where that keeps an object's address stable when unrelated
objects are added or removed.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from netlet.cluster.config import ClusterConfig
from netlet.cluster.expand import matches_node_selector
from netlet.resources.base import Condition, ObjectMeta, Resource
from netlet.resources.core import (
    NAMESPACE_NAME_LABEL,
    Namespace,
    Node,
    NodeAddress,
    NodeSpec,
    NodeStatus,
    Pod,
    PodIP,
    Service,
    ServicePort,
)
from netlet.resources.diagnostics import Diagnostic, ObjectRef, Origin, error, warning
from netlet.resources.net import Allocator, nth_subnet, stable_hash


@dataclass
class Placed:
    """An object and where it came from, while the pipeline completes it."""

    obj: Resource
    origin: Origin | None


@dataclass
class Completion:
    objects: list[Placed]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    dual_stack: bool = False


def _ref(obj: Resource) -> ObjectRef:
    return ObjectRef(obj.KIND, obj.namespace, obj.name)


def is_dual_stack(objects: Sequence[Placed], config: ClusterConfig) -> bool:
    """Dual stack when configured, or when any manifest carries an IPv6 address or asks
    for the IPv6 family."""
    if config.dual_stack:
        return True
    for placed in objects:
        obj = placed.obj
        if isinstance(obj, Node):
            cidrs = list(obj.spec.pod_cidrs) + ([obj.spec.pod_cidr] if obj.spec.pod_cidr else [])
            if any(":" in c for c in cidrs) or any(":" in ip for ip in obj.internal_ips):
                return True
        elif isinstance(obj, Pod):
            if any(":" in ip for ip in obj.ips):
                return True
        elif isinstance(obj, Service) and (
            "IPv6" in obj.spec.ip_families or any(":" in ip for ip in obj.spec.cluster_ips)
        ):
            return True
    return False


def complete(objects: list[Placed], config: ClusterConfig) -> Completion:
    out = Completion(objects=list(objects))
    out.dual_stack = is_dual_stack(objects, config)
    families = (4, 6) if out.dual_stack else (4,)
    _add_namespaces(out)
    _complete_nodes(out, config, families)
    _schedule_pods(out)
    _assign_pod_ips(out, config, families)
    _assign_service_addresses(out, config, families)
    return out


def _add_namespaces(out: Completion) -> None:
    declared: dict[str, int] = {}
    for i, placed in enumerate(out.objects):
        if isinstance(placed.obj, Namespace):
            declared[placed.obj.name] = i
    referenced = sorted({p.obj.namespace for p in out.objects if p.obj.namespace} - set(declared))
    for name, i in declared.items():
        ns = out.objects[i].obj
        if ns.labels.get(NAMESPACE_NAME_LABEL) != name:
            labels = {**ns.labels, NAMESPACE_NAME_LABEL: name}
            out.objects[i].obj = ns.model_copy(
                update={"metadata": ns.metadata.model_copy(update={"labels": labels})}
            )
    for name in referenced:
        meta = ObjectMeta(name=name, labels={NAMESPACE_NAME_LABEL: name})
        out.objects.append(
            Placed(Namespace(api_version="v1", kind="Namespace", metadata=meta), None)
        )


def _complete_nodes(out: Completion, config: ClusterConfig, families: tuple[int, ...]) -> None:
    nodes = {p.obj.name: p for p in out.objects if isinstance(p.obj, Node)}
    wanted = {
        p.obj.spec.node_name for p in out.objects if isinstance(p.obj, Pod) and p.obj.spec.node_name
    }
    for name in sorted(wanted - set(nodes)):
        node = Node(api_version="v1", kind="Node", metadata=ObjectMeta(name=name))
        placed = Placed(node, None)
        out.objects.append(placed)
        nodes[name] = placed
    if not nodes:
        node = Node(api_version="v1", kind="Node", metadata=ObjectMeta(name=config.default_node))
        placed = Placed(node, None)
        out.objects.append(placed)
        nodes[node.name] = placed

    node_ips = {fam: Allocator(config.node_cidr(fam)) for fam in families}
    used_cidrs: dict[int, set[ipaddress.IPv4Network | ipaddress.IPv6Network]] = defaultdict(set)
    for placed in nodes.values():
        declared = placed.obj
        assert isinstance(declared, Node)
        for ip in declared.internal_ips:
            addr = ipaddress.ip_address(ip)
            if addr.version in node_ips:
                node_ips[addr.version].reserve(addr)
        for cidr in _node_cidrs(declared):
            used_cidrs[cidr.version].add(cidr)
    single = len(nodes) == 1
    next_index: dict[int, int] = defaultdict(int)
    for name in sorted(nodes):
        placed = nodes[name]
        current = placed.obj
        assert isinstance(current, Node)
        node = current
        have_ips = {ipaddress.ip_address(ip).version for ip in node.internal_ips}
        addresses = list(node.status.addresses)
        for fam in families:
            if fam not in have_ips:
                address = _sequential(node_ips[fam])
                addresses.append(NodeAddress(type="InternalIP", address=str(address)))
        if not any(a.type == "Hostname" for a in addresses):
            addresses.append(NodeAddress(type="Hostname", address=name))
        cidrs = list(_node_cidrs(node))
        have_cidr = {c.version for c in cidrs}
        for fam in families:
            if fam in have_cidr:
                continue
            if single and not used_cidrs[fam]:
                # A lone node gets the whole cluster range, so big single-node inputs fit.
                cidrs.append(config.pod_cidr(fam))
                continue
            while True:
                try:
                    cidr = nth_subnet(config.pod_cidr(fam), config.node_mask(fam), next_index[fam])
                except ValueError:
                    out.diagnostics.append(
                        error(f"pod CIDR {config.pod_cidr(fam)} exhausted", obj=_ref(node))
                    )
                    break
                next_index[fam] += 1
                if not any(cidr.overlaps(u) for u in used_cidrs[fam]):
                    used_cidrs[fam].add(cidr)
                    cidrs.append(cidr)
                    break
        cidrs.sort(key=lambda c: c.version)
        spec = NodeSpec(
            pod_cidr=str(cidrs[0]) if cidrs else None,
            pod_cidrs=tuple(str(c) for c in cidrs),
            taints=node.spec.taints,
            unschedulable=node.spec.unschedulable,
        )
        placed.obj = node.model_copy(
            update={"spec": spec, "status": NodeStatus(addresses=tuple(addresses))}
        )


def _sequential(allocator: Allocator) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Next free address in order (.2, .3, ...): node addresses read like kind's."""
    network = allocator.network
    for offset in range(2, network.num_addresses - 1):
        addr = network.network_address + offset
        if allocator.reserve(addr):
            return addr
    raise ValueError(f"no free address left in {network}")


def _node_cidrs(node: Node) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    texts = list(node.spec.pod_cidrs) or ([node.spec.pod_cidr] if node.spec.pod_cidr else [])
    return [ipaddress.ip_network(t) for t in texts]


def _owner_key(pod: Pod) -> tuple[str, int]:
    """(group key, ordinal) so replicas of one workload spread across nodes."""
    if pod.metadata.owner_references:
        owner = pod.metadata.owner_references[0]
        return f"{pod.namespace}/{owner.kind}/{owner.name}", stable_hash(pod.name)
    return f"{pod.namespace}/{pod.name}", 0


def _schedule_pods(out: Completion) -> None:
    nodes = sorted((p.obj for p in out.objects if isinstance(p.obj, Node)), key=lambda n: n.name)
    groups: dict[str, list[Placed]] = defaultdict(list)
    for placed in out.objects:
        pod = placed.obj
        if isinstance(pod, Pod) and not pod.spec.node_name:
            groups[_owner_key(pod)[0]].append(placed)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda p: p.obj.name)
        start = stable_hash(key)
        for i, placed in enumerate(members):
            pod = placed.obj
            assert isinstance(pod, Pod)
            eligible = [
                n for n in nodes if not n.spec.unschedulable and matches_node_selector(pod.spec, n)
            ]
            if not eligible:
                out.diagnostics.append(
                    warning(
                        "no node matches the pod's nodeSelector; the pod stays Pending",
                        origin=placed.origin,
                        obj=_ref(pod),
                        path="spec.nodeSelector",
                        code="unschedulable",
                    )
                )
                placed.obj = pod.model_copy(
                    update={"status": pod.status.model_copy(update={"phase": "Pending"})}
                )
                continue
            node = eligible[(start + i) % len(eligible)]
            placed.obj = pod.model_copy(
                update={"spec": pod.spec.model_copy(update={"node_name": node.name})}
            )


def _assign_pod_ips(out: Completion, config: ClusterConfig, families: tuple[int, ...]) -> None:
    nodes = {p.obj.name: p.obj for p in out.objects if isinstance(p.obj, Node)}
    allocators: dict[tuple[str, int], Allocator] = {}
    for name, node in nodes.items():
        assert isinstance(node, Node)
        for cidr in _node_cidrs(node):
            allocators[(name, cidr.version)] = Allocator(cidr)
    owners: dict[str, ObjectRef] = {}
    pods = sorted(
        (p for p in out.objects if isinstance(p.obj, Pod)),
        key=lambda p: (p.obj.namespace, p.obj.name),
    )
    for placed in pods:
        pod = placed.obj
        assert isinstance(pod, Pod)
        if pod.spec.host_network:
            continue
        for ip in pod.ips:
            addr = ipaddress.ip_address(ip)
            if str(addr) in owners:
                out.diagnostics.append(
                    error(
                        f"pod IP {ip} is already used by {owners[str(addr)]}",
                        origin=placed.origin,
                        obj=_ref(pod),
                        path="status.podIPs",
                    )
                )
            owners[str(addr)] = _ref(pod)
            alloc = allocators.get((pod.spec.node_name or "", addr.version))
            if alloc is not None and addr in alloc.network:
                alloc.reserve(addr)
    for placed in pods:
        pod = placed.obj
        assert isinstance(pod, Pod)
        host = nodes.get(pod.spec.node_name or "")
        status = pod.status
        updates: dict[str, object] = {}
        if pod.spec.node_name and isinstance(host, Node):
            if not status.host_ip and host.internal_ips:
                updates["host_ip"] = host.internal_ips[0]
            if pod.spec.host_network:
                if not pod.ips:
                    node_ips = host.internal_ips
                    updates["pod_ip"] = node_ips[0] if node_ips else None
                    updates["pod_ips"] = tuple(PodIP(ip=ip) for ip in node_ips)
            elif not pod.ips:
                ips: list[str] = []
                for fam in families:
                    alloc = allocators.get((host.name, fam))
                    if alloc is None:
                        continue
                    try:
                        ips.append(str(alloc.allocate(f"{pod.namespace}/{pod.name}")))
                    except ValueError as exc:
                        out.diagnostics.append(error(str(exc), origin=placed.origin, obj=_ref(pod)))
                if ips:
                    updates["pod_ip"] = ips[0]
                    updates["pod_ips"] = tuple(PodIP(ip=ip) for ip in ips)
            elif len(pod.ips) == 1 and not status.pod_ips:
                updates["pod_ips"] = (PodIP(ip=pod.ips[0]),)
        if status.phase is None:
            updates["phase"] = "Running"
            if not status.conditions:
                updates["conditions"] = (Condition(type="Ready", status="True"),)
        if updates:
            placed.obj = pod.model_copy(update={"status": status.model_copy(update=updates)})


def _service_families(svc: Service, families: tuple[int, ...]) -> tuple[int, ...]:
    spec = svc.spec
    if spec.cluster_ips and spec.cluster_ips[0] != "None":
        return tuple(ipaddress.ip_address(ip).version for ip in spec.cluster_ips)
    asked = tuple(4 if f == "IPv4" else 6 for f in spec.ip_families)
    policy = spec.ip_family_policy or "SingleStack"
    if policy == "SingleStack":
        return asked[:1] or families[:1]
    order = asked + tuple(f for f in families if f not in asked)
    return tuple(f for f in order if f in families)


def _assign_service_addresses(
    out: Completion, config: ClusterConfig, families: tuple[int, ...]
) -> None:
    allocators = {fam: Allocator(config.service_cidr(fam)) for fam in families}
    services = sorted(
        (p for p in out.objects if isinstance(p.obj, Service)),
        key=lambda p: (p.obj.namespace, p.obj.name),
    )
    owners: dict[str, ObjectRef] = {}
    low, high = config.node_port_range
    port_owner: dict[int, ObjectRef] = {}  # node ports are allocated by number
    for placed in services:
        svc = placed.obj
        assert isinstance(svc, Service)
        for i, ip in enumerate(svc.spec.cluster_ips):
            if ip == "None":
                continue
            addr = ipaddress.ip_address(ip)
            path = f"spec.clusterIPs[{i}]"
            if ip in owners:
                message = f"provided IP {ip} is already allocated to {owners[ip]}"
                out.diagnostics.append(
                    error(message, origin=placed.origin, obj=_ref(svc), path=path)
                )
                continue
            owners[ip] = _ref(svc)
            cidr = config.service_cidr(addr.version) if addr.version in families else None
            if cidr is None or addr not in cidr:
                ranges = ", ".join(str(c) for c in config.service_cidrs if c.version in families)
                message = (
                    f"{ip} is outside the service CIDR {ranges} (the API server would refuse "
                    "it; set --service-cidr if yours differs)"
                )
                out.diagnostics.append(
                    warning(
                        message, origin=placed.origin, obj=_ref(svc), path=path, code="service-cidr"
                    )
                )
            else:
                allocators[addr.version].reserve(addr)
        for i, port in enumerate(svc.spec.ports):
            value = port.node_port
            if value is None:
                continue
            problem = None
            if not low <= value <= high:
                problem = (
                    f"Invalid value: {value}: provided port is not in the valid range. "
                    f"The range of valid ports is {low}-{high}"
                )
            elif value in port_owner and port_owner[value] != _ref(svc):
                problem = (
                    f"Invalid value: {value}: provided port is already allocated "
                    f"(to {port_owner[value]})"
                )
            if problem:
                path = f"spec.ports[{i}].nodePort"
                out.diagnostics.append(
                    error(problem, origin=placed.origin, obj=_ref(svc), path=path)
                )
            else:
                port_owner[value] = _ref(svc)
        hc = svc.spec.health_check_node_port
        if hc is not None:
            hc_problem = None
            if not low <= hc <= high:
                hc_problem = f"Invalid value: {hc}: provided port is not in the valid range"
            elif hc in port_owner and port_owner[hc] != _ref(svc):
                hc_problem = (
                    f"Invalid value: {hc}: provided port is already allocated (to {port_owner[hc]})"
                )
            if hc_problem:
                out.diagnostics.append(
                    error(
                        hc_problem,
                        origin=placed.origin,
                        obj=_ref(svc),
                        path="spec.healthCheckNodePort",
                    )
                )
            else:
                port_owner[hc] = _ref(svc)

    for placed in services:
        svc = placed.obj
        assert isinstance(svc, Service)
        spec = svc.spec
        updates: dict[str, object] = {}
        if spec.type != "ExternalName":
            fams = _service_families(svc, families)
            if spec.ip_family_policy is None:
                updates["ip_family_policy"] = "SingleStack"
            if not spec.ip_families:
                updates["ip_families"] = tuple("IPv4" if f == 4 else "IPv6" for f in fams)
            if not spec.cluster_ips:
                ips = []
                for fam in fams:
                    try:
                        ips.append(str(allocators[fam].allocate(f"{svc.namespace}/{svc.name}")))
                    except ValueError as exc:
                        out.diagnostics.append(error(str(exc), origin=placed.origin, obj=_ref(svc)))
                if ips:
                    updates["cluster_ip"] = ips[0]
                    updates["cluster_ips"] = tuple(ips)
        if spec.type in ("NodePort", "LoadBalancer"):
            allocate_ports = spec.type == "NodePort" or spec.allocate_load_balancer_node_ports
            ports = []
            changed = False
            by_number: dict[int, int] = {}  # TCP and UDP on one port number share a nodePort
            for port in spec.ports:
                if port.node_port is None and allocate_ports:
                    value = by_number.get(port.port) or _free_port(
                        port_owner, low, high, f"{svc.namespace}/{svc.name}/{port.name}/{port.port}"
                    )
                    by_number[port.port] = value
                    port_owner[value] = _ref(svc)
                    ports.append(port.model_copy(update={"node_port": value}))
                    changed = True
                else:
                    ports.append(port)
            if changed:
                updates["ports"] = tuple(ports)
            if (
                spec.type == "LoadBalancer"
                and spec.external_traffic_policy == "Local"
                and spec.health_check_node_port is None
            ):
                value = _free_port(port_owner, low, high, f"{svc.namespace}/{svc.name}/hc")
                port_owner[value] = _ref(svc)
                updates["health_check_node_port"] = value
        if updates:
            placed.obj = svc.model_copy(update={"spec": spec.model_copy(update=updates)})


def _free_port(used: dict[int, ObjectRef], low: int, high: int, seed: str) -> int:
    size = high - low + 1
    start = stable_hash(seed) % size
    for step in range(size):
        value = low + (start + step) % size
        if value not in used:
            return value
    raise ValueError(f"node port range {low}-{high} exhausted")


__all__ = ["Completion", "Placed", "ServicePort", "complete"]
