"""TLS, TCP and UDP listeners: TLSRoute by SNI, TCPRoute/UDPRoute per port, and
SNI/Host agreement on HTTPS listeners.

Spec: tlsroute_types.go (TLSRouteSpec.Hostnames match the SNI; listener/route
hostname intersection; "Core: Listener with protocol TLS and tls.mode
Passthrough. Extended: ... Terminate"), tcproute_types.go / udproute (v1 in v1.6;
"If unspecified or invalid ... the underlying implementation MUST actively reject
connection attempts to this backend ... Connection rejections must respect
weight"), gateway_types.go Listener.Hostname (SNI picks the listener; "If another
Listener has an exact match or more specific wildcard entry, the Gateway SHOULD
return a 421 ... If no other Listener matches the Host, the Gateway MUST return a
404"), ListenerTLSConfig.Mode ("Passthrough: ... The certificateRefs field is
ignored"), the TCPRoute guide ("Each listener selects exactly one TCPRoute").
Conformance: TLSRouteSimpleSameNamespace, TLSRouteHostnameIntersection,
TCPRouteMultipleRoutesAttachment, HTTPRouteHTTPSListenerDetectMisdirectedRequests.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import match_http, match_tcp, match_tls, select_tls_listener
from netlet.gateway.table import BackendState, Request
from tests.gateway.manifests import gateway, http_route, route, world

OLD, NEW = "2020-01-01T00:00:00Z", "2024-01-01T00:00:00Z"

TLS_GW = gateway(
    """
    - {name: pass, port: 443, protocol: TLS, hostname: '*.example.com', tls: {mode: Passthrough, certificateRefs: [{name: cert}]}, allowedRoutes: {namespaces: {from: All}}}
    - {name: term, port: 8443, protocol: TLS, tls: {certificateRefs: [{name: cert}]}, allowedRoutes: {namespaces: {from: All}}}
    - {name: db, port: 5432, protocol: TCP, allowedRoutes: {namespaces: {from: All}}}
    """
)


def tls_route(
    name: str,
    hostnames: str,
    backend: str = "web",
    created: str | None = None,
    section: str = "pass",
) -> str:
    return route(
        f"parentRefs: [{{name: gw, namespace: infra, sectionName: {section}}}]\nhostnames: {hostnames}\n"
        f"rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]",
        name=name,
        kind="TLSRoute",
        created=created,
    )


def tcp_route(name: str, backend: str, created: str, section: str = "db") -> str:
    return route(
        f"parentRefs: [{{name: gw, namespace: infra, sectionName: {section}}}]\nrules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]",
        name=name,
        kind="TCPRoute",
        created=created,
    )


@pytest.mark.parametrize(
    ("sni", "expected"),
    [
        pytest.param("db.example.com", "exact", id="a precise TLSRoute hostname wins for its SNI"),
        pytest.param("www.example.com", "wildcard", id="a wildcard TLSRoute takes other names"),
        pytest.param("a.b.example.com", "wildcard", id="a wildcard TLSRoute takes deeper names"),
        pytest.param("example.org", None, id="an SNI outside the listener hostname is refused"),
    ],
)
def test_tls_passthrough_routes_by_sni(sni: str, expected: str | None) -> None:
    w = world(
        TLS_GW,
        tls_route("exact", "[db.example.com]", "api"),
        tls_route("wildcard", "['*.example.com']"),
    )
    decision = match_tls(w.programs["infra/gw"], 443, sni)
    if expected is None:
        assert decision.refused
    else:
        assert decision.rule is not None and decision.rule.ref.route.name == expected


def test_on_a_shared_tls_hostname_the_older_route_wins() -> None:
    w = world(
        TLS_GW,
        tls_route("newer", "[db.example.com]", "api", NEW),
        tls_route("older", "[db.example.com]", "web", OLD),
    )
    decision = match_tls(w.programs["infra/gw"], 443, "db.example.com")
    assert decision.rule is not None and decision.rule.ref.route.name == "older"


def test_tls_route_hostnames_must_intersect_the_listener() -> None:
    w = world(TLS_GW, tls_route("r", "[db.example.org]"))
    condition = w.routes[0].parents[0].condition(ConditionType.ACCEPTED)
    assert condition is not None and condition.reason.value == "NoMatchingListenerHostname"


def test_passthrough_listeners_carry_no_certificates_and_terminate_ones_do() -> None:
    w = world(TLS_GW, tls_route("r", "[db.example.com]"))
    infos = {t.info.name: t.info for t in w.programs["infra/gw"].listeners}
    assert infos["pass"].tls is not None and infos["pass"].tls.mode == "Passthrough"
    assert infos["pass"].tls.certificates == ()
    assert infos["term"].tls is not None and infos["term"].tls.mode == "Terminate"
    assert [c.secret for c in infos["term"].tls.certificates] == ["infra/cert"]


def test_a_tcp_listener_forwards_to_the_oldest_route_and_reports_the_rest() -> None:
    w = world(TLS_GW, tcp_route("newer", "api", NEW), tcp_route("older", "web", OLD))
    decision = match_tcp(w.programs["infra/gw"], 5432)
    assert decision.rule is not None and decision.rule.ref.route.name == "older"
    assert all(r.parents[0].accepted for r in w.routes)
    assert [(n.code, n.name) for n in w.notes] == [("route-shadowed", "newer")]


def test_a_terminating_tls_listener_can_forward_a_tcp_route() -> None:
    w = world(TLS_GW, tcp_route("t", "web", OLD, section="term"))
    decision = match_tls(w.programs["infra/gw"], 8443, "anything.test")
    assert decision.rule is not None and decision.rule.ref.route.name == "t"


def test_an_invalid_l4_backend_is_refused_for_its_share() -> None:
    w = world(TLS_GW, tcp_route("t", "nope", OLD))
    decision = match_tcp(w.programs["infra/gw"], 5432)
    (backend,) = decision.backends
    assert backend.backend.state == BackendState.INVALID


def test_no_listener_on_the_port_refuses() -> None:
    w = world(TLS_GW)
    assert match_tcp(w.programs["infra/gw"], 1).refused


HTTPS_GW = gateway(
    """
    - {name: foo, port: 443, protocol: HTTPS, hostname: foo.example.com, tls: {certificateRefs: [{name: cert}]}, allowedRoutes: {namespaces: {from: All}}}
    - {name: wild, port: 443, protocol: HTTPS, hostname: '*.example.com', tls: {certificateRefs: [{name: cert}]}, allowedRoutes: {namespaces: {from: All}}}
    - {name: pass, port: 443, protocol: TLS, hostname: tls.example.org, tls: {mode: Passthrough}, allowedRoutes: {namespaces: {from: All}}}
    """
)


@pytest.mark.parametrize(
    ("sni", "host", "status", "listener"),
    [
        pytest.param(
            "foo.example.com",
            "foo.example.com",
            0,
            "foo",
            id="SNI and Host naming the same listener are served",
        ),
        pytest.param(
            "bar.example.com",
            "foo.example.com",
            421,
            None,
            id="a Host another listener owns is misdirected",
        ),
        pytest.param(
            "foo.example.com", "other.org", 404, None, id="a Host no listener matches is a 404"
        ),
        pytest.param(
            "bar.example.com",
            "baz.example.com",
            0,
            "wild",
            id="SNI and Host under one wildcard are served",
        ),
    ],
)
def test_https_sni_and_host_agree(sni: str, host: str, status: int, listener: str | None) -> None:
    w = world(HTTPS_GW, http_route(parents="[{name: gw, namespace: infra}]"))
    request = Request.from_url("GET", f"https://{host}/", sni=sni)
    decision = match_http(w.programs["infra/gw"], request)
    assert decision.status == status
    if listener is not None:
        assert decision.listener is not None and decision.listener.name == listener


@pytest.mark.parametrize(
    ("sni", "listener"),
    [
        pytest.param(
            "foo.example.com", "foo", id="a TLS connection for an HTTPS name lands on that listener"
        ),
        pytest.param(
            "tls.example.org", "pass", id="a TLS connection for a passthrough name lands there"
        ),
        pytest.param("nobody.test", None, id="a name no listener covers lands nowhere"),
    ],
)
def test_sni_selects_among_https_and_tls_listeners(sni: str, listener: str | None) -> None:
    w = world(HTTPS_GW, http_route(parents="[{name: gw, namespace: infra}]"))
    table = select_tls_listener(w.programs["infra/gw"], 443, sni)
    assert (table.info.name if table else None) == listener
