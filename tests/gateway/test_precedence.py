"""HTTPRoute match semantics and precedence across rules and routes.

Spec: httproute_types.go HTTPRouteRule.Matches: "precedence must be given to the
match having: Exact path match; Prefix path match with largest number of
characters; Method match; Largest number of header matches; Largest number of
query param matches" then "The oldest Route based on creation timestamp; The
Route appearing first in alphabetical order by {namespace}/{name}" then "the
FIRST matching rule (in list order)". PathMatchType: PathPrefix matches element
by element and ignores a trailing '/'; Exact is case-sensitive.
HTTPHeaderMatch (names case-insensitive), HTTPQueryParamMatch (exact names; the
first value of a repeated parameter is recommended). RegularExpression
precedence is implementation-specific: netlet ranks it between Exact and
PathPrefix, longer patterns first. Conformance: HTTPRouteMatchingAcrossRoutes,
HTTPRoutePathMatchOrder, HTTPRouteHeaderMatching, HTTPRouteQueryParamMatching,
HTTPRouteMethodMatching.
"""

from __future__ import annotations

import pytest

from netlet.gateway.match import match_http
from netlet.gateway.table import Request
from tests.gateway.manifests import HTTP_ALL, http_route, world

OLD, NEW = "2020-01-01T00:00:00Z", "2024-01-01T00:00:00Z"


def _rules(*matches: str) -> str:
    return "\n".join(f"- matches: [{m}]\n  backendRefs: [{{name: web, port: 80}}]" for m in matches)


CASES = [
    pytest.param(
        [
            ("a", OLD, _rules("{path: {type: PathPrefix, value: /foo}}")),
            ("b", NEW, _rules("{path: {type: Exact, value: /foo}}")),
        ],
        ("GET", "/foo", ()),
        "b:0",
        id="an Exact match beats a PathPrefix of the same path",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /foo}}")),
            ("b", NEW, _rules("{path: {value: /foo/bar}}")),
        ],
        ("GET", "/foo/bar/baz", ()),
        "b:0",
        id="the longer prefix wins",
    ),
    pytest.param(
        [("a", OLD, _rules("{path: {value: /foo}}")), ("b", NEW, _rules("{path: {value: /}}"))],
        ("GET", "/foobar", ()),
        "b:0",
        id="a prefix matches whole path elements only",
    ),
    pytest.param(
        [("a", OLD, _rules("{path: {value: /foo/}}"))],
        ("GET", "/foo", ()),
        "a:0",
        id="a trailing slash in the prefix is ignored",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {type: Exact, value: /foo}}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/foo/", ()),
        "b:0",
        id="an Exact match does not match a trailing slash",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {type: Exact, value: /Foo}}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/foo", ()),
        "b:0",
        id="path matching is case-sensitive",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /api}}")),
            ("b", NEW, _rules("{path: {value: /api}, method: POST}")),
        ],
        ("POST", "/api", ()),
        "b:0",
        id="a method match beats none",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /api}}")),
            ("b", NEW, _rules("{path: {value: /api}, method: POST}")),
        ],
        ("GET", "/api", ()),
        "a:0",
        id="a method match does not match another method",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /a}, headers: [{name: x, value: '1'}]}")),
            (
                "b",
                NEW,
                _rules(
                    "{path: {value: /a}, headers: [{name: x, value: '1'}, {name: y, value: '2'}]}"
                ),
            ),
        ],
        ("GET", "/a", (("X", "1"), ("Y", "2"))),
        "b:0",
        id="more header matches win",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /a}, queryParams: [{name: q, value: '1'}]}")),
            (
                "b",
                NEW,
                _rules(
                    "{path: {value: /a}, queryParams: [{name: q, value: '1'}, {name: r, value: '2'}]}"
                ),
            ),
        ],
        ("GET", "/a?q=1&r=2", ()),
        "b:0",
        id="more query param matches win",
    ),
    pytest.param(
        [
            ("a", NEW, _rules("{path: {value: /a}, headers: [{name: x, value: '1'}]}")),
            (
                "b",
                OLD,
                _rules(
                    "{path: {value: /a}, queryParams: [{name: q, value: '1'}, {name: r, value: '2'}]}"
                ),
            ),
        ],
        ("GET", "/a?q=1&r=2", (("x", "1"),)),
        "a:0",
        id="header matches outrank query matches",
    ),
    pytest.param(
        [
            ("a", NEW, _rules("{path: {value: /a}, method: GET}")),
            (
                "b",
                OLD,
                _rules(
                    "{path: {value: /a}, headers: [{name: x, value: '1'}, {name: y, value: '2'}]}"
                ),
            ),
        ],
        ("GET", "/a", (("x", "1"), ("y", "2"))),
        "a:0",
        id="a method match outranks header matches",
    ),
    pytest.param(
        [
            ("a", NEW, _rules("{path: {value: /a/b}}")),
            ("b", OLD, _rules("{path: {value: /a}, method: GET}")),
        ],
        ("GET", "/a/b", ()),
        "a:0",
        id="prefix length outranks a method match",
    ),
    pytest.param(
        [("a", NEW, _rules("{path: {value: /x}}")), ("b", OLD, _rules("{path: {value: /x}}"))],
        ("GET", "/x", ()),
        "b:0",
        id="on a tie the oldest route wins",
    ),
    pytest.param(
        [("b", OLD, _rules("{path: {value: /x}}")), ("a", OLD, _rules("{path: {value: /x}}"))],
        ("GET", "/x", ()),
        "a:0",
        id="on a timestamp tie the first name alphabetically wins",
    ),
    pytest.param(
        [("a", OLD, _rules("{path: {value: /x}}", "{path: {value: /x}}"))],
        ("GET", "/x", ()),
        "a:0",
        id="inside one route the first matching rule wins",
    ),
    pytest.param(
        [("a", OLD, _rules("{path: {value: /}}", "{path: {value: /x}}"))],
        ("GET", "/x/y", ()),
        "a:1",
        id="a later rule with a longer prefix beats an earlier one",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /}}")),
            ("b", NEW, _rules("{path: {type: RegularExpression, value: '/v[0-9]+/.*'}}")),
        ],
        ("GET", "/v2/items", ()),
        "b:0",
        id="a regular expression outranks a prefix",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {type: RegularExpression, value: '/v[0-9]+/.*'}}")),
            ("b", NEW, _rules("{path: {type: Exact, value: /v2/items}}")),
        ],
        ("GET", "/v2/items", ()),
        "b:0",
        id="an Exact match outranks a regular expression",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {type: RegularExpression, value: '/v[0-9]+'}}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/v2/items", ()),
        "b:0",
        id="a path regular expression must match the whole path",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /}, headers: [{name: x-env, value: Prod}]}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/", (("X-ENV", "prod"),)),
        "b:0",
        id="header names ignore case but values do not",
    ),
    pytest.param(
        [
            (
                "a",
                OLD,
                _rules(
                    "{path: {value: /}, headers: [{type: RegularExpression, name: x, value: 'v[0-9]'}]}"
                ),
            ),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/", (("x", "v7"),)),
        "a:0",
        id="a header regular expression matches",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /}, queryParams: [{name: q, value: one}]}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/?q=one&q=two", ()),
        "a:0",
        id="the first value of a repeated query parameter is matched",
    ),
    pytest.param(
        [
            ("a", OLD, _rules("{path: {value: /}, queryParams: [{name: Q, value: one}]}")),
            ("b", NEW, _rules("{path: {value: /}}")),
        ],
        ("GET", "/?q=one", ()),
        "b:0",
        id="query parameter names are case-sensitive",
    ),
    pytest.param(
        [
            ("old", OLD, _rules("{path: {value: /}}")),
            ("new", NEW, _rules("{path: {value: /}, headers: [{name: x, value: '1'}]}")),
        ],
        ("GET", "/", (("x", "1"),)),
        "new:0",
        id="match specificity outranks route age",
    ),
]


