"""GRPCRoute matching and precedence.

Spec: grpcroute_types.go GRPCRouteRule.Matches ("Precedence MUST be given to the
rule with the largest number of: Characters in a matching non-wildcard hostname;
Characters in a matching hostname; Characters in a matching service; Characters
in a matching method; Header matches", then route age, then
{namespace}/{name}, then the first rule; "If no matches are specified, the
implementation MUST match every gRPC request"), GRPCMethodMatch (Exact,
RegularExpression), GRPCBackendRef and GEP-1911 (appProtocol), and the v1.6 change
letting HTTPRoutes and GRPCRoutes share a hostname (CHANGELOG/1.6, #4598).
Conformance: GRPCExactMethodMatching, GRPCRouteHeaderMatching,
GRPCRouteListenerHostnameMatching.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import match_http
from netlet.gateway.table import Request
from tests.gateway.manifests import HTTP_ALL, http_route, route, world

OLD, NEW = "2020-01-01T00:00:00Z", "2024-01-01T00:00:00Z"


def grpc_route(
    rules: str, name: str = "g", created: str | None = None, hostnames: str | None = None
) -> str:
    hosts = f"\nhostnames: {hostnames}" if hostnames else ""
    return route(
        f"parentRefs: [{{name: gw, namespace: infra}}]{hosts}\nrules:\n{rules}",
        name=name,
        kind="GRPCRoute",
        created=created,
    )


def rule(match: str | None) -> str:
    matches = f"  matches: [{match}]\n" if match is not None else ""
    return f"- backendRefs: [{{name: api, port: 9090}}]\n{matches}"


def grpc_request(
    path: str, host: str = "grpc.example.com", headers: tuple[tuple[str, str], ...] = ()
) -> Request:
    return Request.from_url(
        "POST", f"http://{host}{path}", (("content-type", "application/grpc"), *headers)
    )


CASES = [
    pytest.param(
        [
            ("a", OLD, "{method: {service: helloworld.Greeter}}"),
            ("b", NEW, "{method: {service: helloworld.Greeter, method: SayHello}}"),
        ],
        "/helloworld.Greeter/SayHello",
        "b",
        id="a method match adds characters and wins",
    ),
    pytest.param(
        [
            ("a", OLD, "{method: {method: SayHello}}"),
            ("b", NEW, "{method: {service: helloworld.Greeter}}"),
        ],
        "/helloworld.Greeter/SayHello",
        "b",
        id="service characters outrank method characters",
    ),
    pytest.param(
        [
            ("a", OLD, "{method: {service: helloworld.Greeter}}"),
            ("b", NEW, "{method: {service: helloworld.Greeter}, headers: [{name: x, value: '1'}]}"),
        ],
        "/helloworld.Greeter/SayHello",
        "b",
        id="header matches break a service tie",
    ),
    pytest.param(
        [
            ("a", NEW, "{method: {service: helloworld.Greeter}}"),
            ("b", OLD, "{method: {service: helloworld.Greeter}}"),
        ],
        "/helloworld.Greeter/SayHello",
        "b",
        id="the older route wins a full tie",
    ),
    pytest.param(
        [("a", OLD, "{method: {service: other.Service}}"), ("b", NEW, None)],
        "/helloworld.Greeter/SayHello",
        "b",
        id="a rule without matches takes every request",
    ),
    pytest.param(
        [
            ("a", OLD, "{method: {type: RegularExpression, service: 'hello.*', method: 'Say.*'}}"),
            ("b", NEW, None),
        ],
        "/helloworld.Greeter/SayHello",
        "a",
        id="a regular expression method match matches",
    ),
    pytest.param(
        [("a", OLD, "{method: {service: helloworld.greeter}}"), ("b", NEW, None)],
        "/helloworld.Greeter/SayHello",
        "b",
        id="exact service matching is case-sensitive",
    ),
]


@pytest.mark.parametrize(("routes", "path", "winner"), CASES)
def test_grpc_precedence(routes: list[tuple[str, str, str | None]], path: str, winner: str) -> None:
    w = world(HTTP_ALL, *(grpc_route(rule(m), name=n, created=c) for n, c, m in routes))
    decision = match_http(w.programs["infra/gw"], grpc_request(path, headers=(("x", "1"),)))
    assert decision.entry is not None and decision.grpc
    assert decision.entry.rule.ref.route.name == winner


def test_grpc_hostname_precedence() -> None:
    w = world(
        HTTP_ALL,
        grpc_route(rule(None), name="any", created=OLD),
        grpc_route(rule(None), name="precise", created=NEW, hostnames="[grpc.example.com]"),
    )
    decision = match_http(w.programs["infra/gw"], grpc_request("/a.B/C"))
    assert decision.entry is not None and decision.entry.rule.ref.route.name == "precise"


@pytest.mark.parametrize(
    ("request_", "kind"),
    [
        pytest.param(
            grpc_request("/helloworld.Greeter/SayHello"),
            "GRPCRoute",
            id="a gRPC request uses the GRPCRoute",
        ),
        pytest.param(
            Request.from_url("GET", "http://grpc.example.com/helloworld.Greeter/SayHello"),
            "HTTPRoute",
            id="a plain HTTP request uses the HTTPRoute",
        ),
        pytest.param(
            grpc_request("/other.Service/Call"),
            "HTTPRoute",
            id="a gRPC request no GRPCRoute matches falls back to HTTPRoutes",
        ),
    ],
)
def test_http_and_grpc_routes_share_a_listener(request_: Request, kind: str) -> None:
    w = world(HTTP_ALL, http_route(), grpc_route(rule("{method: {service: helloworld.Greeter}}")))
    decision = match_http(w.programs["infra/gw"], request_)
    assert decision.entry is not None and decision.entry.rule.ref.route.kind == kind


def test_an_unmatched_grpc_request_is_marked_grpc() -> None:
    w = world(HTTP_ALL, grpc_route(rule("{method: {service: helloworld.Greeter}}")))
    decision = match_http(w.programs["infra/gw"], grpc_request("/other.Service/Call"))
    assert (decision.status, decision.grpc) == (404, True)


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        pytest.param(9090, ("True", "ResolvedRefs"), id="an h2c Service port carries gRPC"),
        pytest.param(80, ("True", "ResolvedRefs"), id="a port without appProtocol carries gRPC"),
        pytest.param(3306, ("False", "UnsupportedProtocol"), id="a mysql port cannot carry gRPC"),
    ],
)
def test_grpc_backend_app_protocol(port: int, expected: tuple[str, str]) -> None:
    w = world(HTTP_ALL, grpc_route(f"- backendRefs: [{{name: api, port: {port}}}]"))
    condition = w.routes[0].parents[0].condition(ConditionType.RESOLVED_REFS)
    assert condition is not None and (condition.status, condition.reason.value) == expected


def test_grpc_filters_modify_headers() -> None:
    rules = (
        "- backendRefs: [{name: api, port: 9090}]\n"
        "  filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-grpc, value: 'yes'}]}}]"
    )
    w = world(HTTP_ALL, grpc_route(rules))
    decision = match_http(w.programs["infra/gw"], grpc_request("/a.B/C"))
    assert ("x-grpc", "yes") in decision.request.headers
