"""Core and discovery kinds: Namespace, Node, Pod, Service, Secret, EndpointSlice.

Defaults and validation follow the API server (pkg/apis/core/validation and
the v1 defaulting functions); each rule's message reads as the API server's.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from netlet.resources.base import Condition, Model, Resource
from netlet.resources.validation import (
    CIDRString,
    DNSSubdomain,
    IPString,
    Labels,
    PortName,
    PortNumber,
    check_cidr,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_port_name,
    check_unique,
)

# Label and annotation names netlet reads.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"

DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400


class Protocol(enum.StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Namespace(Resource):
    KIND = "Namespace"
    NAMESPACED = False
    NAME_RULE = "label"
    SHORT_NAMES = ("ns",)


class Taint(Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeSpec(Model):
    pod_cidr: CIDRString | None = None
    pod_cidrs: tuple[CIDRString, ...] = ()
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @model_validator(mode="after")
    def _cidrs_agree(self) -> NodeSpec:
        if self.pod_cidr and self.pod_cidrs and self.pod_cidrs[0] != self.pod_cidr:
            raise ValueError("podCIDRs[0] must match podCIDR")
        if len(self.pod_cidrs) > 2:
            raise ValueError("podCIDRs: may specify no more than one CIDR for each IP family")
        return self


class NodeAddress(Model):
    type: Literal["Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS"]
    address: str


class NodeStatus(Model):
    addresses: tuple[NodeAddress, ...] = ()


class Node(Resource):
    KIND = "Node"
    NAMESPACED = False
    SHORT_NAMES = ("no",)

    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)

    @property
    def internal_ips(self) -> tuple[str, ...]:
        return tuple(a.address for a in self.status.addresses if a.type == "InternalIP")

    @property
    def zone(self) -> str | None:
        return self.metadata.labels.get(ZONE_LABEL)


class ContainerPort(Model):
    name: PortName | None = None
    container_port: PortNumber
    protocol: Protocol = Protocol.TCP
    host_port: PortNumber | None = None
    host_ip: IPString | None = None


class Container(Model):
    name: str
    image: str = ""
    ports: tuple[ContainerPort, ...] = ()
    restart_policy: Literal["Always"] | None = None  # init containers: sidecar when Always


class PodSpec(Model):
    node_name: str | None = None
    host_network: bool = False
    hostname: str | None = None
    subdomain: str | None = None
    set_hostname_as_fqdn: bool | None = None
    node_selector: Labels = Field(default_factory=dict)
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] = (
        "ClusterFirst"
    )
    containers: tuple[Container, ...] = Field(min_length=1)
    init_containers: tuple[Container, ...] = ()

    @property
    def serving_containers(self) -> tuple[Container, ...]:
        """Containers that run alongside the pod: regular ones and sidecar init containers."""
        sidecars = tuple(c for c in self.init_containers if c.restart_policy == "Always")
        return self.containers + sidecars

    @model_validator(mode="after")
    def _unique_names(self) -> PodSpec:
        names = [c.name for c in self.containers + self.init_containers]
        problem = check_unique(names, "container name")
        if problem:
            raise ValueError(f"containers: {problem}")
        port_names = [p.name for c in self.serving_containers for p in c.ports if p.name]
        problem = check_unique(port_names, "port name")
        if problem:
            raise ValueError(f"containers[*].ports[*].name: {problem}")
        if self.hostname and check_dns1123_label(self.hostname):
            raise ValueError(f"hostname: {check_dns1123_label(self.hostname)}")
        if self.subdomain and check_dns1123_label(self.subdomain):
            raise ValueError(f"subdomain: {check_dns1123_label(self.subdomain)}")
        return self


class PodIP(Model):
    ip: IPString


class PodStatus(Model):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    pod_ip: IPString | None = None
    pod_ips: tuple[PodIP, ...] = ()
    host_ip: IPString | None = None
    conditions: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _ips_agree(self) -> PodStatus:
        if self.pod_ip and self.pod_ips and self.pod_ips[0].ip != self.pod_ip:
            raise ValueError("podIPs[0] must match podIP")
        return self


class Pod(Resource):
    KIND = "Pod"
    SHORT_NAMES = ("po",)

    spec: PodSpec
    status: PodStatus = Field(default_factory=PodStatus)

    @property
    def ips(self) -> tuple[str, ...]:
        if self.status.pod_ips:
            return tuple(p.ip for p in self.status.pod_ips)
        return (self.status.pod_ip,) if self.status.pod_ip else ()

    def condition(self, kind: str) -> bool | None:
        for cond in self.status.conditions:
            if cond.type == kind:
                return cond.status == "True"
        return None

    @property
    def ready(self) -> bool:
        """Ready as the EndpointSlice controller reads it: condition Ready True and not
        terminating. Pods whose manifests carry no status are taken as running and ready."""
        if self.metadata.deletion_timestamp:
            return False
        if self.status.phase in ("Succeeded", "Failed", "Pending"):
            return False
        ready = self.condition("Ready")
        return True if ready is None else ready

    def named_port(self, name: str, protocol: Protocol) -> int | None:
        """The container port a named port resolves to on this pod, if any."""
        for container in self.spec.serving_containers:
            for port in container.ports:
                if port.name == name and port.protocol == protocol:
                    return port.container_port
        return None


class ServicePort(Model):
    name: str | None = None
    protocol: Protocol = Protocol.TCP
    app_protocol: str | None = None
    port: PortNumber
    target_port: int | str | None = None
    node_port: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_target_port(cls, data: Any) -> Any:
        # v1 defaulting: targetPort defaults to port.
        port = data.get("port") if isinstance(data, dict) else None
        valid_port = isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
        if valid_port and data.get("targetPort") in (None, 0, ""):
            data = {**data, "targetPort": port}
        return data

    @field_validator("target_port")
    @classmethod
    def _target_port(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int):
            if not 1 <= value <= 65535:
                raise ValueError(f"must be between 1 and 65535, inclusive (got {value})")
        elif isinstance(value, str):
            problem = check_port_name(value)
            if problem:
                raise ValueError(problem)
        return value


class SessionAffinityClientIP(Model):
    timeout_seconds: int = DEFAULT_AFFINITY_TIMEOUT

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: int) -> int:
        if not 0 < value <= MAX_AFFINITY_TIMEOUT:
            raise ValueError(f"must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT + 1}")
        return value


class SessionAffinityConfig(Model):
    client_ip: SessionAffinityClientIP = Field(default_factory=SessionAffinityClientIP)


ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]


class ServiceSpec(Model):
    type: ServiceType = "ClusterIP"
    selector: Labels | None = None
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str | None = None
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[Literal["IPv4", "IPv6"], ...] = ()
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    external_ips: tuple[IPString, ...] = ()
    external_name: str | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    health_check_node_port: int | None = None
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str | None = None
    load_balancer_source_ranges: tuple[str, ...] = ()
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    publish_not_ready_addresses: bool = False
    traffic_distribution: Literal["PreferClose", "PreferSameZone", "PreferSameNode"] | None = None

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = data.get("type") or "ClusterIP"
        # Defaulted for externally-accessible Services, ClusterIP with externalIPs included.
        accessible = kind in ("NodePort", "LoadBalancer") or (
            kind == "ClusterIP" and bool(data.get("externalIPs"))
        )
        if accessible and not data.get("externalTrafficPolicy"):
            data["externalTrafficPolicy"] = "Cluster"
        if data.get("sessionAffinity") == "ClientIP" and not data.get("sessionAffinityConfig"):
            data["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
        if data.get("clusterIP") and not data.get("clusterIPs"):
            data["clusterIPs"] = [data["clusterIP"]]
        if data.get("clusterIPs") and not data.get("clusterIP"):
            data["clusterIP"] = data["clusterIPs"][0]
        if kind == "LoadBalancer" and data.get("allocateLoadBalancerNodePorts") is None:
            data["allocateLoadBalancerNodePorts"] = True
        return data

    @model_validator(mode="after")
    def _validate(self) -> ServiceSpec:
        _validate_service_spec(self)
        return self


def _validate_service_spec(spec: ServiceSpec) -> None:
    """ValidateService: the rules that span several fields."""
    kind = spec.type
    if kind == "ExternalName":
        if not spec.external_name:
            raise ValueError("externalName: Required value (for type ExternalName)")
        problem = check_dns1123_subdomain(spec.external_name.rstrip("."))
        if problem:
            raise ValueError(f"externalName: {problem}")
        if spec.cluster_ip and spec.cluster_ip != "None":
            raise ValueError("clusterIP: may not be set for type ExternalName")
    elif spec.external_name:
        raise ValueError("externalName: may only be set when type is ExternalName")
    if not spec.ports and kind != "ExternalName" and not spec.headless:
        raise ValueError("ports: Required value")
    if len(spec.ports) > 1:
        for i, port in enumerate(spec.ports):
            if not port.name:
                raise ValueError(f"ports[{i}].name: Required value (when more than one port)")
    for i, port in enumerate(spec.ports):
        if port.name and check_dns1123_label(port.name):
            raise ValueError(f"ports[{i}].name: {check_dns1123_label(port.name)}")
        if port.node_port is not None and kind not in ("NodePort", "LoadBalancer"):
            raise ValueError(f"ports[{i}].nodePort: may not be used when type is {kind!r}")
        if spec.headless and isinstance(port.target_port, int) and port.target_port != port.port:
            pass  # allowed; headless services ignore targetPort
    problem = check_unique([p.name for p in spec.ports if p.name], "port name")
    if problem:
        raise ValueError(f"ports: {problem}")
    problem = check_unique([(p.port, p.protocol.value) for p in spec.ports], "port/protocol")
    if problem:
        raise ValueError(f"ports: {problem}")
    node_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        if port.node_port is None:
            continue
        if (port.node_port, port.protocol.value) in node_ports:
            raise ValueError(f"ports[{i}].nodePort: Duplicate value: {port.node_port}")
        node_ports.add((port.node_port, port.protocol.value))
    if spec.cluster_ips:
        for i, ip in enumerate(spec.cluster_ips):
            if i == 0 and ip == "None":
                continue
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(
                    f"clusterIPs[{i}]: must be a valid IP address or 'None' (got {ip!r})"
                ) from None
        if spec.cluster_ips[0] != spec.cluster_ip:
            raise ValueError("clusterIPs[0]: must match clusterIP")
        if len(spec.cluster_ips) > 2 or (
            len(spec.cluster_ips) == 2
            and ipaddress.ip_address(spec.cluster_ips[0]).version
            == ipaddress.ip_address(spec.cluster_ips[1]).version
        ):
            raise ValueError("clusterIPs: may specify no more than one IP for each IP family")
    accessible = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.external_ips)
    )
    if spec.external_traffic_policy and not accessible:
        raise ValueError(
            "externalTrafficPolicy: may only be set when type is 'NodePort' or 'LoadBalancer' "
            "(or 'ClusterIP' with externalIPs): externally-accessible services"
        )
    if spec.health_check_node_port is not None and not (
        kind == "LoadBalancer" and spec.external_traffic_policy == "Local"
    ):
        raise ValueError(
            "healthCheckNodePort: may only be set when type is 'LoadBalancer' and "
            "externalTrafficPolicy is 'Local'"
        )
    if spec.load_balancer_source_ranges and kind != "LoadBalancer":
        raise ValueError("loadBalancerSourceRanges: may only be used when type is 'LoadBalancer'")
    for i, cidr in enumerate(spec.load_balancer_source_ranges):
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"loadBalancerSourceRanges[{i}]: must be a list of IP ranges, "
                f"e.g. 10.0.0.0/8 (got {cidr!r})"
            ) from None
    if spec.session_affinity == "None" and spec.session_affinity_config is not None:
        raise ValueError("sessionAffinityConfig: must not be set when sessionAffinity is None")
    if spec.ip_family_policy == "SingleStack" and len(spec.ip_families) > 1:
        raise ValueError("ipFamilies: may not have more than one family for SingleStack")
    if len(set(spec.ip_families)) != len(spec.ip_families):
        raise ValueError("ipFamilies: may not repeat a family")


class LoadBalancerIngressPort(Model):
    port: int
    protocol: Protocol = Protocol.TCP


class LoadBalancerIngress(Model):
    ip: IPString | None = None
    hostname: str | None = None
    ip_mode: Literal["VIP", "Proxy"] | None = None
    ports: tuple[LoadBalancerIngressPort, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_mode(cls, data: Any) -> Any:
        # Defaulted to VIP when an IP is set (LoadBalancerIPMode, GA in 1.32).
        if isinstance(data, dict) and data.get("ip") and not data.get("ipMode"):
            data = {**data, "ipMode": "VIP"}
        return data


class LoadBalancerStatus(Model):
    ingress: tuple[LoadBalancerIngress, ...] = ()


class ServiceStatus(Model):
    load_balancer: LoadBalancerStatus = Field(default_factory=LoadBalancerStatus)


class Service(Resource):
    KIND = "Service"
    NAME_RULE = "dns1035"
    SHORT_NAMES = ("svc",)

    spec: ServiceSpec = Field(default_factory=lambda: ServiceSpec(ports=()))
    status: ServiceStatus = Field(default_factory=ServiceStatus)


class ConfigMap(Resource):
    """Only what references need: Gateway API CA bundles (`ca.crt`) live here."""

    KIND = "ConfigMap"
    SHORT_NAMES = ("cm",)

    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)


class Secret(Resource):
    KIND = "Secret"

    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] = Field(default_factory=dict)

    TLS_TYPE: ClassVar[str] = "kubernetes.io/tls"

    @model_validator(mode="after")
    def _validate(self) -> Secret:
        for key, value in self.data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"data[{key}]: must be base64-encoded") from None
        if self.type == self.TLS_TYPE:
            for key in ("tls.crt", "tls.key"):
                if key not in self.data and key not in self.string_data:
                    raise ValueError(f"data[{key}]: Required value (type kubernetes.io/tls)")
        return self

    def value(self, key: str) -> bytes | None:
        if key in self.string_data:
            return self.string_data[key].encode()
        if key in self.data:
            return base64.b64decode(self.data[key])
        return None


class EndpointConditions(Model):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class ForZone(Model):
    name: str


class ForNode(Model):
    name: str


class EndpointHints(Model):
    for_zones: tuple[ForZone, ...] = ()
    for_nodes: tuple[ForNode, ...] = ()


class ObjectReference(Model):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None


class Endpoint(Model):
    addresses: tuple[str, ...] = Field(min_length=1, max_length=100)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: EndpointHints | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(Model):
    name: str | None = None
    protocol: Protocol = Protocol.TCP
    port: PortNumber | None = None
    app_protocol: str | None = None


class EndpointSlice(Resource):
    KIND = "EndpointSlice"
    GROUP = "discovery.k8s.io"

    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: tuple[Endpoint, ...] = Field(default=(), max_length=1000)
    ports: tuple[EndpointPort, ...] = Field(default=(), max_length=20000)

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)

    @model_validator(mode="after")
    def _addresses(self) -> EndpointSlice:
        for i, endpoint in enumerate(self.endpoints):
            for j, address in enumerate(endpoint.addresses):
                if self.address_type == "FQDN":
                    problem = check_dns1123_subdomain(address)
                else:
                    try:
                        ip = ipaddress.ip_address(address)
                        want = 4 if self.address_type == "IPv4" else 6
                        problem = (
                            None
                            if ip.version == want
                            else (f"must be an {self.address_type} address (got {address!r})")
                        )
                    except ValueError:
                        problem = f"must be a valid IP address (got {address!r})"
                if problem:
                    raise ValueError(f"endpoints[{i}].addresses[{j}]: {problem}")
        problem = check_unique([p.name or "" for p in self.ports], "port name")
        if problem:
            raise ValueError(f"ports: {problem}")
        return self


CORE_KINDS: tuple[type[Resource], ...] = (
    Namespace,
    Node,
    Pod,
    Service,
    Secret,
    ConfigMap,
    EndpointSlice,
)

__all__ = [
    "CORE_KINDS",
    "ConfigMap",
    "DNSSubdomain",
    "Endpoint",
    "EndpointSlice",
    "Namespace",
    "Node",
    "Pod",
    "Protocol",
    "Secret",
    "Service",
    "ServicePort",
    "check_cidr",
]