@pytest.mark.parametrize(("routes", "request_", "winner"), CASES)
def test_precedence(
    routes: list[tuple[str, str, str]],
    request_: tuple[str, str, tuple[tuple[str, str], ...]],
    winner: str,
) -> None:
    w = world(
        HTTP_ALL,
        *(http_route(rules, name=name, created=created) for name, created, rules in routes),
    )
    method, target, headers = request_
    decision = match_http(
        w.programs["infra/gw"], Request.from_url(method, f"http://example.com{target}", headers)
    )
    assert decision.entry is not None, decision.reason
    ref = decision.entry.rule.ref
    assert f"{ref.route.name}:{ref.index}" == winner


def test_no_matching_rule_is_a_404() -> None:
    # HTTPRouteRule.Matches: "When no rules matching a request have been successfully
    # attached to the parent a request is coming from, a HTTP 404 status code MUST be
    # returned."
    w = world(HTTP_ALL, http_route(_rules("{path: {type: Exact, value: /only}}")))
    decision = match_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://example.com/other")
    )
    assert (decision.action.value, decision.status, decision.entry) == ("respond", 404, None)


def test_the_table_is_sorted_by_the_precedence_key() -> None:
    w = world(
        HTTP_ALL,
        http_route(
            _rules(
                "{path: {value: /}}", "{path: {type: Exact, value: /x}}", "{path: {value: /abc}}"
            ),
            name="a",
        ),
    )
    (listener,) = w.programs["infra/gw"].listeners
    assert listener.http is not None
    paths = [(e.match.path_type, e.match.path) for e in listener.http.entries]
    assert paths == [("Exact", "/x"), ("PathPrefix", "/abc"), ("PathPrefix", "/")]
    assert [e.rank for e in listener.http.entries] == [0, 1, 2]
