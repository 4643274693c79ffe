"""Bad Service input and services findings in `netlet check`: each names the file, the
object and the field.

Written from: Service (concepts/services-networking/service): "Choosing your own port"
for NodePorts (range, collisions), "Choosing your own IP address" (inside the service
CIDR), multi-port Services, named targetPorts ("Port definitions"), healthCheckNodePort;
EndpointSlices: ownership (kubernetes.io/service-name); Topology Aware Routing /
Traffic Distribution.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlet.cli.main import app
from netlet.services.findings import find_service_problems
from tests.services.conventions import Doc, endpoint_slice, load, manifests, node, pod, service

runner = CliRunner()

WEB_POD = pod("web-1", "10.244.0.11", "node-a", {"app": "web"})

# (id, documents, exit code, code or None, fragments of the message line)
CASES: list[tuple[str, list[Doc], int, list[str]]] = [
    (
        "a targetPort name no selected pod declares",
        [
            WEB_POD,
            service(
                "web",
                "10.96.0.10",
                {"app": "web"},
                ports=[{"name": "h", "port": 80, "targetPort": "grpc"}],
            ),
        ],
        1,
        ["Service default/web", "spec.ports[0].targetPort", "'grpc'", "has no endpoints"],
    ),
    (
        "a targetPort name some selected pods lack",
        [
            WEB_POD,
            pod(
                "web-2",
                "10.244.0.12",
                "node-a",
                {"app": "web"},
                ports=[{"name": "other", "containerPort": 1}],
            ),
            service("web", "10.96.0.10", {"app": "web"}),
        ],
        1,
        ["spec.ports[0].targetPort", "default/web-2", "left out of port 80"],
    ),
    (
        "a nodePort outside the node port range",
        [
            service(
                "np",
                "10.96.0.10",
                {"app": "web"},
                type="NodePort",
                ports=[{"port": 80, "nodePort": 80}],
            )
        ],
        2,
        ["Service default/np", "spec.ports[0].nodePort", "not in the valid range", "30000-32767"],
    ),
    (
        "a nodePort used by two Services",
        [
            service(
                "np1",
                "10.96.0.10",
                {"app": "web"},
                type="NodePort",
                ports=[{"port": 80, "nodePort": 30001}],
            ),
            service(
                "np2",
                "10.96.0.11",
                {"app": "web"},
                type="NodePort",
                ports=[{"port": 80, "nodePort": 30001}],
            ),
        ],
        2,
        ["Service default/np2", "spec.ports[0].nodePort", "already allocated"],
    ),
    (
        "a nodePort twice in one Service for the same protocol",
        [
            service(
                "np",
                "10.96.0.10",
                {"app": "web"},
                type="NodePort",
                ports=[
                    {"name": "a", "port": 80, "nodePort": 30001},
                    {"name": "b", "port": 81, "nodePort": 30001},
                ],
            )
        ],
        2,
        ["Service default/np", "ports[1].nodePort", "Duplicate value: 30001"],
    ),
    (
        "a clusterIP outside the service CIDR",
        [WEB_POD, service("web", "192.168.7.7", {"app": "web"})],
        1,
        ["Service default/web", "spec.clusterIPs[0]", "outside the service CIDR 10.96.0.0/12"],
    ),
    (
        "the same port and protocol twice in one Service",
        [
            service(
                "web",
                "10.96.0.10",
                {"app": "web"},
                ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}],
            )
        ],
        2,
        ["Service default/web", "spec.ports", "duplicate"],
    ),
    (
        "two Services claiming one externalIP and port",
        [
            WEB_POD,
            service("a", "10.96.0.10", {"app": "web"}, externalIPs=["192.0.2.5"]),
            service("b", "10.96.0.11", {"app": "web"}, externalIPs=["192.0.2.5"]),
        ],
        1,
        [
            "Service default/b",
            "spec.externalIPs",
            "192.0.2.5:80/TCP is claimed by default/a",
            "default/b",
        ],
    ),
    (
        "a healthCheckNodePort that is another Service's nodePort",
        [
            WEB_POD,
            service(
                "a-np",
                "10.96.0.10",
                {"app": "web"},
                type="NodePort",
                ports=[{"port": 80, "nodePort": 30500}],
            ),
            service(
                "b-lb",
                "10.96.0.11",
                {"app": "web"},
                type="LoadBalancer",
                externalTrafficPolicy="Local",
                healthCheckNodePort=30500,
            ),
        ],
        2,
        [
            "Service default/b-lb",
            "spec.healthCheckNodePort",
            "30500: provided port is already allocated",
        ],
    ),
    (
        "a Service whose selector matches no pod",
        [service("web", "10.96.0.10", {"app": "nobody"})],
        1,
        ["Service default/web", "spec.ports[0]", "selector app=nobody matches no pod", "rejected"],
    ),
    (
        "an EndpointSlice naming a Service that does not exist",
        [endpoint_slice("ghost-1", "ghost", [{"addresses": ["10.1.0.1"]}], [{"port": 80}])],
        1,
        ["EndpointSlice default/ghost-1", "metadata.labels", "default/ghost, which does not exist"],
    ),
    (
        "an EndpointSlice port that matches no Service port",
        [
            service("manual", "10.96.0.10", None, ports=[{"name": "https", "port": 443}]),
            endpoint_slice(
                "manual-1", "manual", [{"addresses": ["10.1.0.1"]}], [{"name": "http", "port": 80}]
            ),
        ],
        1,
        [
            "EndpointSlice default/manual-1",
            "ports[0].name",
            "matches no port of Service default/manual",
        ],
    ),
    (
        "trafficDistribution with a node lacking a zone label",
        [
            node("node-a", "172.18.0.2"),
            WEB_POD,
            service("web", "10.96.0.10", {"app": "web"}, trafficDistribution="PreferClose"),
        ],
        1,
        ["spec.trafficDistribution", "node(s) node-a have no topology.kubernetes.io/zone label"],
    ),
    (
        "the topology-mode annotation",
        [
            node("node-a", "172.18.0.2", "zone-a"),
            WEB_POD,
            service(
                "web",
                "10.96.0.10",
                {"app": "web"},
                annotations={"service.kubernetes.io/topology-mode": "Auto"},
            ),
        ],
        1,
        ["metadata.annotations", "topology-mode Auto", "not modelled"],
    ),
    (
        "a healthy Service has no finding",
        [
            node("node-a", "172.18.0.2", "zone-a"),
            WEB_POD,
            service("web", "10.96.0.10", {"app": "web"}),
        ],
        0,
        ["0 error(s), 0 warning(s)"],
    ),
]


@pytest.mark.parametrize("docs,code,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_netlet_check(tmp_path: Path, docs: list[Doc], code: int, fragments: list[str]) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(manifests(*docs))
    result = runner.invoke(app, ["check", "-f", str(path)])
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if all(f in line for f in fragments)]
    assert lines, result.output
    if code:
        assert str(path) in lines[0]  # the file is named


def test_local_policy_without_local_endpoints_is_information_only() -> None:
    state = load(
        node("node-a", "172.18.0.2", "zone-a"),
        node("node-b", "172.18.0.3", "zone-b"),
        WEB_POD,
        service("web", "10.96.0.10", {"app": "web"}, internalTrafficPolicy="Local"),
    )
    (finding,) = find_service_problems(state)
    assert (finding.code, finding.severity.value) == ("local-policy-no-local-endpoints", "info")
    assert "node(s) node-b" in finding.message
