"""`netlet svc trace|table|slices` and the ENDPOINTS column of `netlet get svc -o wide`.

Written from: Virtual IPs and Service Proxies (what a trace shows), kubectl get
endpoints / get services -o wide (the ENDPOINTS column: ready addresses, three then
"+ N more..."), EndpointSlices (the slices shown).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from netlet.cli.main import app
from netlet.cli.svc import parse_destination
from tests.services.conventions import EXTERNAL, NODE_A, NODE_B, manifests, node, pod, service

runner = CliRunner()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(
        manifests(
            node("node-a", NODE_A, "zone-a"),
            node("node-b", NODE_B, "zone-b"),
            pod("web-1", "10.244.0.11", "node-a", {"app": "web"}),
            pod("web-2", "10.244.1.12", "node-b", {"app": "web"}),
            pod("web-3", "10.244.1.13", "node-b", {"app": "web"}),
            pod("web-4", "10.244.1.14", "node-b", {"app": "web"}),
            pod("sleepy", "10.244.0.20", "node-a", {"app": "sleepy"}, ready=False),
            pod("client", "10.244.0.50", "node-a", {"app": "client"}, ports=[]),
            service("web", "10.96.0.10", {"app": "web"}),
            service("sleepy", "10.96.0.20", {"app": "sleepy"}),
            service(
                "edge",
                "10.96.0.30",
                {"app": "web"},
                type="NodePort",
                externalTrafficPolicy="Local",
                ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}],
            ),
        )
    )
    return path


TRACES = [
    (
        "a pod to a ClusterIP reaches every endpoint",
        ["--from", "default/client", "--to", "10.96.0.10:80"],
        0,
        ["10.244.0.11:8080", "25.0%", "4 possible endpoint(s); masquerade: no"],
    ),
    (
        "no endpoints: REJECT and exit 1",
        ["--from", "default/client", "--to", "10.96.0.20:80"],
        1,
        ["no-endpoint-services", "result: REJECT"],
    ),
    (
        "an outside client on a Local NodePort",
        ["--from", EXTERNAL, "--to", f"{NODE_A}:30080/tcp"],
        0,
        ["10.244.0.11:8080", "100.0%", "node-a (local)"],
    ),
    (
        "--node picks where an outside client arrives",
        ["--from", EXTERNAL, "--to", "10.96.0.10:80", "--node", "node-b"],
        0,
        ["on node node-b", "masquerade: yes"],
    ),
    (
        "a node as source",
        ["--from", "node-b", "--to", "10.96.0.10:80"],
        0,
        ["node node-b (172.18.0.3)", "masquerade: yes"],
    ),
    (
        "not a service address",
        ["--from", "default/client", "--to", "10.244.1.12:8080"],
        1,
        ["result: no match"],
    ),
]


@pytest.mark.parametrize("args,code,fragments", [t[1:] for t in TRACES], ids=[t[0] for t in TRACES])
def test_trace(manifest: Path, args: list[str], code: int, fragments: list[str]) -> None:
    result = runner.invoke(app, ["svc", "trace", "-f", str(manifest), *args])
    assert result.exit_code == code, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_trace_json_is_machine_readable(manifest: Path) -> None:
    args = [
        "svc",
        "trace",
        "-f",
        str(manifest),
        "--from",
        "default/client",
        "--to",
        "10.96.0.10:80",
        "-o",
        "json",
    ]
    result = runner.invoke(app, args)
    data = json.loads(result.stdout)
    (hop,) = data["hops"]
    assert hop["service"] == "default/web:http/TCP"
    assert sorted(o["endpoint"] for o in hop["outcomes"]) == [
        "10.244.0.11:8080",
        "10.244.1.12:8080",
        "10.244.1.13:8080",
        "10.244.1.14:8080",
    ]
    assert {o["probability"] for o in hop["outcomes"]} == {0.25}
    assert hop["masquerade"] is False and hop["steps"][0]["chain"] == "services"


BAD = [
    ("a destination without a port", ["--from", "default/client", "--to", "10.96.0.10"], "--to"),
    (
        "an unknown protocol",
        ["--from", "default/client", "--to", "10.96.0.10:80/ICMP"],
        "unknown protocol",
    ),
    ("an unknown pod", ["--from", "default/ghost", "--to", "10.96.0.10:80"], "--from"),
    (
        "an unknown node",
        ["--from", "default/client", "--to", "10.96.0.10:80", "--node", "x"],
        "no node named 'x'",
    ),
]


@pytest.mark.parametrize("args,fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_trace_bad_input_exits_2(manifest: Path, args: list[str], fragment: str) -> None:
    result = runner.invoke(app, ["svc", "trace", "-f", str(manifest), *args])
    assert result.exit_code == 2
    assert fragment in result.output


@pytest.mark.parametrize(
    "text,expect",
    [
        ("10.96.0.10:53/UDP", ("10.96.0.10", 53, "UDP")),
        ("[fd00::1]:80", ("fd00::1", 80, "TCP")),
        ("192.0.2.1:443/sctp", ("192.0.2.1", 443, "SCTP")),
    ],
    ids=["IPv4 with protocol", "IPv6 in brackets defaults to TCP", "protocol in lower case"],
)
def test_parse_destination(text: str, expect: tuple[str, int, str]) -> None:
    ip, port, proto = parse_destination(text)
    assert (str(ip), port, proto.value) == expect


def test_table_shows_frontends_endpoints_and_verdicts(manifest: Path) -> None:
    result = runner.invoke(app, ["svc", "table", "-f", str(manifest), "--node", "node-a"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        "NodePort <node>:30080/TCP" in line and "Local" in line and "10.244.0.11:8080" in line
        for line in lines
    )
    assert any("ClusterIP 10.96.0.20:80/TCP" in line and "REJECT" in line for line in lines)
    assert "NodePorts on 172.18.0.2" in result.output


def test_table_yaml_lists_every_node(manifest: Path) -> None:
    result = runner.invoke(app, ["svc", "table", "-f", str(manifest), "-o", "yaml"])
    data = yaml.safe_load(result.stdout)
    assert [t["node"] for t in data] == ["node-a", "node-b"]
    edge = next(p for p in data[1]["servicePorts"] if p["name"] == "default/edge:http/TCP")
    assert [e["address"] for e in edge["localEndpoints"]] == [
        "10.244.1.12:8080",
        "10.244.1.13:8080",
        "10.244.1.14:8080",
    ]


def test_slices_yaml_shows_the_controllers_slices(manifest: Path) -> None:
    result = runner.invoke(app, ["svc", "slices", "-f", str(manifest), "-o", "yaml"])
    data = yaml.safe_load(result.stdout)
    web = [
        i for i in data["items"] if i["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    ]
    (slice_,) = web
    assert slice_["kind"] == "EndpointSlice" and slice_["addressType"] == "IPv4"
    assert slice_["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert slice_["endpoints"][0]["conditions"] == {
        "ready": True,
        "serving": True,
        "terminating": False,
    }


def test_get_services_wide_shows_ready_endpoints(manifest: Path) -> None:
    result = runner.invoke(app, ["get", "svc", "-o", "wide", "-f", str(manifest)])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[-1] == "ENDPOINTS"
    by_name = {row.split()[0]: row.split()[-1] for row in rows}
    assert by_name["sleepy"] == "<none>"
    web = next(row for row in rows if row.startswith("web "))
    assert web.endswith("10.244.0.11:8080,10.244.1.12:8080,10.244.1.13:8080 + 1 more...")
