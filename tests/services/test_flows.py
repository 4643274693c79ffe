"""Flows through the service proxy: (source, destination, protocol) -> endpoints with
their shares, REJECT, DROP or no match, and masquerade, written from the Kubernetes
docs. Each group names the doc section it follows; addresses follow
tests/services/conventions.py.

A flow's `source` is NS/POD, a node name or an IP; `node` (optional) is where an
outside client's packets arrive (netlet svc trace --node).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import pytest

from netlet.cluster.state import ClusterState
from netlet.services.builder import ProxyConfig
from tests.services.conventions import (
    BLOCKED,
    EXTERNAL,
    NODE_A,
    NODE_B,
    Doc,
    endpoint_slice,
    load,
    node,
    pod,
    service,
    traced,
)

WEB_PORTS = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9100}]


def _base() -> list[Doc]:
    return [
        node("node-a", NODE_A, "zone-a", ("ExternalIP", "198.18.0.2")),
        node("node-b", NODE_B, "zone-b"),
        pod("web-1", "10.244.0.11", "node-a", {"app": "web"}, ports=WEB_PORTS),
        pod("web-2", "10.244.1.12", "node-b", {"app": "web"}, ports=WEB_PORTS),
        pod("client", "10.244.0.50", "node-a", {"app": "client"}, ports=[]),
        pod("client-b", "10.244.1.50", "node-b", {"app": "client"}, ports=[]),
        pod("ob-1", "10.244.1.40", "node-b", {"app": "only-b"}),
    ]


WEB = ["10.244.0.11:8080", "10.244.1.12:8080"]


def _scenario_services() -> list[Doc]:
    dns_ports = [
        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "containerPort": 5353, "protocol": "TCP"},
        {"name": "dns-sctp", "containerPort": 5353, "protocol": "SCTP"},
    ]
    lb_status = [
        {"ip": "192.0.2.10"},
        {"ip": "192.0.2.11", "ipMode": "Proxy"},
        {"hostname": "lb.example.com"},
    ]
    return [
        # Service: "Defining a Service", multi-port Services, protocols.
        service(
            "web",
            "10.96.0.10",
            {"app": "web"},
            ports=[
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9100, "targetPort": "metrics"},
            ],
        ),
        pod("dns-1", "10.244.1.20", "node-b", {"app": "dns"}, ports=dns_ports),
        service(
            "dns",
            "10.96.0.53",
            {"app": "dns"},
            ports=[
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
                {"name": "dns-sctp", "port": 53, "protocol": "SCTP", "targetPort": "dns-sctp"},
            ],
        ),
        # Services without endpoints.
        service(
            "empty",
            "10.96.1.1",
            {"app": "nothing"},
            type="LoadBalancer",
            externalIPs=["192.0.2.50"],
            ports=[{"name": "http", "port": 80, "nodePort": 30080}],
            ingress=[{"ip": "192.0.2.60"}],
        ),
        service("no-selector", "10.96.1.2", None, ports=[{"port": 80}]),
        pod("sleepy-1", "10.244.0.60", "node-a", {"app": "sleepy"}, ready=False),
        service("sleepy", "10.96.1.3", {"app": "sleepy"}),
        # NodePort.
        service(
            "np",
            "10.96.1.10",
            {"app": "web"},
            type="NodePort",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30100}],
        ),
        # LoadBalancer with source ranges, ipMode Proxy, a hostname ingress.
        service(
            "lb",
            "10.96.2.1",
            {"app": "web"},
            type="LoadBalancer",
            loadBalancerSourceRanges=["203.0.113.0/24", " 172.18.0.0/16"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30200}],
            ingress=lb_status,
        ),
        service(
            "lb-open",
            "10.96.2.2",
            {"app": "web"},
            type="LoadBalancer",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30201}],
            ingress=[{"ip": "192.0.2.20"}],
        ),
        # externalTrafficPolicy Local.
        service(
            "etl",
            "10.96.3.1",
            {"app": "web"},
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            externalIPs=["192.0.2.30"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30300}],
            ingress=[{"ip": "192.0.2.31"}],
        ),
        service(
            "etl-b",
            "10.96.3.2",
            {"app": "only-b"},
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30301}],
            ingress=[{"ip": "192.0.2.32"}],
        ),
        service(
            "ext-cluster-ip",
            "10.96.3.3",
            {"app": "only-b"},
            externalIPs=["192.0.2.33"],
            externalTrafficPolicy="Local",
        ),
        # internalTrafficPolicy Local.
        service("itl", "10.96.4.1", {"app": "web"}, internalTrafficPolicy="Local"),
        service("itl-b", "10.96.4.2", {"app": "only-b"}, internalTrafficPolicy="Local"),
        # Terminating endpoints.
        pod("d-1", "10.244.0.71", "node-a", {"app": "drain"}, terminating=True),
        pod("d-2", "10.244.1.72", "node-b", {"app": "drain"}),
        pod("d-3", "10.244.0.73", "node-a", {"app": "drain"}, terminating=True, ready=False),
        service(
            "drain",
            "10.96.5.1",
            {"app": "drain"},
            type="NodePort",
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30400}],
        ),
        pod("t-1", "10.244.0.81", "node-a", {"app": "term"}, terminating=True),
        pod("t-2", "10.244.1.82", "node-b", {"app": "term"}, terminating=True, ready=False),
        service("term", "10.96.5.2", {"app": "term"}),
        pod("nr-1", "10.244.0.91", "node-a", {"app": "notready"}, ready=False),
        service("publish", "10.96.5.3", {"app": "notready"}, publishNotReadyAddresses=True),
        pod("done-1", "10.244.0.92", "node-a", {"app": "done"}, phase="Succeeded"),
        service("done", "10.96.5.4", {"app": "done"}),
        # Session affinity.
        service(
            "sticky",
            "10.96.6.1",
            {"app": "web"},
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        ),
        # Not proxied by kube-proxy.
        service("headless", "None", {"app": "web"}),
        service("alias", None, None, type="ExternalName", externalName="db.example.com"),
        service(
            "other-proxy",
            "10.96.8.3",
            {"app": "web"},
            labels={"service.kubernetes.io/service-proxy-name": "other"},
        ),
        # A selectorless Service with hand-written slices (EndpointSlices doc).
        service("manual", "10.96.9.1", None, ports=[{"name": "https", "port": 443}]),
        endpoint_slice(
            "manual-1",
            "manual",
            [
                {"addresses": ["10.1.2.3"]},
                {"addresses": ["10.1.2.4"], "conditions": {"ready": False}},
                {"addresses": ["10.1.2.5"], "nodeName": "node-a"},
            ],
            [{"name": "https", "port": 8443}],
        ),
        endpoint_slice(
            "manual-2",
            "manual",
            [{"addresses": ["10.1.2.3"]}, {"addresses": ["10.1.2.6"]}],
            [{"name": "https", "port": 8443}],
        ),
    ]


@cache
def cluster() -> ClusterState:
    return load(*_base(), *_scenario_services())


def _topology_docs() -> list[Doc]:
    return [
        node("node-a", NODE_A, "zone-a"),
        node("node-b", NODE_B, "zone-b"),
        node("node-c", "172.18.0.4", "zone-a"),
        node("node-d", "172.18.0.5"),  # no zone label
        pod("client-a", "10.244.0.50", "node-a", {"app": "client"}, ports=[]),
        pod("client-b", "10.244.1.50", "node-b", {"app": "client"}, ports=[]),
        pod("client-c", "10.244.2.50", "node-c", {"app": "client"}, ports=[]),
        pod("t-a", "10.244.0.21", "node-a", {"app": "t"}),
        pod("t-b", "10.244.1.21", "node-b", {"app": "t"}),
        pod("t-c", "10.244.2.21", "node-c", {"app": "t"}),
        pod("b-1", "10.244.1.31", "node-b", {"app": "b"}),
        pod("b-2", "10.244.1.32", "node-b", {"app": "b"}),
        pod("z-a", "10.244.0.41", "node-a", {"app": "z"}),
        pod("z-d", "10.244.3.41", "node-d", {"app": "z"}),
        service("close", "10.96.6.1", {"app": "t"}, trafficDistribution="PreferClose"),
        service("same-zone", "10.96.6.5", {"app": "t"}, trafficDistribution="PreferSameZone"),
        service("same-node", "10.96.6.2", {"app": "t"}, trafficDistribution="PreferSameNode"),
        service("close-b", "10.96.6.3", {"app": "b"}, trafficDistribution="PreferClose"),
        service("zoneless", "10.96.6.4", {"app": "z"}, trafficDistribution="PreferClose"),
        service(
            "local-close",
            "10.96.6.6",
            {"app": "t"},
            trafficDistribution="PreferClose",
            internalTrafficPolicy="Local",
        ),
        service(
            "auto",
            "10.96.6.7",
            {"app": "t"},
            trafficDistribution="PreferClose",
            annotations={"service.kubernetes.io/topology-mode": "Auto"},
        ),
    ]


@cache
def topology_cluster() -> ClusterState:
    return load(*_topology_docs())


V6_NODE = "fc00:f853:ccd:e793::2"


@cache
def dual_stack_cluster() -> ClusterState:
    return load(
        node("node-a", NODE_A, "zone-a", ("InternalIP", V6_NODE)),
        pod("web-1", ["10.244.0.11", "fd00:10:244::11"], "node-a", {"app": "web"}),
        pod("web-2", ["10.244.0.12", "fd00:10:244::12"], "node-a", {"app": "web"}),
        pod("client", ["10.244.0.50", "fd00:10:244::50"], "node-a", {"app": "c"}, ports=[]),
        service(
            "ds",
            ["10.96.7.1", "fd00:10:96::71"],
            {"app": "web"},
            type="NodePort",
            ipFamilyPolicy="RequireDualStack",
            ipFamilies=["IPv4", "IPv6"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30700}],
        ),
        service("v6", "fd00:10:96::72", {"app": "web"}, ipFamilies=["IPv6"]),
    )


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    to: str
    expect: tuple[str, ...]  # "ip:port"s, or ("REJECT",), ("DROP",), ("no match",)
    masquerade: bool = False
    protocol: str = "TCP"
    node: str | None = None
    config: ProxyConfig | None = None
    cluster: str = "main"


def F(
    id: str,
    source: str,
    to: str,
    expect: str | list[str],
    masquerade: bool = False,
    **kw: object,
) -> Flow:
    outcomes = tuple(expect) if isinstance(expect, list) else (expect,)
    return Flow(id, source, to, outcomes, masquerade, **kw)  # type: ignore[arg-type]


# Service (concepts/services-networking/service): Defining a Service, Multi-port
# Services, Protocols; Virtual IPs and Service Proxies (reference/networking/virtual-ips):
# nftables proxy mode picks a backend at random; cluster-ips-check of kube-proxy's
# nftables README: reject undefined ports of ClusterIPs, drop unallocated ClusterIPs.
CLUSTER_IP_FLOWS = [
    F("pod to ClusterIP reaches both ready endpoints", "default/client", "10.96.0.10:80", WEB),
    F(
        "second port of a multi-port Service resolves its own named targetPort",
        "default/client",
        "10.96.0.10:9100",
        ["10.244.0.11:9100", "10.244.1.12:9100"],
    ),
    F(
        "UDP on the same port number reaches the UDP port's endpoints",
        "default/client",
        "10.96.0.53:53",
        "10.244.1.20:5353",
        protocol="UDP",
    ),
    F(
        "TCP on port 53 reaches the TCP port's numeric targetPort",
        "default/client",
        "10.96.0.53:53",
        "10.244.1.20:5353",
        protocol="TCP",
    ),
    F(
        "SCTP is a Service protocol like the others",
        "default/client",
        "10.96.0.53:53",
        "10.244.1.20:5353",
        protocol="SCTP",
    ),
    F(
        "a protocol the ClusterIP does not define is rejected",
        "default/client",
        "10.96.0.10:80",
        "REJECT",
        protocol="UDP",
    ),
    F(
        "an undefined port of a known ClusterIP is rejected",
        "default/client",
        "10.96.0.10:443",
        "REJECT",
    ),
    F(
        "an unallocated address of the service CIDR is dropped",
        "default/client",
        "10.96.0.99:80",
        "DROP",
    ),
    F(
        "an address outside every service range is no match",
        "default/client",
        "192.168.50.1:80",
        "no match",
    ),
    F("a pod IP reached directly is no match", "default/client", "10.244.1.12:8080", "no match"),
    F(
        "a selectorless Service uses its hand-written slices, merged and deduplicated",
        "default/client",
        "10.96.9.1:443",
        ["10.1.2.3:8443", "10.1.2.5:8443", "10.1.2.6:8443"],
    ),
]

# Virtual IPs and Service Proxies: masquerading (kube-proxy nftables proxier: off-cluster
# sources to a ClusterIP, hairpin, --masquerade-all).
MASQUERADE_FLOWS = [
    F(
        "a pod that is itself an endpoint is masqueraded (hairpin)",
        "default/web-1",
        "10.96.0.10:80",
        WEB,
        True,
    ),
    F(
        "the node's own processes are masqueraded to a ClusterIP",
        "node-a",
        "10.96.0.10:80",
        WEB,
        True,
    ),
    F(
        "an off-cluster client routed to a ClusterIP is masqueraded",
        EXTERNAL,
        "10.96.0.10:80",
        WEB,
        True,
        node="node-a",
    ),
    F(
        "masquerade-all masquerades pod traffic too",
        "default/client",
        "10.96.0.10:80",
        WEB,
        True,
        config=ProxyConfig(masquerade_all=True),
    ),
    F(
        "session affinity does not change the candidate endpoints of a new client",
        "default/client",
        "10.96.6.1:80",
        WEB,
    ),
]

# Virtual IPs and Service Proxies: "kube-proxy ... rejecting packets for services with no
# endpoints" (nftables README); EndpointSlices: conditions (ready); Pod phases.
NO_ENDPOINT_FLOWS = [
    F("a ClusterIP without endpoints rejects", "default/client", "10.96.1.1:80", "REJECT"),
    F(
        "an externalIP without endpoints rejects",
        EXTERNAL,
        "192.0.2.50:80",
        "REJECT",
        node="node-a",
    ),
    F(
        "a NodePort without endpoints rejects outside clients",
        EXTERNAL,
        f"{NODE_A}:30080",
        "REJECT",
    ),
    F("a NodePort without endpoints rejects pods", "default/client", f"{NODE_A}:30080", "REJECT"),
    F(
        "a load balancer IP without endpoints rejects",
        EXTERNAL,
        "192.0.2.60:80",
        "REJECT",
        node="node-a",
    ),
    F(
        "a selectorless Service with no EndpointSlice rejects",
        "default/client",
        "10.96.1.2:80",
        "REJECT",
    ),
    F("only not-ready pods selected: rejected", "default/client", "10.96.1.3:80", "REJECT"),
    F("a Succeeded pod is never an endpoint", "default/client", "10.96.5.4:80", "REJECT"),
]

# Service: type NodePort; Virtual IPs: nftables proxy mode, "NodePort interfaces"
# (--nodeport-addresses defaults to primary) and "NodePort services on 127.0.0.1".
NODEPORT_FLOWS = [
    F(
        "an outside client on the node's primary IP is masqueraded",
        EXTERNAL,
        f"{NODE_A}:30100",
        WEB,
        True,
    ),
    F(
        "a secondary node address does not serve NodePorts by default",
        EXTERNAL,
        "198.18.0.2:30100",
        "no match",
    ),
    F(
        "nodeport-addresses CIDRs open other node addresses",
        EXTERNAL,
        "198.18.0.2:30100",
        WEB,
        True,
        config=ProxyConfig(nodeport_addresses=("198.18.0.0/16",)),
    ),
    F("NodePorts are never served on 127.0.0.1", "node-a", "127.0.0.1:30100", "no match"),
    F(
        "a pod reaching a NodePort of its node is masqueraded",
        "default/client",
        f"{NODE_A}:30100",
        WEB,
        True,
    ),
    F("the node reaching its own NodePort is masqueraded", "node-a", f"{NODE_A}:30100", WEB, True),
    F(
        "a pod reaching another node's NodePort is served by that node",
        "default/client",
        f"{NODE_B}:30100",
        WEB,
        True,
    ),
    F(
        "an outside client reaching node-b is served by node-b",
        EXTERNAL,
        f"{NODE_B}:30100",
        WEB,
        True,
    ),
    F("an unused node port is no match", EXTERNAL, f"{NODE_A}:30999", "no match"),
]

# Service: type LoadBalancer, "Specifying IPMode of load balancer status",
# loadBalancerSourceRanges (Configure a firewall / Create an External Load Balancer).
LOAD_BALANCER_FLOWS = [
    F(
        "an allowed client reaches the load balancer VIP",
        EXTERNAL,
        "192.0.2.10:80",
        WEB,
        True,
        node="node-a",
    ),
    F(
        "a client outside loadBalancerSourceRanges is dropped",
        BLOCKED,
        "192.0.2.10:80",
        "DROP",
        node="node-a",
    ),
    F(
        "loadBalancerSourceRanges do not apply to the NodePort",
        BLOCKED,
        f"{NODE_A}:30200",
        WEB,
        True,
    ),
    F(
        "pods outside loadBalancerSourceRanges are dropped too",
        "default/client",
        "192.0.2.10:80",
        "DROP",
    ),
    F("the node is allowed when its IP is in a range", "node-a", "192.0.2.10:80", WEB, True),
    F(
        "the VIP itself as source is allowed when a range holds the node IP",
        "192.0.2.10",
        "192.0.2.10:80",
        WEB,
        True,
        node="node-a",
    ),
    F(
        "an ipMode Proxy address is left to the load balancer",
        EXTERNAL,
        "192.0.2.11:80",
        "no match",
        node="node-a",
    ),
    F(
        "a VIP without source ranges accepts everyone",
        BLOCKED,
        "192.0.2.20:80",
        WEB,
        True,
        node="node-a",
    ),
    F(
        "an undefined port of a VIP is no match",
        EXTERNAL,
        "192.0.2.10:443",
        "no match",
        node="node-a",
    ),
]

# Virtual IPs and Service Proxies: Traffic policies, "External traffic policy"; Service:
# externalTrafficPolicy; kube-proxy short-circuits pod and node traffic to all endpoints.
ETP_LOCAL_FLOWS = [
    F(
        "an outside client on a LB VIP reaches only this node's endpoint, source kept",
        EXTERNAL,
        "192.0.2.31:80",
        "10.244.0.11:8080",
        node="node-a",
    ),
    F(
        "an outside client on an externalIP reaches only local endpoints",
        EXTERNAL,
        "192.0.2.30:80",
        "10.244.0.11:8080",
        node="node-a",
    ),
    F(
        "an outside client on the NodePort reaches only local endpoints",
        EXTERNAL,
        f"{NODE_A}:30300",
        "10.244.0.11:8080",
    ),
    F("the other node serves its own endpoint", EXTERNAL, f"{NODE_B}:30300", "10.244.1.12:8080"),
    F(
        "pod traffic to the VIP short-circuits to every endpoint, unmasqueraded",
        "default/client",
        "192.0.2.31:80",
        WEB,
    ),
    F(
        "node traffic to the VIP short-circuits to every endpoint, masqueraded",
        "node-a",
        "192.0.2.31:80",
        WEB,
        True,
    ),
    F(
        "the ClusterIP of an eTP Local Service is not restricted",
        "default/client",
        "10.96.3.1:80",
        WEB,
    ),
    F(
        "no local endpoint: outside clients on the VIP are dropped",
        EXTERNAL,
        "192.0.2.32:80",
        "DROP",
        node="node-a",
    ),
    F(
        "no local endpoint: outside clients on the NodePort are dropped",
        EXTERNAL,
        f"{NODE_A}:30301",
        "DROP",
    ),
    F(
        "no local endpoint: pods still reach the remote endpoint",
        "default/client",
        "192.0.2.32:80",
        "10.244.1.40:8080",
    ),
    F(
        "no local endpoint: the node itself still reaches it, masqueraded",
        "node-a",
        f"{NODE_A}:30301",
        "10.244.1.40:8080",
        True,
    ),
    F(
        "a node with the endpoint serves outside clients",
        EXTERNAL,
        f"{NODE_B}:30301",
        "10.244.1.40:8080",
    ),
    F(
        "a ClusterIP Service with externalIPs honours eTP Local",
        EXTERNAL,
        "192.0.2.33:80",
        "DROP",
        node="node-a",
    ),
    F(
        "a ClusterIP Service with externalIPs, local endpoint present",
        EXTERNAL,
        "192.0.2.33:80",
        "10.244.1.40:8080",
        node="node-b",
    ),
]

# Virtual IPs and Service Proxies: "Internal traffic policy"; Service Internal Traffic
# Policy (concepts/services-networking/service-traffic-policy).
ITP_LOCAL_FLOWS = [
    F(
        "iTP Local sends a pod only to its node's endpoint",
        "default/client",
        "10.96.4.1:80",
        "10.244.0.11:8080",
    ),
    F(
        "iTP Local on the other node picks that node's endpoint",
        "default/client-b",
        "10.96.4.1:80",
        "10.244.1.12:8080",
    ),
    F("iTP Local without a local endpoint drops", "default/client", "10.96.4.2:80", "DROP"),
    F(
        "iTP Local with the only endpoint local",
        "default/client-b",
        "10.96.4.2:80",
        "10.244.1.40:8080",
    ),
]

# Virtual IPs and Service Proxies: "Traffic to terminating endpoints"; EndpointSlices:
# Conditions (ready, serving, terminating); Service: publishNotReadyAddresses.
TERMINATING_FLOWS = [
    F(
        "ready endpoints win over terminating ones",
        "default/client",
        "10.96.5.1:80",
        "10.244.1.72:8080",
    ),
    F(
        "eTP Local falls back to local serving terminating endpoints",
        EXTERNAL,
        f"{NODE_A}:30400",
        "10.244.0.71:8080",
    ),
    F(
        "with no ready endpoint anywhere, serving terminating ones are used",
        "default/client",
        "10.96.5.2:80",
        "10.244.0.81:8080",
    ),
    F(
        "publishNotReadyAddresses makes a not-ready pod an endpoint",
        "default/client",
        "10.96.5.3:80",
        "10.244.0.91:8080",
    ),
]

# Service: headless Services, type ExternalName; kube-proxy ignores Services labelled
# service.kubernetes.io/service-proxy-name.
NOT_PROXIED_FLOWS = [
    F(
        "a Service owned by another proxy is unknown to kube-proxy: dropped as unallocated",
        "default/client",
        "10.96.8.3:80",
        "DROP",
    ),
]

# Topology Aware Routing (concepts/services-networking/topology-aware-routing) and
# Traffic Distribution (Service: traffic distribution; Virtual IPs: Traffic Distribution).
TOPOLOGY_FLOWS = [
    F(
        "PreferClose keeps zone-a clients in zone-a",
        "default/client-a",
        "10.96.6.1:80",
        ["10.244.0.21:8080", "10.244.2.21:8080"],
        cluster="topology",
    ),
    F(
        "PreferClose keeps zone-b clients in zone-b",
        "default/client-b",
        "10.96.6.1:80",
        "10.244.1.21:8080",
        cluster="topology",
    ),
    F(
        "PreferSameZone behaves as PreferClose",
        "default/client-c",
        "10.96.6.5:80",
        ["10.244.0.21:8080", "10.244.2.21:8080"],
        cluster="topology",
    ),
    F(
        "PreferSameNode keeps traffic on the node",
        "default/client-a",
        "10.96.6.2:80",
        "10.244.0.21:8080",
        cluster="topology",
    ),
    F(
        "PreferSameNode on another node",
        "default/client-b",
        "10.96.6.2:80",
        "10.244.1.21:8080",
        cluster="topology",
    ),
    F(
        "no endpoint in the client's zone: routed cluster-wide",
        "default/client-a",
        "10.96.6.3:80",
        ["10.244.1.31:8080", "10.244.1.32:8080"],
        cluster="topology",
    ),
    F(
        "an endpoint without a zone hint disables hints for everyone",
        "default/client-a",
        "10.96.6.4:80",
        ["10.244.0.41:8080", "10.244.3.41:8080"],
        cluster="topology",
    ),
    F(
        "internalTrafficPolicy Local takes precedence over PreferClose",
        "default/client-c",
        "10.96.6.6:80",
        "10.244.2.21:8080",
        cluster="topology",
    ),
    F(
        "the topology-mode annotation takes precedence; netlet makes no hints",
        "default/client-b",
        "10.96.6.7:80",
        ["10.244.0.21:8080", "10.244.1.21:8080", "10.244.2.21:8080"],
        cluster="topology",
    ),
]

# IPv4/IPv6 dual-stack (concepts/services-networking/dual-stack): one ClusterIP per
# family, each proxied to the endpoints of its family.
DUAL_STACK_FLOWS = [
    F(
        "the IPv4 ClusterIP reaches IPv4 endpoints",
        "default/client",
        "10.96.7.1:80",
        ["10.244.0.11:8080", "10.244.0.12:8080"],
        cluster="dual",
    ),
    F(
        "the IPv6 ClusterIP reaches IPv6 endpoints",
        "fd00:10:244::50",
        "[fd00:10:96::71]:80",
        ["[fd00:10:244::11]:8080", "[fd00:10:244::12]:8080"],
        cluster="dual",
    ),
    F(
        "an IPv6-only Service",
        "default/client",
        "[fd00:10:96::72]:80",
        ["[fd00:10:244::11]:8080", "[fd00:10:244::12]:8080"],
        cluster="dual",
    ),
    F(
        "an unallocated IPv6 service address is dropped",
        "default/client",
        "[fd00:10:96::99]:80",
        "DROP",
        cluster="dual",
    ),
    F(
        "an IPv6 NodePort on the node's primary IPv6 address",
        "2001:db8::7",
        f"[{V6_NODE}]:30700",
        ["[fd00:10:244::11]:8080", "[fd00:10:244::12]:8080"],
        True,
        cluster="dual",
    ),
]

ALL_FLOWS = (
    CLUSTER_IP_FLOWS
    + MASQUERADE_FLOWS
    + NO_ENDPOINT_FLOWS
    + NODEPORT_FLOWS
    + LOAD_BALANCER_FLOWS
    + ETP_LOCAL_FLOWS
    + ITP_LOCAL_FLOWS
    + TERMINATING_FLOWS
    + NOT_PROXIED_FLOWS
    + TOPOLOGY_FLOWS
    + DUAL_STACK_FLOWS
)

CLUSTERS = {"main": cluster, "topology": topology_cluster, "dual": dual_stack_cluster}


def test_there_are_at_least_sixty_flows() -> None:
    assert len(ALL_FLOWS) >= 60
    assert len({f.id for f in ALL_FLOWS}) == len(ALL_FLOWS)


@pytest.mark.parametrize("case", ALL_FLOWS, ids=lambda f: f.id)
def test_flow(case: Flow) -> None:
    state = CLUSTERS[case.cluster]()
    result = traced(state, case.source, case.to, case.protocol, node=case.node, config=case.config)
    got = result.endpoints or (result.kind.value,)
    assert got == case.expect, "\n".join(str(s) for s in result.steps)
    assert result.masquerade == case.masquerade, "\n".join(str(s) for s in result.steps)
    shares = [o.probability for o in result.outcomes]
    assert sum(shares) == 1
    assert len(set(shares)) == 1  # numgen random mod N: equal shares


def test_hairpin_masquerades_only_the_connection_to_the_client_itself() -> None:
    result = traced(cluster(), "default/web-1", "10.96.0.10:80")
    by_endpoint = {str(o.endpoint): o.masquerade for o in result.outcomes}
    assert by_endpoint == {"10.244.0.11:8080": True, "10.244.1.12:8080": False}
    assert all(o.probability == Fraction(1, 2) for o in result.outcomes)


def test_affinity_timeout_is_reported_with_the_flow() -> None:
    # Virtual IPs and Service Proxies: Session affinity, "Session stickiness timeout".
    sticky = traced(cluster(), "default/client", "10.96.6.1:80")
    plain = traced(cluster(), "default/client", "10.96.0.10:80")
    assert (sticky.affinity_timeout, plain.affinity_timeout) == (600, None)
    assert any("sessionAffinity ClientIP" in s.text for s in sticky.steps)
