"""`netlet gateway status`, `netlet gateway route` and the gateway findings of
`netlet check`: output forms and exit codes (0 ok, 1 finding / no route, 2 bad
input), on the shop example and small broken inputs.

Spec for the values shown: the status objects are RouteStatus / GatewayStatus of
apis/v1 in Kubernetes form (metav1.Condition with observedGeneration and
lastTransitionTime); routing follows the precedence rules tested elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from netlet.cli.main import app
from tests.gateway.manifests import EXAMPLE, gateway, http_route

runner = CliRunner()
SHOP = str(EXAMPLE)


def test_status_table_lists_gateways_listeners_and_route_parents() -> None:
    result = runner.invoke(app, ["gateway", "status", "-f", SHOP])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(
        line.split()[:5] == ["infra/web", "netlet", "192.0.2.20", "True", "True"] for line in lines
    )
    route_lines = [line for line in lines if line.startswith("HTTPRoute shop/")]
    assert len(route_lines) == 2 and all(
        line.split()[4:7] == ["True", "True", "Accepted"] for line in route_lines
    )


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_status_in_kubernetes_form(fmt: str) -> None:
    result = runner.invoke(app, ["gateway", "status", "-f", SHOP, "-o", fmt])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout) if fmt == "yaml" else json.loads(result.stdout)
    assert data["kind"] == "List"
    kinds = sorted({item["kind"] for item in data["items"]})
    assert kinds == ["Gateway", "GatewayClass", "HTTPRoute"]
    route = next(i for i in data["items"] if i["metadata"]["name"] == "storefront")
    (parent,) = route["status"]["parents"]
    assert parent["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "infra",
        "name": "web",
        "sectionName": "https",
    }
    for condition in parent["conditions"]:
        assert set(condition) == {
            "type",
            "status",
            "reason",
            "message",
            "observedGeneration",
            "lastTransitionTime",
        }


def test_route_explains_a_rewrite_and_the_backends() -> None:
    result = runner.invoke(
        app,
        [
            "gateway",
            "route",
            "-f",
            SHOP,
            "GET https://shop.example.com/api/items?x=1",
            "-H",
            "x-a: 1",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "listener:  Gateway infra/web listener https (HTTPS/443)" in out
    assert "rule:      HTTPRoute shop/storefront rules[0]" in out
    assert "result:    forward GET /items?x=1 (Host: shop.example.com)" in out
    assert "x-a: 1" in out
    assert "Service shop/api:80 weight 1 (100.0%) valid" in out


def test_route_shows_weights_and_losers() -> None:
    result = runner.invoke(
        app, ["gateway", "route", "-f", SHOP, "GET https://shop.example.com/cart"]
    )
    assert result.exit_code == 0, result.output
    assert "weight 90 (90.0%)" in result.stdout and "weight 10 (10.0%)" in result.stdout
    assert "higher-precedence rules that did not match (1):" in result.stdout
    assert "does not match PathPrefix '/api'" in result.stdout


def test_route_shows_a_redirect() -> None:
    result = runner.invoke(
        app, ["gateway", "route", "-f", SHOP, "http://www.shop.example.com/x?y=2"]
    )
    assert result.exit_code == 0, result.output
    assert "result:    301 redirect to https://shop.example.com/x?y=2" in result.stdout


def test_route_exits_1_when_nothing_matches() -> None:
    result = runner.invoke(app, ["gateway", "route", "-f", SHOP, "GET http://nobody.example.org/"])
    assert result.exit_code == 1
    assert "404" in result.stdout


def test_route_json_output() -> None:
    result = runner.invoke(
        app, ["gateway", "route", "-f", SHOP, "-o", "json", "GET https://shop.example.com/"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["action"] == "forward"
    assert [b["share"] for b in data["backends"]] == [90.0, 10.0]
    assert data["losers"][0]["rule"].startswith("HTTPRoute shop/storefront rules[0]")


def test_route_grpc_option_builds_a_grpc_request(tmp_path: Path) -> None:
    path = tmp_path / "grpc.yaml"
    grpc = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: infra}\n"
        "spec:\n  parentRefs: [{name: gw}]\n  rules: [{matches: [{method: {service: helloworld.Greeter}}], backendRefs: [{name: api, port: 9090}]}]"
    )
    path.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: netlet}\n"
        "spec: {controllerName: netlet.dev/gateway-controller}\n---\n"
        + gateway("- {name: l, port: 80, protocol: HTTP}")
        + "\n---\n"
        + grpc
        + "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: infra}\n"
        "spec: {selector: {app: api}, ports: [{port: 9090, appProtocol: kubernetes.io/h2c}]}\n"
    )
    result = runner.invoke(
        app,
        [
            "gateway",
            "route",
            "-f",
            str(path),
            "--grpc",
            "helloworld.Greeter/SayHello",
            "http://a.example.com",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "route:     GRPCRoute infra/g" in result.stdout
    assert "result:    forward POST /helloworld.Greeter/SayHello" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["GET shop.example.com/"],
            "give a full URL",
            id="a request without a scheme is bad input",
        ),
        pytest.param(
            ["--gateway", "infra/nope", "GET https://shop.example.com/"],
            "Gateway infra/nope does not exist",
            id="an unknown Gateway is bad input",
        ),
        pytest.param(
            ["-H", "no-colon", "GET https://shop.example.com/"],
            "expected 'Name: value'",
            id="a header without a colon is bad input",
        ),
        pytest.param(
            ["--grpc", "nomethod", "http://shop.example.com"],
            "expected SERVICE/METHOD",
            id="a gRPC target without a method is bad input",
        ),
    ],
)
def test_route_bad_input_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["gateway", "route", "-f", SHOP, *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_check_reports_gateway_problems_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: netlet}\n"
        "spec: {controllerName: netlet.dev/gateway-controller}\n---\n"
        + gateway("- {name: l, port: 80, protocol: HTTP}")
        + "\n---\n"
        + http_route(parents="[{name: gw, namespace: infra}]")
    )
    result = runner.invoke(app, ["check", "-f", str(path)])
    assert result.exit_code == 1
    assert (
        "HTTPRoute app/r: spec.parentRefs[0]: Gateway infra/gw: Accepted=False (NotAllowedByListeners)"
        in result.stderr
    )
