"""The services world the lab tests program: one Service per scenario on two nodes.

Written after tests/services/test_flows.py (same address conventions,
tests/services/conventions.py), with the lab's outside client in mind: it sits
at 172.18.255.254 (the highest free address of the node range), so
loadBalancerSourceRanges scenarios name 172.18.0.0/16 to let it in and
203.0.113.0/24 to keep it out.

Nodes: node-a 172.18.0.2 (pods 10.244.0.0/24), node-b 172.18.0.3 (10.244.1.0/24).
"""

from __future__ import annotations

from tests.services.conventions import Doc, manifests, node, pod, service

EXTERNAL_CLIENT = "172.18.255.254"
HTTP = [{"name": "http", "containerPort": 8080}]
WEB_PORTS = [
    {"name": "http", "containerPort": 8080},
    {"name": "metrics", "containerPort": 9100},
    {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
]


def _docs() -> list[Doc]:
    return [
        node("node-a", "172.18.0.2", "zone-a"),
        node("node-b", "172.18.0.3", "zone-b"),
        pod("web-1", "10.244.0.11", "node-a", {"app": "web"}, ports=WEB_PORTS),
        pod("web-2", "10.244.1.12", "node-b", {"app": "web"}, ports=WEB_PORTS),
        pod("client-a", "10.244.0.50", "node-a", {"app": "client"}, ports=HTTP),
        pod("client-b", "10.244.1.50", "node-b", {"app": "client"}, ports=HTTP),
        pod("only-b", "10.244.1.40", "node-b", {"app": "only-b"}, ports=HTTP),
        pod("sleepy", "10.244.0.60", "node-a", {"app": "sleepy"}, ports=HTTP, ready=False),
        pod("drain-1", "10.244.0.71", "node-a", {"app": "drain"}, ports=HTTP, terminating=True),
        # Service "Defining a Service": selector, named targetPort, multi-port, UDP.
        service(
            "web",
            "10.96.0.10",
            {"app": "web"},
            ports=[
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9100, "targetPort": "metrics"},
                {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                {"name": "closed", "port": 7000, "targetPort": 7000},
            ],
        ),
        # "Services without selectors"/no ready endpoint: REJECT (kube-proxy nftables README).
        service(
            "empty",
            "10.96.1.1",
            {"app": "nothing"},
            type="NodePort",
            ports=[{"name": "http", "port": 80, "nodePort": 30081}],
        ),
        service("sleepy", "10.96.1.3", {"app": "sleepy"}),
        # Serving-and-terminating endpoints are used when no endpoint is ready (KEP-1669).
        service("drain", "10.96.5.1", {"app": "drain"}),
        # NodePort (Service "Type NodePort"), externalTrafficPolicy Cluster: masquerade.
        service(
            "np",
            "10.96.1.10",
            {"app": "web"},
            type="NodePort",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30100}],
        ),
        # LoadBalancer with loadBalancerSourceRanges letting the outside client in / out.
        service(
            "lb-open",
            "10.96.2.1",
            {"app": "web"},
            type="LoadBalancer",
            loadBalancerSourceRanges=["172.18.0.0/16"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30200}],
            ingress=[{"ip": "192.0.2.10"}],
        ),
        service(
            "lb-closed",
            "10.96.2.2",
            {"app": "web"},
            type="LoadBalancer",
            loadBalancerSourceRanges=["203.0.113.0/24"],
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30201}],
            ingress=[{"ip": "192.0.2.20"}],
        ),
        # externalTrafficPolicy Local ("Traffic policies"): source IP kept, local only.
        service(
            "etl",
            "10.96.3.1",
            {"app": "only-b"},
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30300}],
            ingress=[{"ip": "192.0.2.31"}],
        ),
        # externalIPs ("External IPs").
        service("ext", "10.96.3.3", {"app": "web"}, externalIPs=["192.0.2.33"]),
        # internalTrafficPolicy Local (Service Internal Traffic Policy).
        service("itl", "10.96.4.2", {"app": "only-b"}, internalTrafficPolicy="Local"),
        # Session affinity ClientIP (Virtual IPs: "Session affinity").
        service(
            "sticky",
            "10.96.6.1",
            {"app": "web"},
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        ),
    ]


def services_world() -> str:
    return manifests(*_docs())
