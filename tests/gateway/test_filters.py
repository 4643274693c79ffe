"""HTTPRoute filters: what each does to the request, the response or the client.

Spec: httproute_types.go HTTPPathModifier (the ReplacePrefixMatch table, copied
row by row below), HTTPRequestRedirectFilter (Location scheme/host/port rules:
"If redirect scheme is not-empty, the redirect port MUST be the well-known port
... If redirect scheme is empty, the redirect port MUST be the Gateway Listener
port"; no port for http:80 / https:443; statusCode default 302),
HTTPURLRewriteFilter, HTTPHeaderFilter (set/add/remove examples),
HTTPRequestMirrorFilter (percent, fraction, default 100%), HTTPCORSFilter
(GEP-1767), HTTPRouteFilter.Type ExtensionRef, RouteConditionPartiallyInvalid
("Dropped Rule"). Conformance: HTTPRouteRewritePath, HTTPRouteRedirectPortAndScheme,
HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier, HTTPRouteRequestMirror.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.filters import (
    apply_header_ops,
    apply_response_ops,
    cors_response_headers,
    origin_allowed,
    replace_prefix,
)
from netlet.gateway.match import Action, HTTPDecision, backend_request, match_http, should_mirror
from netlet.gateway.table import Cors, HeaderOps, Request
from tests.gateway.manifests import HTTP_ALL, gateway, http_route, world


@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        # The table in the HTTPPathModifier.ReplacePrefixMatch doc comment, in order.
        pytest.param("/foo/bar", "/foo", "/xyz", "/xyz/bar", id="prefix replaced by a path"),
        pytest.param(
            "/foo/bar",
            "/foo",
            "/xyz/",
            "/xyz/bar",
            id="a trailing slash in the replacement is dropped",
        ),
        pytest.param(
            "/foo/bar", "/foo/", "/xyz", "/xyz/bar", id="a trailing slash in the prefix is ignored"
        ),
        pytest.param("/foo/bar", "/foo/", "/xyz/", "/xyz/bar", id="trailing slashes on both sides"),
        pytest.param("/foo", "/foo", "/xyz", "/xyz", id="the whole path is the prefix"),
        pytest.param("/foo/", "/foo", "/xyz", "/xyz/", id="the request's trailing slash is kept"),
        pytest.param("/foo/bar", "/foo", "", "/bar", id="an empty replacement drops the prefix"),
        pytest.param(
            "/foo/", "/foo", "", "/", id="an empty replacement of a slashed path leaves a slash"
        ),
        pytest.param(
            "/foo", "/foo", "", "/", id="an empty replacement of the whole path leaves a slash"
        ),
        pytest.param("/foo/", "/foo", "/", "/", id="a slash replacement of a slashed path"),
        pytest.param("/foo", "/foo", "/", "/", id="a slash replacement of the whole path"),
    ],
)
def test_replace_prefix_match_table(
    path: str, prefix: str, replacement: str, expected: str
) -> None:
    normalized = prefix.rstrip("/") or "/"
    assert replace_prefix(path, normalized, replacement) == expected


def _decide(
    rule: str, url: str, headers: tuple[tuple[str, str], ...] = (), listeners: str | None = None
) -> HTTPDecision:
    gw = gateway(listeners) if listeners else HTTP_ALL
    w = world(gw, http_route(rule))
    return match_http(w.programs["infra/gw"], Request.from_url("GET", url, headers))


REDIRECT = "- matches: [{{path: {{value: /old}}}}]\n  filters: [{{type: RequestRedirect, requestRedirect: {spec}}}]"
PORTS = """
- {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
- {name: alt, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
- {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}, allowedRoutes: {namespaces: {from: All}}}
"""


@pytest.mark.parametrize(
    ("spec", "url", "status", "location"),
    [
        pytest.param(
            "{scheme: https}",
            "http://a.example.com/old/x?q=1",
            302,
            "https://a.example.com/old/x?q=1",
            id="a scheme change uses its well-known port and hides it",
        ),
        pytest.param(
            "{scheme: http}",
            "https://a.example.com/old",
            302,
            "http://a.example.com/old",
            id="a redirect to http drops port 80",
        ),
        pytest.param(
            "{hostname: b.example.com}",
            "http://a.example.com:8080/old",
            302,
            "http://b.example.com:8080/old",
            id="without a scheme the listener port is kept",
        ),
        pytest.param(
            "{scheme: https, port: 8443}",
            "http://a.example.com/old",
            302,
            "https://a.example.com:8443/old",
            id="an explicit port is written",
        ),
        pytest.param(
            "{scheme: https, port: 443}",
            "http://a.example.com/old",
            302,
            "https://a.example.com/old",
            id="an explicit well-known port is not written",
        ),
        pytest.param(
            "{statusCode: 301}",
            "https://a.example.com/old",
            301,
            "https://a.example.com/old",
            id="an https listener without scheme keeps 443 hidden",
        ),
        pytest.param(
            "{path: {type: ReplaceFullPath, replaceFullPath: /new}}",
            "http://a.example.com/old/x?q=1",
            302,
            "http://a.example.com/new?q=1",
            id="a full path replacement keeps the query",
        ),
        pytest.param(
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}",
            "http://a.example.com/old/x",
            302,
            "http://a.example.com/new/x",
            id="a prefix replacement keeps the rest of the path",
        ),
        pytest.param(
            "{statusCode: 308, hostname: c.example.com, scheme: https}",
            "http://a.example.com/old",
            308,
            "https://c.example.com/old",
            id="status code hostname and scheme together",
        ),
    ],
)
def test_redirect_location(spec: str, url: str, status: int, location: str) -> None:
    decision = _decide(REDIRECT.format(spec=spec), url, listeners=PORTS)
    assert decision.action == Action.REDIRECT
    assert (decision.status, decision.location) == (status, location)


def test_url_rewrite_changes_host_and_path_before_forwarding() -> None:
    rule = (
        "- matches: [{path: {value: /api}}]\n"
        "  filters: [{type: URLRewrite, urlRewrite: {hostname: internal.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]\n"
        "  backendRefs: [{name: web, port: 80}]"
    )
    decision = _decide(rule, "http://a.example.com/api/items?x=1")
    assert decision.action == Action.FORWARD
    assert (decision.request.host, decision.request.path, decision.request.query) == (
        "internal.example.com",
        "/v2/items",
        "x=1",
    )
    assert decision.original.path == "/api/items"


@pytest.mark.parametrize(
    ("ops", "headers", "expected"),
    [
        # HTTPHeaderFilter doc examples.
        pytest.param(
            HeaderOps("RequestHeaderModifier", set=(("my-header", "bar"),)),
            (("my-header", "foo"),),
            (("my-header", "bar"),),
            id="set overwrites the header",
        ),
        pytest.param(
            HeaderOps("RequestHeaderModifier", add=(("my-header", "bar,baz"),)),
            (("my-header", "foo"),),
            (("my-header", "foo"), ("my-header", "bar,baz")),
            id="add appends a value",
        ),
        pytest.param(
            HeaderOps("RequestHeaderModifier", remove=("my-header1", "my-header3")),
            (("my-header1", "foo"), ("my-header2", "bar"), ("my-header3", "baz")),
            (("my-header2", "bar"),),
            id="remove drops the listed headers",
        ),
        pytest.param(
            HeaderOps("RequestHeaderModifier", set=(("X-A", "1"),)),
            (("x-a", "0"), ("x-a", "2")),
            (("X-A", "1"),),
            id="set replaces every value of the name ignoring case",
        ),
        pytest.param(
            HeaderOps("RequestHeaderModifier", remove=("X-A",)),
            (("x-a", "0"), ("y", "1")),
            (("y", "1"),),
            id="remove ignores case",
        ),
    ],
)
def test_header_modifier(
    ops: HeaderOps, headers: tuple[tuple[str, str], ...], expected: tuple[tuple[str, str], ...]
) -> None:
    assert apply_header_ops(headers, ops) == expected


def test_request_and_response_header_modifiers_run_in_a_route() -> None:
    rule = (
        "- filters:\n"
        "  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}], remove: [x-debug]}}\n"
        "  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-served-by, value: netlet}]}}\n"
        "  backendRefs: [{name: web, port: 80}]"
    )
    decision = _decide(
        rule, "http://a.example.com/", (("X-Env", "dev"), ("x-debug", "1"), ("keep", "y"))
    )
    assert decision.request.headers == (("keep", "y"), ("x-env", "prod"))
    assert apply_response_ops((("content-type", "text/plain"),), decision.response_ops) == (
        ("content-type", "text/plain"),
        ("x-served-by", "netlet"),
    )


@pytest.mark.parametrize(
    ("spec", "fraction"),
    [
        pytest.param("", (1, 1), id="a mirror without percent or fraction copies everything"),
        pytest.param(", percent: 5", (5, 100), id="percent is a fraction of 100"),
        pytest.param(
            ", fraction: {numerator: 1, denominator: 3}", (1, 3), id="fraction is kept as given"
        ),
    ],
)
def test_request_mirror_share(spec: str, fraction: tuple[int, int]) -> None:
    rule = (
        f"- filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: api, port: 80}}{spec}}}}}]\n"
        "  backendRefs: [{name: web, port: 80}]"
    )
    decision = _decide(rule, "http://a.example.com/")
    (mirror,) = decision.mirrors
    assert (mirror.numerator, mirror.denominator) == fraction
    assert str(mirror.backend.key) == "Service app/api:80"
    sampled = sum(should_mirror(mirror, i / 1000) for i in range(1000))
    assert sampled == round(1000 * fraction[0] / fraction[1] + 0.4999)


def test_a_mirror_to_a_missing_backend_is_dropped_and_reported() -> None:
    # HTTPRequestMirrorFilter.BackendRef: "If the referent cannot be found, this
    # BackendRef is invalid and must be dropped ... ResolvedRefs ... False".
    rule = "- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nope, port: 80}}}]\n  backendRefs: [{name: web, port: 80}]"
    w = world(HTTP_ALL, http_route(rule))
    decision = match_http(w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/"))
    assert decision.mirrors == ()
    resolved = w.routes[0].parents[0].condition(ConditionType.RESOLVED_REFS)
    assert resolved is not None and (resolved.status, resolved.reason.value) == (
        "False",
        "BackendNotFound",
    )


def test_backend_filters_apply_only_to_their_backend() -> None:
    rule = (
        "- backendRefs:\n"
        "  - {name: web, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-to, value: web}]}}]}\n"
        "  - {name: api, port: 80}"
    )
    decision = _decide(rule, "http://a.example.com/")
    web, api = decision.backends
    assert backend_request(decision, web).headers == (("x-to", "web"),)
    assert backend_request(decision, api).headers == ()


CORS_RULE = "- filters: [{{type: CORS, cors: {spec}}}]\n  backendRefs: [{{name: web, port: 80}}]"


@pytest.mark.parametrize(
    ("spec", "origin", "expected"),
    [
        pytest.param(
            "{allowOrigins: ['https://app.example.com'], allowMethods: [GET, PUT], allowHeaders: [x-a], maxAge: 60}",
            "https://app.example.com",
            (
                ("Access-Control-Allow-Origin", "https://app.example.com"),
                ("Access-Control-Allow-Methods", "GET,PUT"),
                ("Access-Control-Allow-Headers", "x-a"),
                ("Access-Control-Max-Age", "60"),
            ),
            id="an allowed origin gets the configured methods headers and max age",
        ),
        pytest.param(
            "{allowOrigins: ['https://app.example.com']}",
            "https://evil.example.com",
            (),
            id="another origin gets no CORS headers",
        ),
        pytest.param(
            "{allowOrigins: ['https://*.example.com'], allowCredentials: true, allowMethods: ['*']}",
            "https://a.b.example.com",
            (
                ("Access-Control-Allow-Origin", "https://a.b.example.com"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Allow-Methods", "PUT"),
                ("Access-Control-Max-Age", "5"),
            ),
            id="with credentials a wildcard method list echoes the requested method",
        ),
        pytest.param(
            "{allowOrigins: ['*'], allowMethods: ['*']}",
            "http://anything.test",
            (
                ("Access-Control-Allow-Origin", "http://anything.test"),
                ("Access-Control-Allow-Methods", "*"),
                ("Access-Control-Max-Age", "5"),
            ),
            id="without credentials a wildcard method list may answer star",
        ),
    ],
)
def test_cors_preflight_is_answered_by_the_gateway(
    spec: str, origin: str, expected: tuple[tuple[str, str], ...]
) -> None:
    w = world(HTTP_ALL, http_route(CORS_RULE.format(spec=spec)))
    request = Request.from_url(
        "OPTIONS",
        "http://a.example.com/x",
        (("Origin", origin), ("Access-Control-Request-Method", "PUT")),
    )
    decision = match_http(w.programs["infra/gw"], request)
    assert (decision.action, decision.status) == (Action.RESPOND, 200)
    assert decision.response_headers == expected


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        pytest.param(
            ("https://a.example.com",),
            "https://a.example.com:443",
            True,
            id="https origins default to port 443",
        ),
        pytest.param(
            ("http://a.example.com",),
            "http://a.example.com:8080",
            False,
            id="another port is another origin",
        ),
        pytest.param(
            ("https://a.example.com",),
            "http://a.example.com",
            False,
            id="another scheme is another origin",
        ),
        pytest.param(
            ("https://*.example.com",),
            "https://example.com",
            False,
            id="a host wildcard needs a label to its left",
        ),
    ],
)
def test_cors_origin_matching(allowed: tuple[str, ...], origin: str, expected: bool) -> None:
    assert origin_allowed(Cors(allow_origins=allowed), origin) is expected


def test_cors_actual_request_response_headers() -> None:
    cors = Cors(
        allow_origins=("https://app.example.com",),
        allow_credentials=True,
        expose_headers=("x-total", "*"),
    )
    request = Request.from_url(
        "GET", "http://a.example.com/", (("Origin", "https://app.example.com"),)
    )
    assert cors_response_headers(cors, request) == (
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "x-total"),
    )


def test_filters_run_in_order() -> None:
    # HTTPRouteRule.Filters: "implementations SHOULD implement filters in the order
    # they are specified": the header set sees the host before the rewrite.
    rule = (
        "- filters:\n"
        "  - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /rewritten}}}\n"
        "  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: '1'}]}}\n"
        "  backendRefs: [{name: web, port: 80}]"
    )
    decision = _decide(rule, "http://a.example.com/p")
    assert (decision.request.path, decision.request.headers) == ("/rewritten", (("x-a", "1"),))


@pytest.mark.parametrize(
    ("rules", "accepted", "partially"),
    [
        pytest.param(
            "- filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: a}}]\n  backendRefs: [{name: web, port: 80}]",
            ("False", "UnsupportedValue"),
            None,
            id="a route whose only rule uses ExtensionRef is not accepted",
        ),
        pytest.param(
            "- matches: [{path: {value: /ext}}]\n  filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: a}}]\n  backendRefs: [{name: web, port: 80}]\n"
            "- backendRefs: [{name: web, port: 80}]",
            ("True", "Accepted"),
            ("True", "UnsupportedValue"),
            id="a route with one ExtensionRef rule among valid ones is partially invalid",
        ),
        pytest.param(
            "- sessionPersistence: {sessionName: s}\n  backendRefs: [{name: web, port: 80}]\n- backendRefs: [{name: web, port: 80}]",
            ("True", "Accepted"),
            ("True", "UnsupportedValue"),
            id="sessionPersistence is an unsupported value that drops its rule",
        ),
    ],
)
def test_unsupported_filters_drop_rules(
    rules: str, accepted: tuple[str, str], partially: tuple[str, str] | None
) -> None:
    w = world(HTTP_ALL, http_route(rules))
    parent = w.routes[0].parents[0]
    found = parent.condition(ConditionType.ACCEPTED)
    assert found is not None and (found.status, found.reason.value) == accepted
    partial = parent.condition(ConditionType.PARTIALLY_INVALID)
    if partially is None:
        assert partial is None
    else:
        assert partial is not None and (partial.status, partial.reason.value) == partially
        assert partial.message.startswith("Dropped Rule")


def test_a_dropped_rule_is_not_in_the_table() -> None:
    rules = (
        "- matches: [{path: {value: /ext}}]\n  filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: a}}]\n"
        "  backendRefs: [{name: web, port: 80}]\n- backendRefs: [{name: api, port: 80}]"
    )
    w = world(HTTP_ALL, http_route(rules))
    decision = match_http(
        w.programs["infra/gw"], Request.from_url("GET", "http://a.example.com/ext")
    )
    assert decision.entry is not None and decision.entry.rule.ref.index == 1


def test_timeouts_and_retry_reach_the_decision() -> None:
    # HTTPRouteTimeouts (GEP-1742, Duration GEP-2257) and HTTPRouteRetry (GEP-1731).
    rule = (
        "- timeouts: {request: 1m30s, backendRequest: 500ms}\n"
        "  retry: {codes: [502, 503], attempts: 2, backoff: 100ms}\n"
        "  backendRefs: [{name: web, port: 80}]"
    )
    decision = _decide(rule, "http://a.example.com/")
    assert decision.timeouts is not None
    assert (decision.timeouts.request, decision.timeouts.backend_request) == (90.0, 0.5)
    assert decision.retry is not None
    assert (decision.retry.codes, decision.retry.attempts, decision.retry.backoff) == (
        (502, 503),
        2,
        0.1,
    )
