"""backendRefs: resolution, ResolvedRefs reasons, weights, 500 vs 503.

Spec: httproute_types.go HTTPBackendRef ("A BackendRef is invalid if: ... unknown
or unsupported kind -> InvalidKind; resource that does not exist ->
BackendNotFound; another namespace not allowed by a ReferenceGrant ->
RefNotPermitted"), HTTPRouteRule.BackendRefs ("If *all* entries in BackendRefs
are invalid, and there are also no filters ... 500"; "the proportion of
requests that would otherwise have been routed to an invalid backend MUST
receive a 500"; "a Service that has no ready endpoints ... SHOULD return a
503"), BackendRef.Weight ("weight/(sum of all weights)"; "If weight is set to 0,
no traffic should be forwarded for this entry"), BackendObjectReference
(ExternalName SHOULD NOT be supported), GEP-1911 appProtocol ->
UnsupportedProtocol, referencegrant_types.go. Conformance:
HTTPRouteInvalidBackendRefUnknownKind, HTTPRouteInvalidNonExistentBackendRef,
HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteInvalidReferenceGrant,
HTTPRouteReferenceGrant, HTTPRouteWeight.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import Action, match_http, pick_backend
from netlet.gateway.table import BackendState, Request
from tests.gateway.manifests import HTTP_ALL, dedent, http_route, route, world

GRANT = """
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {{name: g, namespace: {namespace}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: app}}]
  to: [{{group: '', kind: Service{name}}}]
"""


@pytest.mark.parametrize(
    ("ref", "grant", "state", "resolved"),
    [
        pytest.param(
            "{name: web, port: 80}",
            None,
            BackendState.VALID,
            ("True", "ResolvedRefs"),
            id="a local Service port resolves",
        ),
        pytest.param(
            "{name: nope, port: 80}",
            None,
            BackendState.INVALID,
            ("False", "BackendNotFound"),
            id="a missing Service is BackendNotFound",
        ),
        pytest.param(
            "{name: web, port: 8080}",
            None,
            BackendState.INVALID,
            ("False", "BackendNotFound"),
            id="a missing Service port is BackendNotFound",
        ),
        pytest.param(
            "{group: multicluster.x-k8s.io, kind: ServiceImport, name: web, port: 80}",
            None,
            BackendState.INVALID,
            ("False", "InvalidKind"),
            id="an unsupported kind is InvalidKind",
        ),
        pytest.param(
            "{name: ext, port: 80}",
            None,
            BackendState.INVALID,
            ("False", "InvalidKind"),
            id="an ExternalName Service is not a backend",
        ),
        pytest.param(
            "{name: api, port: 3306}",
            None,
            BackendState.INVALID,
            ("False", "UnsupportedProtocol"),
            id="an appProtocol HTTP cannot carry is UnsupportedProtocol",
        ),
        pytest.param(
            "{name: empty, port: 80}",
            None,
            BackendState.NO_ENDPOINTS,
            ("True", "ResolvedRefs"),
            id="a Service without ready endpoints resolves but answers 503",
        ),
        pytest.param(
            "{name: remote, namespace: other, port: 80}",
            None,
            BackendState.INVALID,
            ("False", "RefNotPermitted"),
            id="another namespace without a grant is RefNotPermitted",
        ),
        pytest.param(
            "{name: remote, namespace: other, port: 80}",
            ("other", ""),
            BackendState.VALID,
            ("True", "ResolvedRefs"),
            id="a grant for every Service allows another namespace",
        ),
        pytest.param(
            "{name: remote, namespace: other, port: 80}",
            ("other", ", name: remote"),
            BackendState.VALID,
            ("True", "ResolvedRefs"),
            id="a grant naming the Service allows it",
        ),
        pytest.param(
            "{name: remote, namespace: other, port: 80}",
            ("other", ", name: else"),
            BackendState.INVALID,
            ("False", "RefNotPermitted"),
            id="a grant naming another Service does not allow it",
        ),
        pytest.param(
            "{name: remote, namespace: other, port: 80}",
            ("app", ""),
            BackendState.INVALID,
            ("False", "RefNotPermitted"),
            id="a grant in the route's own namespace does not count",
        ),
    ],
)
def test_backend_resolution(
    ref: str, grant: tuple[str, str] | None, state: BackendState, resolved: tuple[str, str]
) -> None:
    docs = [HTTP_ALL, http_route(f"- backendRefs: [{ref}]")]
    if grant is not None:
        docs.append(dedent(GRANT.format(namespace=grant[0], name=grant[1])))
    w = world(*docs)
    condition = w.routes[0].parents[0].condition(ConditionType.RESOLVED_REFS)
    assert condition is not None and (condition.status, condition.reason.value) == resolved
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    (backend,) = decision.backends
    assert backend.backend.state == state
    expected_code = {
        BackendState.VALID: None,
        BackendState.INVALID: 500,
        BackendState.NO_ENDPOINTS: 503,
    }[state]
    assert backend.backend.status_code == expected_code


def test_an_invalid_backend_keeps_the_route_accepted() -> None:
    w = world(HTTP_ALL, http_route("- backendRefs: [{name: nope, port: 80}]"))
    parent = w.routes[0].parents[0]
    assert parent.accepted


def test_invalid_backend_gets_its_weighted_share_of_500s() -> None:
    w = world(
        HTTP_ALL,
        http_route(
            "- backendRefs: [{name: web, port: 80, weight: 3}, {name: nope, port: 80, weight: 1}]"
        ),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    draws = [pick_backend(decision.backends, i / 1000) for i in range(1000)]
    errors = sum(1 for d in draws if d is not None and d.backend.status_code == 500)
    assert errors == 250


def test_zero_weight_backends_get_no_traffic() -> None:
    w = world(
        HTTP_ALL,
        http_route(
            "- backendRefs: [{name: web, port: 80, weight: 0}, {name: api, port: 80, weight: 2}]"
        ),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    chosen = {pick_backend(decision.backends, i / 100).backend.key.name for i in range(100)}  # type: ignore[union-attr]
    assert chosen == {"api"}


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(
            "- backendRefs: [{name: web, port: 80, weight: 0}]",
            id="a rule whose weights are all zero answers 500",
        ),
        pytest.param(
            "- matches: [{path: {value: /}}]",
            id="a rule without backendRefs or redirect answers 500",
        ),
    ],
)
def test_rules_with_nowhere_to_send_answer_500(rule: str) -> None:
    w = world(HTTP_ALL, http_route(rule))
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    assert (decision.action, decision.status) == (Action.RESPOND, 500)


def test_endpoints_come_from_pods_with_named_target_ports() -> None:
    w = world(HTTP_ALL, http_route())
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    assert [str(e) for e in decision.backends[0].backend.endpoints] == [
        "10.244.1.10:8080",
        "10.244.1.11:8080",
    ]


def test_unready_pods_are_not_endpoints() -> None:
    not_ready = dedent(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: web-3, namespace: app, labels: {app: web}}
        spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
        status: {podIP: 10.244.1.12, conditions: [{type: Ready, status: 'False'}]}
        """
    )
    w = world(HTTP_ALL, http_route(), not_ready)
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    assert "10.244.1.12:8080" not in [str(e) for e in decision.backends[0].backend.endpoints]


