"""Address conventions and manifest builders for the services tests.

Nodes:            node-a 172.18.0.2 (zone-a), node-b 172.18.0.3 (zone-b), more per scenario
Pod CIDR:         10.244.0.0/16 (node-a 10.244.0.0/24, node-b 10.244.1.0/24, ...)
Service CIDR:     10.96.0.0/12 (IPv6 fd00:10:96::/112)
LB / external IPs: 192.0.2.0/24
Outside client:   203.0.113.7; one outside every loadBalancerSourceRanges: 198.51.100.9
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from netlet.cluster.build import load_text
from netlet.cluster.state import ClusterState
from netlet.resources.core import Protocol
from netlet.services.builder import ProxyConfig, build_table
from netlet.services.flow import FlowResult, evaluate, resolve_source, trace
from netlet.services.table import ServiceTable

NODE_A = "172.18.0.2"
NODE_B = "172.18.0.3"
EXTERNAL = "203.0.113.7"
BLOCKED = "198.51.100.9"

Doc = dict[str, Any]


def node(name: str, ip: str, zone: str | None = None, *extra: tuple[str, str]) -> Doc:
    addresses = [{"type": "InternalIP", "address": ip}]
    addresses += [{"type": kind, "address": address} for kind, address in extra]
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": addresses},
    }


def pod(
    name: str,
    ip: str | list[str],
    on: str,
    labels: dict[str, str],
    *,
    ports: list[Doc] | None = None,
    ns: str = "default",
    ready: bool = True,
    terminating: bool = False,
    phase: str = "Running",
    hostname: str | None = None,
    subdomain: str | None = None,
    sidecar_ports: list[Doc] | None = None,
) -> Doc:
    ips = [ip] if isinstance(ip, str) else ip
    if ports is None:
        ports = [{"name": "http", "containerPort": 8080}]
    meta: Doc = {"name": name, "namespace": ns, "labels": labels}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-27T10:00:00Z"
    spec: Doc = {"nodeName": on, "containers": [{"name": "app", "image": "x", "ports": ports}]}
    if sidecar_ports is not None:
        spec["initContainers"] = [
            {"name": "side", "image": "y", "restartPolicy": "Always", "ports": sidecar_ports}
        ]
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status = {
        "phase": phase,
        "podIP": ips[0],
        "podIPs": [{"ip": i} for i in ips],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def service(
    name: str,
    cluster_ip: str | list[str] | None,
    selector: dict[str, str] | None = None,
    *,
    ports: list[Doc] | None = None,
    ns: str = "default",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    ingress: list[Doc] | None = None,
    **spec: Any,
) -> Doc:
    body: Doc = {
        "ports": ports
        if ports is not None
        else [{"name": "http", "port": 80, "targetPort": "http"}],
        **spec,
    }
    if selector is not None:
        body["selector"] = selector
    if isinstance(cluster_ip, list):
        body["clusterIPs"] = cluster_ip
    elif cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    meta: Doc = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    doc: Doc = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}
    if ingress is not None:
        doc["status"] = {"loadBalancer": {"ingress": ingress}}
    return doc


def endpoint_slice(
    name: str,
    service_name: str,
    endpoints: list[Doc],
    ports: list[Doc],
    *,
    ns: str = "default",
    address_type: str = "IPv4",
    labels: dict[str, str] | None = None,
) -> Doc:
    meta_labels = {"kubernetes.io/service-name": service_name, **(labels or {})}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": meta_labels},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }


def manifests(*docs: Doc) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def load(*docs: Doc) -> ClusterState:
    result = load_text(manifests(*docs))
    assert result.ok, [str(d) for d in result.errors]
    return result.state


def destination(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, _, port = text.rpartition(":")
    return ipaddress.ip_address(host.strip("[]")), int(port)


def flow(table: ServiceTable, source: str, to: str, protocol: str = "TCP") -> FlowResult:
    dst, port = destination(to)
    return evaluate(table, ipaddress.ip_address(source), Protocol(protocol), dst, port)


def traced(
    state: ClusterState,
    source: str,
    to: str,
    protocol: str = "TCP",
    *,
    node: str | None = None,
    config: ProxyConfig | None = None,
) -> FlowResult:
    """The final hop of a trace (source given as NS/POD, node name or IP)."""
    dst, port = destination(to)
    src = resolve_source(state, source, dst.version)
    tables: dict[str, ServiceTable] = {}

    def table_for(name: str) -> ServiceTable:
        if name not in tables:
            tables[name] = build_table(state, name, config)
        return tables[name]

    return trace(state, src, Protocol(protocol), dst, port, table_for, node=node).result
