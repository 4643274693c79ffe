"""Hostname matching and intersection.

Spec: apis/v1 Listener.Hostname ("Hostnames that are prefixed with a wildcard
label (`*.`) are interpreted as a suffix match ... `*.example.com` would match both
`test.example.com`, and `foo.test.example.com`, but not `example.com`"; listeners
distinct only by hostname match "from the most specific to least specific"), and
HTTPRouteSpec.Hostnames (listener/route intersection examples; precedence "to
rules from the HTTPRoute with the largest number of characters in a matching
non-wildcard hostname", then "in a matching hostname").
"""

from __future__ import annotations

import pytest

from netlet.gateway.hostnames import (
    host_matches,
    hostnames_intersect,
    listener_specificity,
    normalize_host,
    route_host_precedence,
    route_hostnames_on_listener,
)
from netlet.gateway.match import match_http
from netlet.gateway.table import Request
from tests.gateway.manifests import gateway, http_route, world


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        pytest.param("*.example.com", "test.example.com", True, id="a wildcard matches one label"),
        pytest.param(
            "*.example.com", "foo.test.example.com", True, id="a wildcard matches several labels"
        ),
        pytest.param(
            "*.example.com", "example.com", False, id="a wildcard does not match its own suffix"
        ),
        pytest.param(
            "*.example.com", "badexample.com", False, id="a wildcard matches whole labels only"
        ),
        pytest.param(
            "foo.example.com", "foo.example.com", True, id="a precise name matches itself"
        ),
        pytest.param(
            "foo.example.com", "bar.example.com", False, id="a precise name matches nothing else"
        ),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        # The HTTPRouteSpec.Hostnames examples, one per line of the doc comment.
        pytest.param(
            "test.example.com",
            ("test.example.com",),
            ("test.example.com",),
            id="a listener name matches the same route name",
        ),
        pytest.param(
            "test.example.com",
            ("*.example.com",),
            ("*.example.com",),
            id="a listener name matches a route wildcard",
        ),
        pytest.param(
            "*.example.com",
            ("foo.test.example.com",),
            ("foo.test.example.com",),
            id="a listener wildcard matches a deeper route name",
        ),
        pytest.param(
            "*.example.com", ("*.example.com",), ("*.example.com",), id="equal wildcards intersect"
        ),
        pytest.param(
            "*.example.com",
            ("example.com",),
            None,
            id="a listener wildcard does not match the bare domain",
        ),
        pytest.param(
            "*.example.com",
            ("test.example.net",),
            None,
            id="a listener wildcard does not match another domain",
        ),
        pytest.param(
            "*.example.com",
            ("test.example.com", "test.example.net"),
            ("test.example.com",),
            id="route hostnames outside the listener are ignored",
        ),
        pytest.param(
            "*.example.com",
            ("*.foo.example.com",),
            ("*.foo.example.com",),
            id="a narrower route wildcard intersects",
        ),
        pytest.param(
            None,
            ("a.example.com",),
            ("a.example.com",),
            id="a listener without hostname keeps the route hostnames",
        ),
        pytest.param(
            "a.example.com", (), (), id="a route without hostnames takes every host of the listener"
        ),
    ],
)
def test_route_hostnames_on_listener(
    listener: str | None, route: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    assert route_hostnames_on_listener(listener, route) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("*.a.com", "*.b.a.com", True, id="nested wildcards intersect"),
        pytest.param("*.a.com", "*.b.com", False, id="unrelated wildcards do not intersect"),
        pytest.param("x.a.com", "*.a.com", True, id="a name intersects a wildcard covering it"),
    ],
)
def test_hostnames_intersect_is_symmetric(a: str, b: str, expected: bool) -> None:
    assert hostnames_intersect(a, b) is expected
    assert hostnames_intersect(b, a) is expected


def test_listeners_sort_most_specific_first() -> None:
    # GatewaySpec.Listeners: exact before wildcard before none; more labels right of
    # the wildcard first ("*.foo.example.com" before "*.example.com").
    names = ["", "*.example.com", "foo.example.com", "*.foo.example.com"]
    ordered = sorted(names, key=listener_specificity)
    assert ordered == ["foo.example.com", "*.foo.example.com", "*.example.com", ""]


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        pytest.param("Example.COM:8080", "example.com", id="the Host port and case are ignored"),
        pytest.param("[::1]:443", "::1", id="an IPv6 literal loses its brackets and port"),
        pytest.param("example.com.", "example.com", id="a trailing dot is ignored"),
    ],
)
def test_normalize_host(authority: str, expected: str) -> None:
    assert normalize_host(authority) == expected


