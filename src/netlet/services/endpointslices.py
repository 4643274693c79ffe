"""The EndpointSlice controller, and where each Service's slices come from.

Manifests rarely carry EndpointSlices: in a cluster the EndpointSlice
controller writes them from the pods a Service selects. `generate_slices` does
what that controller does (kubernetes/staging/src/k8s.io/endpointslice:
reconciler.go, utils.go, trafficdist/), as a pure function of the Service, the
pods and the nodes:

- only Services with a selector get slices from the controller (a Service
  without one uses slices written by someone else); ExternalName Services get
  none (nothing proxies them);
- a pod is included when it is not terminal (Succeeded/Failed) and has an IP;
  terminating pods stay, marked terminating;
- conditions: serving = the pod's Ready condition; terminating = deletionTimestamp
  set; ready = publishNotReadyAddresses or (serving and not terminating);
- one address type per entry of spec.ipFamilies; the pod IPs of that family;
- ports: each Service port whose targetPort resolves on the pod (a number, or a
  named containerPort of the same protocol in a container or a sidecar init
  container); pods with different resolved ports go to different slices; at
  most 100 endpoints per slice; a placeholder slice (no ports, no endpoints)
  when nothing is selected;
- nodeName, zone (the node's topology.kubernetes.io/zone label), hostname when
  the pod's subdomain is the Service's name, targetRef to the pod;
- hints for spec.trafficDistribution PreferClose/PreferSameZone (zone of the
  endpoint) and PreferSameNode (zone and node), ready endpoints only, unless the
  service.kubernetes.io/topology-mode annotation asks for the CPU-proportional
  heuristic (not modelled: no hints, and a finding says so);
- labels: the Service's labels, kubernetes.io/service-name,
  endpointslice.kubernetes.io/managed-by, service.kubernetes.io/headless for
  headless Services. Names are `<service>-<5 characters>` like generateName's,
  but derived from a hash so that they are stable.

A Pod whose manifest carries no status is taken as Running and Ready (as the
loading pipeline completes it); a status with a phase but no Ready condition
follows the same rule when the phase is Running.

`SliceSource` keeps the indexes (pods by label, selector Services by label,
slices by Service) that let the table builder find one Service's slices without
scanning the cluster; it is updated object by object from ClusterState events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netlet.cluster.state import ClusterState
from netlet.resources.base import ObjectMeta, OwnerReference
from netlet.resources.core import (
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    ZONE_LABEL,
    Endpoint,
    EndpointConditions,
    EndpointHints,
    EndpointPort,
    EndpointSlice,
    ForNode,
    ForZone,
    Node,
    ObjectReference,
    Pod,
    Service,
    ServicePort,
)
from netlet.resources.net import stable_hash
from netlet.services.table import ServiceName

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager --max-endpoints-per-slice default
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
DEPRECATED_TOPOLOGY_HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"
RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})
# trafficDistribution values the controller turns into hints, and whether node hints too.
HINTING_DISTRIBUTIONS = {"PreferClose": False, "PreferSameZone": False, "PreferSameNode": True}
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # generateName's alphabet (no vowels)


def service_name(obj: Service) -> ServiceName:
    return ServiceName(obj.namespace, obj.name)


def has_selector(svc: Service) -> bool:
    """True when the EndpointSlice controller manages this Service's slices. An empty
    selector map is treated as absent: the API serves `selector: {}` as no selector."""
    return bool(svc.spec.selector) and svc.spec.type != "ExternalName"


def topology_annotation(svc: Service) -> str | None:
    """The topology-mode annotation's value when it enables the Auto heuristic."""
    annotations = svc.metadata.annotations
    value = annotations.get(DEPRECATED_TOPOLOGY_HINTS_ANNOTATION)
    if value is None:
        value = annotations.get(TOPOLOGY_MODE_ANNOTATION)
    return value if value in ("Auto", "auto") else None


def pod_serving(pod: Pod) -> bool:
    """The pod's Ready condition (IsPodReady), with the loader's default for no status."""
    ready = pod.condition("Ready")
    if ready is not None:
        return ready
    return pod.status.phase in (None, "Running")


def pod_in_endpoints(pod: Pod) -> bool:
    """ShouldPodBeInEndpoints(pod, includeTerminating=true)."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    return bool(pod.ips)


def find_port(pod: Pod, port: ServicePort) -> int | None:
    """findPort: a numeric targetPort as is; a name looked up in the containers, then in
    sidecar init containers, matching the Service port's protocol."""
    target = port.target_port
    if isinstance(target, int):
        return target
    if target is None:
        return port.port
    return pod.named_port(target, port.protocol)


def _family(address: str) -> int:
    return 6 if ":" in address else 4


def _address_types(svc: Service) -> tuple[str, ...]:
    """getAddressTypesForService."""
    if svc.spec.ip_families:
        return tuple(dict.fromkeys(svc.spec.ip_families))
    ip = svc.spec.cluster_ip
    if ip and ip != "None":
        return ("IPv6",) if ":" in ip else ("IPv4",)
    return ("IPv4", "IPv6")