def test_endpoint_slices_are_used_when_present() -> None:
    slices = dedent(
        """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-abc, namespace: app, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{name: http, port: 9999}]
        endpoints:
        - addresses: [10.9.9.9]
        - addresses: [10.9.9.8]
          conditions: {ready: false}
        """
    )
    w = world(HTTP_ALL, http_route(), slices)
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    backend = decision.backends[0].backend
    assert [str(e) for e in backend.endpoints] == ["10.9.9.9:9999"]
    assert "EndpointSlice" in backend.message


def test_resolved_refs_lists_every_problem_with_the_first_reason() -> None:
    w = world(
        HTTP_ALL,
        http_route(
            "- backendRefs: [{name: nope, port: 80}, {name: remote, namespace: other, port: 80}]"
        ),
    )
    condition = w.routes[0].parents[0].condition(ConditionType.RESOLVED_REFS)
    assert condition is not None
    assert condition.reason.value == "BackendNotFound"
    assert (
        "rules[0].backendRefs[0]" in condition.message
        and "rules[0].backendRefs[1]" in condition.message
    )


def test_udp_routes_use_the_udp_service_port() -> None:
    gw = dedent(
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: infra}
        spec:
          gatewayClassName: netlet
          listeners: [{name: dns, port: 53, protocol: UDP, allowedRoutes: {namespaces: {from: All}}}]
        """
    )
    w = world(
        gw,
        route(
            "parentRefs: [{name: gw, namespace: infra}]\nrules: [{backendRefs: [{name: api, port: 53}]}]",
            kind="UDPRoute",
        ),
    )
    from netlet.gateway.match import match_udp

    decision = match_udp(w.programs["infra/gw"], 53)
    (backend,) = decision.backends
    assert backend.backend.state == BackendState.VALID
    assert [str(e) for e in backend.backend.endpoints] == ["10.244.1.20:53"]
