"""Bad Gateway API input is rejected at load time, naming the field, with the
message the CRD's OpenAPI schema / CEL rule (or upstream's apis/v1/validation
package) gives. Valid edge cases load.

Spec: the v1.6 CRDs generated from kubernetes-sigs/gateway-api apis/v1
(httproute_types.go, gateway_types.go, grpcroute_types.go, shared_types.go,
listenerset_types.go, tlsroute_types.go, tcproute_types.go,
backendtlspolicy_types.go) and CHANGELOG/1.6 (retry codes unique, attempts >= 1).
"""

from __future__ import annotations

import pytest

from netlet.cluster.build import load_text
from tests.gateway.manifests import dedent, gateway, http_route, route


def _match(path: str) -> str:
    return http_route(f"- matches: [{{path: {{type: PathPrefix, value: '{path}'}}}}]")


def _filters(filters: str, matches: str = "[{path: {type: PathPrefix, value: /a}}]") -> str:
    return http_route(f"- matches: {matches}\n  filters: {filters}")


LISTENER = "- {name: l, port: 80, protocol: HTTP}"

REJECTED = [
    # HTTPPathMatch CEL rules (httproute_types.go "HTTPPathMatch").
    pytest.param(
        _match("a/b"),
        "spec.rules[0].matches[0].path",
        "value must be an absolute path and start with '/'",
        id="a path match not starting with a slash is rejected",
    ),
    pytest.param(
        _match("/a//b"),
        "spec.rules[0].matches[0].path",
        "must not contain '//'",
        id="a path match with a double slash is rejected",
    ),
    pytest.param(
        _match("/a/.."),
        "spec.rules[0].matches[0].path",
        "must not end with '/..'",
        id="a path match ending in a dot-dot segment is rejected",
    ),
    pytest.param(
        _match("/a b"),
        "spec.rules[0].matches[0].path",
        "must only contain valid characters",
        id="a path match with a space is rejected",
    ),
    pytest.param(
        _match("/a%2fb"),
        "spec.rules[0].matches[0].path",
        "must not contain '%2f'",
        id="a path match with an encoded slash is rejected",
    ),
    pytest.param(
        http_route("- matches: [{path: {type: RegularExpression, value: '/(unclosed'}}]"),
        "spec.rules[0].matches[0].path",
        "invalid regular expression",
        id="an invalid path regular expression is rejected",
    ),
    pytest.param(
        http_route(
            "- matches: [{path: {value: /a}, headers: [{type: RegularExpression, name: x, value: '['}]}]"
        ),
        "spec.rules[0].matches[0].headers[0]",
        "invalid regular expression",
        id="an invalid header regular expression is rejected",
    ),
    # HTTPRouteSpec.Rules: at most 128 matches in total, 64 per rule, unique rule names.
    pytest.param(
        http_route(
            "\n".join(
                "- matches: ["
                + ", ".join(f"{{path: {{value: /r{r}m{m}}}}}" for m in range(60))
                + "]"
                for r in range(3)
            )
        ),
        "spec.rules",
        "the total number of matches across all rules in a route must be less than 128",
        id="more than 128 matches across rules are rejected",
    ),
    pytest.param(
        http_route(
            "- matches: [" + ", ".join(f"{{path: {{value: /m{m}}}}}" for m in range(65)) + "]"
        ),
        "spec.rules[0].matches",
        "at most 64 items",
        id="more than 64 matches in one rule are rejected",
    ),
    pytest.param(
        http_route("- {name: same}\n- {name: same}"),
        "spec.rules",
        "Rule name must be unique within the route",
        id="duplicate rule names are rejected",
    ),
    # GatewaySpec.Listeners CEL rules.
    pytest.param(
        gateway("- {name: l, port: 80, protocol: HTTP}\n- {name: l, port: 81, protocol: HTTP}"),
        "spec.listeners",
        "Listener name must be unique within the Gateway",
        id="duplicate listener names are rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: HTTP}"),
        "spec.listeners",
        "Combination of port, protocol and hostname must be unique for each listener",
        id="two listeners with the same port protocol and hostname are rejected",
    ),
    pytest.param(
        gateway(
            "- {name: a, port: 80, protocol: HTTP, tls: {mode: Terminate, certificateRefs: [{name: c}]}}"
        ),
        "spec.listeners[0]",
        "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
        id="tls on an HTTP listener is rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 80, protocol: tcp, hostname: a.example.com}"),
        "spec.listeners[0]",
        "hostname must not be specified for protocols ['TCP', 'UDP']",
        id="a hostname on a lower-case tcp listener is rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 443, protocol: TLS}"),
        "spec.listeners[0]",
        "tls mode must be set for protocol TLS",
        id="a TLS listener without tls is rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 443, protocol: HTTPS, tls: {mode: Passthrough}}"),
        "spec.listeners[0]",
        "tls mode must be Terminate for protocol HTTPS",
        id="an HTTPS listener in Passthrough mode is rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 443, protocol: HTTPS, tls: {mode: Terminate}}"),
        "spec.listeners[0].tls",
        "certificateRefs or options must be specified when mode is Terminate",
        id="Terminate without certificates or options is rejected",
    ),
    pytest.param(
        gateway("- {name: a, port: 80, protocol: example.com}"),
        "spec.listeners[0].protocol",
        "should match",
        id="a domain-prefixed protocol without a path is rejected",
    ),
    pytest.param(
        gateway(LISTENER, extra="addresses: [{type: IPAddress, value: 10.0.0.300}]"),
        "spec.addresses[0]",
        "invalid ip address",
        id="an invalid IPAddress value is rejected",
    ),
    pytest.param(
        gateway(
            LISTENER,
            extra="addresses: [{type: IPAddress, value: 10.0.0.1}, {type: IPAddress, value: 10.0.0.1}]",
        ),
        "spec.addresses",
        "IPAddress values must be unique",
        id="duplicate IPAddress values are rejected",
    ),
    # HTTPRouteRule / filter CEL rules.
    pytest.param(
        _filters(
            "[{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]",
            "[{path: {type: Exact, value: /a}}]",
        ),
        "spec.rules[0]",
        "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match",
        id="a prefix rewrite on an Exact match is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]",
            "[{path: {value: /a}}, {path: {value: /c}}]",
        ),
        "spec.rules[0]",
        "When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix",
        id="a prefix redirect with two matches is rejected",
    ),
    pytest.param(
        http_route(
            "- matches: [{path: {type: Exact, value: /a}}]\n"
            "  backendRefs:\n"
            "  - name: web\n    port: 80\n"
            "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]"
        ),
        "spec.rules[0]",
        "Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch",
        id="a prefix rewrite inside a backendRef on an Exact match is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestRedirect, requestRedirect: {scheme: https}}, "
            "{type: URLRewrite, urlRewrite: {hostname: b.example.com}}]"
        ),
        "spec.rules[0].filters",
        "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite",
        id="a redirect together with a rewrite is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}, "
            "{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: c, value: d}]}}]"
        ),
        "spec.rules[0].filters",
        "RequestHeaderModifier filter cannot be repeated",
        id="a repeated RequestHeaderModifier is rejected",
    ),
    pytest.param(
        http_route(
            "- filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n"
            "  backendRefs: [{name: web, port: 80}]"
        ),
        "spec.rules[0]",
        "RequestRedirect filter must not be used together with backendRefs",
        id="a redirect on a rule with backendRefs is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestHeaderModifier, responseHeaderModifier: {set: [{name: a, value: b}]}}]"
        ),
        "spec.rules[0].filters[0]",
        "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type",
        id="a filter whose field does not match its type is rejected",
    ),
    pytest.param(
        _filters("[{type: CORS}]"),
        "spec.rules[0].filters[0]",
        "filter.cors must be specified for CORS filter.type",
        id="a CORS filter without its configuration is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: b}], remove: [x-a]}}]"
        ),
        "spec.rules[0].filters[0].requestHeaderModifier.remove",
        "cannot specify multiple actions for header",
        id="setting and removing the same header is rejected",
    ),
    pytest.param(
        http_route("- matches: [{headers: [{name: X-A, value: '1'}, {name: x-a, value: '2'}]}]"),
        "spec.rules[0].matches[0].headers",
        "cannot match the same header multiple times in the same rule",
        id="matching one header twice ignoring case is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, percent: 5, "
            "fraction: {numerator: 1}}}]"
        ),
        "spec.rules[0].filters[0].requestMirror",
        "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
        id="a mirror with both percent and fraction is rejected",
    ),
    pytest.param(
        _filters(
            "[{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, "
            "fraction: {numerator: 3, denominator: 2}}}]"
        ),
        "spec.rules[0].filters[0].requestMirror.fraction",
        "numerator must be less than or equal to denominator",
        id="a mirror fraction above one is rejected",
    ),
    pytest.param(
        _filters("[{type: CORS, cors: {allowOrigins: ['*', 'https://a.example.com']}}]"),
        "spec.rules[0].filters[0].cors.allowOrigins",
        "AllowOrigins cannot contain '*' alongside other origins",
        id="a CORS wildcard origin beside another origin is rejected",
    ),
    pytest.param(
        _filters("[{type: RequestRedirect, requestRedirect: {hostname: '*.example.com'}}]"),
        "spec.rules[0].filters[0].requestRedirect.hostname",
        "should match",
        id="a wildcard redirect hostname is rejected",
    ),
    # BackendObjectReference CEL, Hostname pattern, timeouts, retry (v1.6).
    pytest.param(
        http_route("- backendRefs: [{name: web}]"),
        "spec.rules[0].backendRefs[0]",
        "Must have port for Service reference",
        id="a Service backendRef without a port is rejected",
    ),
    pytest.param(
        http_route(hostnames="[Example.COM]"),
        "spec.hostnames[0]",
        "should match",
        id="an upper-case route hostname is rejected",
    ),
    pytest.param(
        http_route("- timeouts: {request: 1s, backendRequest: 2s}"),
        "spec.rules[0].timeouts",
        "backendRequest timeout cannot be longer than request timeout",
        id="a backend timeout longer than the request timeout is rejected",
    ),
    pytest.param(
        http_route("- timeouts: {request: 1.5s}"),
        "spec.rules[0].timeouts.request",
        "should match",
        id="a duration with a fraction is rejected",
    ),
    pytest.param(
        http_route("- retry: {codes: [503, 503]}"),
        "spec.rules[0].retry.codes[1]",
        "Duplicate value",
        id="duplicate retry codes are rejected since v1.6",
    ),
    pytest.param(
        http_route("- retry: {attempts: 0}"),
        "spec.rules[0].retry.attempts",
        "greater than or equal to 1",
        id="zero retry attempts are rejected since v1.6",
    ),
    pytest.param(
        http_route(
            parents="[{name: gw, namespace: infra}, {name: gw, namespace: infra, sectionName: a}]"
        ),
        "spec.parentRefs",
        "sectionName or port must be specified when parentRefs includes 2 or more references",
        id="two parentRefs to one Gateway where only one names a section are rejected",
    ),
    pytest.param(
        http_route(
            parents="[{name: gw, namespace: infra, sectionName: a}, {name: gw, namespace: infra, sectionName: a}]"
        ),
        "spec.parentRefs",
        "sectionName or port must be unique when parentRefs includes 2 or more references",
        id="two identical parentRefs are rejected",
    ),
    # GRPCMethodMatch CEL rules (grpcroute_types.go).
    pytest.param(
        route("rules: [{matches: [{method: {type: Exact}}]}]", kind="GRPCRoute"),
        "spec.rules[0].matches[0].method",
        "One or both of 'service' or 'method' must be specified",
        id="a gRPC method match naming nothing is rejected",
    ),
    pytest.param(
        route("rules: [{matches: [{method: {service: 'foo/bar'}}]}]", kind="GRPCRoute"),
        "spec.rules[0].matches[0].method",
        "service must only contain valid characters",
        id="a gRPC service with a slash is rejected",
    ),
    # TLSRoute v1 and TCPRoute v1 schemas.
    pytest.param(
        route("rules: [{backendRefs: [{name: web, port: 443}]}]", kind="TLSRoute"),
        "spec.hostnames",
        "Required value",
        id="a v1 TLSRoute without hostnames is rejected",
    ),
    pytest.param(
        route(
            "rules: [{backendRefs: [{name: web, port: 1}]}, {backendRefs: [{name: web, port: 2}]}]",
            kind="TCPRoute",
        ),
        "spec.rules",
        "at most 1 items",
        id="a v1 TCPRoute with two rules is rejected",
    ),
    # BackendTLSPolicyValidation CEL rules.
    pytest.param(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: BackendTLSPolicy
            metadata: {name: p, namespace: app}
            spec:
              targetRefs: [{group: '', kind: Service, name: web}]
              validation:
                hostname: web.example.com
                wellKnownCACertificates: System
                caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]
            """
        ),
        "spec.validation",
        "must not contain both CACertificateRefs and WellKnownCACertificates",
        id="a BackendTLSPolicy with both CA sources is rejected",
    ),
    pytest.param(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: BackendTLSPolicy
            metadata: {name: p, namespace: app}
            spec:
              targetRefs: [{group: '', kind: Service, name: web}]
              validation: {hostname: web.example.com}
            """
        ),
        "spec.validation",
        "must specify either CACertificateRefs or WellKnownCACertificates",
        id="a BackendTLSPolicy without a CA source is rejected",
    ),
    pytest.param(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata: {name: c}
            spec: {controllerName: example.com}
            """
        ),
        "spec.controllerName",
        "should match",
        id="a controllerName without a path is rejected",
    ),
    pytest.param(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: ListenerSet
            metadata: {name: s, namespace: infra}
            spec:
              parentRef: {name: gw}
              listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: http}]
            """
        ),
        "spec.listeners",
        "Combination of port, protocol and hostname must be unique for each listener",
        id="a ListenerSet compares protocols case-insensitively",
    ),
    pytest.param(
        dedent(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: ReferenceGrant
            metadata: {name: g, namespace: app}
            """
        ),
        "spec",
        "Required value",
        id="a ReferenceGrant without spec is rejected since v1.6",
    ),
]


@pytest.mark.parametrize(("doc", "path", "message"), REJECTED)
def test_rejected_like_the_crd(doc: str, path: str, message: str) -> None:
    result = load_text(doc)
    assert not result.ok
    found = [(e.field_path, e.message) for e in result.errors]
    assert any(p == path and message in m for p, m in found), found


ACCEPTED = [
    pytest.param(
        gateway("- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: http}"),
        id="a Gateway's CEL rule compares protocols case-sensitively",
    ),
    pytest.param(
        route(
            "rules: [{backendRefs: [{name: web, port: 1}]}, {backendRefs: [{name: web, port: 2}]}]",
            kind="TCPRoute",
            version="v1alpha2",
        ),
        id="a v1alpha2 TCPRoute may have two rules",
    ),
    pytest.param(
        route(
            "rules: [{backendRefs: [{name: web, port: 443}]}]", kind="TLSRoute", version="v1alpha2"
        ),
        id="a v1alpha2 TLSRoute may omit hostnames",
    ),
    pytest.param(
        http_route(
            parents="[{name: gw, namespace: infra, port: 80}, {name: gw, namespace: infra, port: 81}]"
        ),
        id="two parentRefs to one Gateway distinct by port are accepted",
    ),
    pytest.param(
        http_route("- timeouts: {request: 0s, backendRequest: 10s}"),
        id="a zero request timeout does not bound the backend timeout",
    ),
    pytest.param(
        gateway(LISTENER, extra="addresses: [{type: IPAddress}]"),
        id="an IPAddress without a value is accepted by the CRD",
    ),
]


@pytest.mark.parametrize("doc", ACCEPTED)
def test_accepted_by_the_crd(doc: str) -> None:
    result = load_text(doc)
    assert result.ok, [str(e) for e in result.errors]


def test_crd_defaults_fill_in_a_route_without_rules() -> None:
    # HTTPRouteSpec.Rules default {{matches: {{path: {type: PathPrefix, value: "/"}}}}}.
    from netlet.resources.gateway_api import HTTPRoute

    result = load_text(http_route().split("rules:")[0])
    route_obj = result.state.get(HTTPRoute, "app", "r")
    assert route_obj is not None
    (rule,) = route_obj.spec.rules
    assert [(m.path.type, m.path.value) for m in rule.matches] == [("PathPrefix", "/")]


@pytest.mark.parametrize(
    ("hostnames", "message"),
    [
        pytest.param(
            "['10.0.0.1']",
            "Hostnames cannot contain an IP",
            id="a TLSRoute hostname that is an IP is rejected",
        ),
        pytest.param(
            "['a.*.example.com']",
            "Wildcards on hostnames must be the first label",
            id="a TLSRoute wildcard not in the first label is rejected",
        ),
        pytest.param(
            "['Foo.example.com']",
            "Hostnames must be valid based on RFC-1123",
            id="an upper-case TLSRoute hostname is rejected",
        ),
    ],
)
def test_tlsroute_hostname_rules(hostnames: str, message: str) -> None:
    # TLSRouteSpec.Hostnames CEL rules (tlsroute_types.go).
    doc = route(
        f"hostnames: {hostnames}\nrules: [{{backendRefs: [{{name: web, port: 443}}]}}]",
        kind="TLSRoute",
    )
    result = load_text(doc)
    ((path, text),) = [(e.field_path, e.message) for e in result.errors]
    assert path == "spec.hostnames" and text.startswith(message)


def test_errors_name_the_file_line_object_and_field() -> None:
    # The diagnostic points at the line of the offending field (the path match object).
    doc = dedent(
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r, namespace: app}
        spec:
          rules:
          - matches:
            - path:
                type: Exact
                value: no-slash
        """
    )
    result = load_text(doc, name="route.yaml")
    (diag,) = result.errors
    assert str(diag).startswith(
        "route.yaml:7 (doc 0): HTTPRoute app/r: spec.rules[0].matches[0].path: "
    )
    assert "value must be an absolute path and start with '/'" in str(diag)