def _slice_name(svc: Service, seed: str) -> str:
    value = stable_hash(f"{svc.namespace}/{svc.name}/{seed}")
    suffix = ""
    for _ in range(5):
        value, digit = divmod(value, len(_NAME_ALPHABET))
        suffix += _NAME_ALPHABET[digit]
    return f"{svc.name}-{suffix}"


def _labels(svc: Service) -> dict[str, str]:
    labels = {k: v for k, v in svc.labels.items() if k not in RESERVED_LABELS}
    if svc.spec.cluster_ip == "None" or not svc.spec.cluster_ip:
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = svc.name
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def _endpoint(pod: Pod, node: Node | None, svc: Service, family: int) -> Endpoint | None:
    addresses = tuple(ip for ip in pod.ips if _family(ip) == family)
    if not addresses:
        return None
    serving = pod_serving(pod)
    terminating = pod.metadata.deletion_timestamp is not None
    ready = svc.spec.publish_not_ready_addresses or (serving and not terminating)
    zone = node.labels.get(ZONE_LABEL) if node is not None else None
    hostname = None
    if pod.spec.hostname and pod.spec.subdomain == svc.name:
        hostname = pod.spec.hostname
    return Endpoint(
        addresses=addresses,
        conditions=EndpointConditions(ready=ready, serving=serving, terminating=terminating),
        hostname=hostname,
        node_name=pod.spec.node_name,
        zone=zone or None,
        target_ref=ObjectReference(kind="Pod", namespace=pod.namespace, name=pod.name),
    )


def _with_hints(endpoint: Endpoint, node_hints: bool) -> Endpoint:
    """trafficdist's preferCloseHeuristic.update for one endpoint."""
    if not endpoint.conditions.ready:
        return endpoint
    zones = (ForZone(name=endpoint.zone),) if endpoint.zone else ()
    nodes = (ForNode(name=endpoint.node_name),) if endpoint.node_name and node_hints else ()
    if not zones and not nodes:
        return endpoint.model_copy(update={"hints": None})
    return endpoint.model_copy(update={"hints": EndpointHints(for_zones=zones, for_nodes=nodes)})


def _ports_for(svc: Service, pod: Pod) -> tuple[EndpointPort, ...]:
    """getEndpointPorts."""
    out = []
    for port in svc.spec.ports:
        number = find_port(pod, port)
        if number is None:
            continue
        out.append(
            EndpointPort(
                name=port.name or "",
                protocol=port.protocol,
                port=number,
                app_protocol=port.app_protocol,
            )
        )
    return tuple(out)