def test_route_precedence_counts_precise_then_any_characters() -> None:
    assert route_host_precedence(("foo.example.com", "*.example.com"), "foo.example.com") == (
        15,
        15,
    )
    assert route_host_precedence(("*.example.com",), "foo.example.com") == (0, 13)
    assert route_host_precedence((), "foo.example.com") == (0, 0)


LISTENER_HOSTS = gateway(
    """
    - {name: exact, port: 80, protocol: HTTP, hostname: foo.example.com, allowedRoutes: {namespaces: {from: All}}}
    - {name: wild, port: 80, protocol: HTTP, hostname: '*.example.com', allowedRoutes: {namespaces: {from: All}}}
    - {name: any, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
    """
)


@pytest.mark.parametrize(
    ("host", "route"),
    [
        pytest.param("foo.example.com", "to-exact", id="the exact listener wins for its host"),
        pytest.param(
            "bar.example.com", "to-wild", id="the wildcard listener takes other subdomains"
        ),
        pytest.param("example.org", "to-any", id="the listener without hostname takes the rest"),
    ],
)
def test_listener_isolation_picks_the_most_specific_listener(host: str, route: str) -> None:
    w = world(
        LISTENER_HOSTS,
        http_route(name="to-exact", parents="[{name: gw, namespace: infra, sectionName: exact}]"),
        http_route(name="to-wild", parents="[{name: gw, namespace: infra, sectionName: wild}]"),
        http_route(name="to-any", parents="[{name: gw, namespace: infra, sectionName: any}]"),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", f"http://{host}/"))
    assert decision.entry is not None
    assert decision.entry.rule.ref.route.name == route


def test_no_intersecting_hostname_is_no_matching_listener_hostname() -> None:
    # HTTPRouteSpec.Hostnames: "If both the Listener and HTTPRoute have specified
    # hostnames, and none match ... the HTTPRoute is not accepted."
    w = world(
        gateway(
            "- {name: l, port: 80, protocol: HTTP, hostname: '*.example.com', allowedRoutes: {namespaces: {from: All}}}"
        ),
        http_route(hostnames="[example.com, test.example.net]"),
    )
    parent = w.routes[0].parents[0]
    accepted = parent.conditions[0]
    assert (accepted.status, accepted.reason) == ("False", "NoMatchingListenerHostname")


@pytest.mark.parametrize(
    ("host", "winner"),
    [
        pytest.param(
            "foo.example.com", "precise", id="a precise route hostname beats a wildcard one"
        ),
        pytest.param(
            "bar.foo.example.com", "deep-wildcard", id="a longer wildcard beats a shorter one"
        ),
        pytest.param(
            "bar.example.com", "wildcard", id="a wildcard beats a route without hostnames"
        ),
        pytest.param("example.org", "catch-all", id="a route without hostnames takes the rest"),
    ],
)
def test_route_hostname_precedence_across_routes(host: str, winner: str) -> None:
    # All four routes match "/" with equal specificity; hostname precedence decides.
    w = world(
        gateway("- {name: l, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}"),
        http_route(name="catch-all", created="2020-01-01T00:00:00Z"),
        http_route(name="wildcard", hostnames="['*.example.com']", created="2021-01-01T00:00:00Z"),
        http_route(
            name="deep-wildcard", hostnames="['*.foo.example.com']", created="2022-01-01T00:00:00Z"
        ),
        http_route(name="precise", hostnames="[foo.example.com]", created="2023-01-01T00:00:00Z"),
    )
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", f"http://{host}/x"))
    assert decision.entry is not None and decision.entry.rule.ref.route.name == winner


def test_a_more_specific_host_group_falls_through_when_its_rules_do_not_match() -> None:
    # Precedence orders rules; a host-specific route that has no rule for the path
    # leaves the request to the next hostname group.
    w = world(
        gateway("- {name: l, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}"),
        http_route(
            name="precise",
            hostnames="[foo.example.com]",
            rules="- matches: [{path: {type: Exact, value: /only}}]\n  backendRefs: [{name: web, port: 80}]",
        ),
        http_route(name="catch-all"),
    )
    decision = match_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://foo.example.com/other")
    )
    assert decision.entry is not None and decision.entry.rule.ref.route.name == "catch-all"
