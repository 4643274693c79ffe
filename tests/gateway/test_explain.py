"""The explainer agrees with the matcher, and says what lost and why.

Spec: the precedence rules of HTTPRouteRule.Matches and HTTPRouteSpec.Hostnames
(see test_precedence); the explainer must never decide differently from
`match_http`, the one matching implementation.
"""

from __future__ import annotations

import pytest

from netlet.gateway.build import build_world
from netlet.gateway.explain import explain_http, find_listener
from netlet.gateway.findings import world_findings
from netlet.gateway.match import match_http
from netlet.gateway.table import Request
from tests.gateway.manifests import HTTP_ALL, gateway, http_route, load, world

RULES = (
    "- matches: [{path: {type: Exact, value: /api/v1}}]\n  backendRefs: [{name: api, port: 80}]\n"
    "- matches: [{path: {value: /api}, method: POST}]\n  backendRefs: [{name: api, port: 80}]\n"
    "- matches: [{path: {value: /api}, headers: [{name: x-beta, value: '1'}]}]\n  backendRefs: [{name: api, port: 80}]\n"
    "- matches: [{path: {value: /}}]\n  backendRefs: [{name: web, port: 80}]"
)


@pytest.mark.parametrize(
    ("method", "path", "headers", "winner", "losers"),
    [
        pytest.param(
            "GET",
            "/api/v2",
            (),
            3,
            {0: "path", 1: "method", 2: "header"},
            id="every higher rule that failed is listed with its failing condition",
        ),
        pytest.param(
            "POST", "/api/v2", (), 1, {0: "path"}, id="only rules above the winner are listed"
        ),
        pytest.param("GET", "/api/v1", (), 0, {}, id="the top rule winning leaves no losers"),
    ],
)
def test_losers_and_why(
    method: str,
    path: str,
    headers: tuple[tuple[str, str], ...],
    winner: int,
    losers: dict[int, str],
) -> None:
    w = world(HTTP_ALL, http_route(RULES))
    request = Request.from_url(method, f"http://a.example.com{path}", headers)
    explanation = explain_http(w.programs["infra/gw"], request)
    assert explanation.decision == match_http(w.programs["infra/gw"], request)
    assert (
        explanation.decision.entry is not None
        and explanation.decision.entry.rule.ref.index == winner
    )
    found = {loser.entry.rule.ref.index: loser.why.split()[0] for loser in explanation.losers}
    assert found == losers


def test_a_404_lists_every_candidate_rule() -> None:
    w = world(
        HTTP_ALL,
        http_route(
            "- matches: [{path: {type: Exact, value: /a}}]\n  backendRefs: [{name: web, port: 80}]"
        ),
    )
    explanation = explain_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/b")
    )
    assert explanation.decision.status == 404
    assert [loser.why for loser in explanation.losers] == ["path '/b' does not match Exact '/a'"]


def test_listener_checks_say_why_other_listeners_were_not_chosen() -> None:
    gw = gateway(
        """
        - {name: foo, port: 80, protocol: HTTP, hostname: foo.example.com, allowedRoutes: {namespaces: {from: All}}}
        - {name: any, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
        """
    )
    w = world(gw, http_route())
    explanation = explain_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://bar.example.com/")
    )
    checks = {c.listener.name: (c.chosen, c.why) for c in explanation.listeners}
    assert checks["any"][0] is True
    assert checks["foo"] == (False, "hostname foo.example.com does not match bar.example.com")


def test_a_named_listener_bypasses_selection() -> None:
    gw = gateway(
        """
        - {name: foo, port: 80, protocol: HTTP, hostname: foo.example.com, allowedRoutes: {namespaces: {from: All}}}
        - {name: any, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
        """
    )
    w = world(gw, http_route(parents="[{name: gw, namespace: infra, sectionName: foo}]"))
    program = w.programs["infra/gw"]
    assert find_listener(program, "foo") is not None and find_listener(program, "nope") is None
    explanation = explain_http(
        program, Request.from_url("GET", "http://bar.example.com/"), listener="foo"
    )
    assert explanation.decision.entry is not None
    with pytest.raises(KeyError):
        explain_http(program, Request.from_url("GET", "http://bar.example.com/"), listener="nope")


def test_findings_name_the_field_and_reason() -> None:
    state = load(
        gateway("- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: TCP}"),
        http_route(
            parents="[{name: gw, namespace: infra, sectionName: a}, {name: gw, namespace: infra, sectionName: nope}]"
        ),
    )
    findings = world_findings(state, build_world(state))
    by_code = {(d.code, d.field_path) for d in findings}
    assert ("gateway-listener-not-ready", "spec.listeners[0]") in by_code
    assert ("gateway-listener-not-ready", "spec.listeners[1]") in by_code
    assert ("gateway-route-not-accepted", "spec.parentRefs[1]") in by_code
    route_finding = next(d for d in findings if d.field_path == "spec.parentRefs[1]")
    assert "NoMatchingParent" in route_finding.message
    assert route_finding.origin is not None