def generate_slices(
    svc: Service, pods: Iterable[Pod], nodes: Mapping[str, Node]
) -> tuple[EndpointSlice, ...]:
    """The EndpointSlices the controller keeps for `svc`, given the pods its selector
    matches (callers select them) and the nodes by name."""
    if not has_selector(svc):
        return ()
    eligible = sorted((p for p in pods if pod_in_endpoints(p)), key=lambda p: (p.namespace, p.name))
    distribution = svc.spec.traffic_distribution
    hinting = distribution in HINTING_DISTRIBUTIONS and topology_annotation(svc) is None
    node_hints = HINTING_DISTRIBUTIONS.get(distribution or "", False)
    owner = OwnerReference(
        api_version="v1", kind="Service", name=svc.name, uid=svc.metadata.uid or "", controller=True
    )
    labels = _labels(svc)
    out: list[EndpointSlice] = []
    for address_type in _address_types(svc):
        family = 6 if address_type == "IPv6" else 4
        groups: dict[tuple[EndpointPort, ...], list[Endpoint]] = {}
        for pod in eligible:
            node = nodes.get(pod.spec.node_name or "")
            if node is None and not svc.spec.publish_not_ready_addresses:
                continue  # the controller skips pods whose Node does not exist
            endpoint = _endpoint(pod, node, svc, family)
            if endpoint is None:
                continue
            if hinting:
                endpoint = _with_hints(endpoint, node_hints)
            groups.setdefault(_ports_for(svc, pod), []).append(endpoint)
        if not groups:
            groups[()] = []  # the placeholder slice
        for ports, endpoints in groups.items():
            port_key = ",".join(f"{p.name}:{p.port}/{p.protocol.value}" for p in ports)
            chunks = [
                endpoints[i : i + MAX_ENDPOINTS_PER_SLICE]
                for i in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                name = _slice_name(svc, f"{address_type}/{port_key}/{index}")
                meta = ObjectMeta(
                    name=name,
                    namespace=svc.namespace,
                    labels=labels,
                    owner_references=(owner,),
                )
                out.append(
                    EndpointSlice(
                        api_version="discovery.k8s.io/v1",
                        kind="EndpointSlice",
                        metadata=meta,
                        address_type=address_type,
                        endpoints=tuple(chunk),
                        ports=ports,
                    )
                )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ServiceSlices:
    """The slices one Service is proxied from, and whether the controller made them."""

    slices: tuple[EndpointSlice, ...]
    generated: bool


_PodKey = tuple[str, str]
_LabelKey = tuple[str, str, str]  # namespace, label key, label value


class SliceSource:
    """Indexes for finding one Service's slices quickly, kept object by object.

    Not a value: the table builder owns one and feeds it every change. Reads never
    scan the cluster: pods are found through (namespace, label, value) buckets."""

    def __init__(self, state: ClusterState | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self._pods: dict[_PodKey, Pod] = {}
        self._pods_by_label: dict[_LabelKey, set[_PodKey]] = defaultdict(set)
        self._pods_by_namespace: dict[str, set[_PodKey]] = defaultdict(set)
        self._selectors: dict[ServiceName, dict[str, str]] = {}
        self._services_by_label: dict[_LabelKey, set[ServiceName]] = defaultdict(set)
        self._slices: dict[ServiceName, dict[str, EndpointSlice]] = defaultdict(dict)
        if state is not None:
            for node in state.list(Node):
                self.nodes[node.name] = node
            for pod in state.list(Pod):
                self.add_pod(pod)
            for svc in state.list(Service):
                self.add_service(svc)
            for es in state.list(EndpointSlice):
                self.add_slice(es)

    # Updates ------------------------------------------------------------------------

    def add_pod(self, pod: Pod) -> None:
        key = (pod.namespace, pod.name)
        self._pods[key] = pod
        self._pods_by_namespace[pod.namespace].add(key)
        for label, value in pod.labels.items():
            self._pods_by_label[(pod.namespace, label, value)].add(key)

    def remove_pod(self, pod: Pod) -> None:
        key = (pod.namespace, pod.name)
        if self._pods.pop(key, None) is None:
            return
        self._pods_by_namespace[pod.namespace].discard(key)
        for label, value in pod.labels.items():
            bucket = self._pods_by_label.get((pod.namespace, label, value))
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._pods_by_label[(pod.namespace, label, value)]

    def add_service(self, svc: Service) -> None:
        if not has_selector(svc):
            return
        name = service_name(svc)
        selector = dict(svc.spec.selector or {})
        self._selectors[name] = selector
        for label, value in selector.items():
            self._services_by_label[(svc.namespace, label, value)].add(name)

    def remove_service(self, svc: Service) -> None:
        name = service_name(svc)
        selector = self._selectors.pop(name, None)
        for label, value in (selector or {}).items():
            bucket = self._services_by_label.get((svc.namespace, label, value))
            if bucket is not None:
                bucket.discard(name)

    def add_slice(self, es: EndpointSlice) -> None:
        svc = es.service_name
        if svc:
            self._slices[ServiceName(es.namespace, svc)][es.name] = es

    def remove_slice(self, es: EndpointSlice) -> None:
        svc = es.service_name
        if svc:
            bucket = self._slices.get(ServiceName(es.namespace, svc))
            if bucket is not None:
                bucket.pop(es.name, None)
                if not bucket:
                    del self._slices[ServiceName(es.namespace, svc)]

    # Reads --------------------------------------------------------------------------

    def manifest_slices(self, name: ServiceName) -> tuple[EndpointSlice, ...]:
        bucket = self._slices.get(name)
        if not bucket:
            return ()
        return tuple(bucket[k] for k in sorted(bucket))

    def selected_pods(self, svc: Service) -> list[Pod]:
        """Pods in the Service's namespace whose labels match its selector."""
        selector = svc.spec.selector or {}
        if not selector:
            return []
        buckets = []
        for label, value in selector.items():
            bucket = self._pods_by_label.get((svc.namespace, label, value))
            if not bucket:
                return []
            buckets.append(bucket)
        buckets.sort(key=len)
        keys = set(buckets[0]).intersection(*buckets[1:])
        return [self._pods[k] for k in sorted(keys)]

    def services_selecting(self, pod: Pod) -> set[ServiceName]:
        """Selector Services whose selector matches this pod's labels."""
        candidates: set[ServiceName] = set()
        for label, value in pod.labels.items():
            candidates |= self._services_by_label.get((pod.namespace, label, value), set())
        return {
            name
            for name in candidates
            if all(pod.labels.get(k) == v for k, v in self._selectors[name].items())
        }

    def slices_for(self, svc: Service) -> ServiceSlices:
        """Manifest slices when there are any for this Service, else the controller's."""
        given = self.manifest_slices(service_name(svc))
        if given or not has_selector(svc):
            return ServiceSlices(given, False)
        return ServiceSlices(generate_slices(svc, self.selected_pods(svc), self.nodes), True)


def slices_by_service(state: ClusterState) -> dict[ServiceName, ServiceSlices]:
    """Every Service's slices (manifest or generated), for whole-cluster readers."""
    source = SliceSource(state)
    return {service_name(svc): source.slices_for(svc) for svc in state.list(Service)}


__all__ = [
    "CONTROLLER_NAME",
    "MAX_ENDPOINTS_PER_SLICE",
    "ServiceSlices",
    "SliceSource",
    "find_port",
    "generate_slices",
    "has_selector",
    "pod_in_endpoints",
    "pod_serving",
    "service_name",
    "slices_by_service",
]
