"""Route objects -> compiled rules: matches, filters and weighted backends as IR.

A rule that uses something netlet does not implement is invalid and dropped
(HTTPRouteRule.Filters: "If all Route Rules in a Route are invalid, the entire
Route would be considered invalid. If only a portion of Route Rules are invalid,
implementations MUST set the PartiallyInvalid condition"; RouteConditionType
PartiallyInvalid "Drop Rule(s)" approach): ExtensionRef filters (netlet has no
extension filter kinds), ExternalAuth, and sessionPersistence.

References that do not resolve (backendRefs, mirror backendRefs) are recorded as
ResolvedRefs problems; an invalid backendRef stays in the rule (its share of
traffic gets 500), an invalid mirror is dropped ("must be dropped from the
Gateway").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from netlet.gateway.backends import BackendResolver
from netlet.gateway.conditions import RouteReason
from netlet.gateway.listeners import creation_order
from netlet.gateway.table import (
    BackendState,
    Cors,
    Filter,
    GRPCMatch,
    HeaderOps,
    HTTPMatch,
    HTTPRule,
    L4Rule,
    Mirror,
    PathModifier,
    Redirect,
    Retry,
    Rewrite,
    RouteRef,
    RuleRef,
    Timeouts,
    ValueMatch,
    WeightedBackend,
)
from netlet.resources.base import Resource
from netlet.resources.gateway_api import (
    GRPCRoute,
    GRPCRouteFilter,
    GRPCRouteRule,
    HeaderMatch,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    TCPRoute,
    TLSRoute,
    UDPRoute,
    parse_duration,
)
from netlet.resources.gateway_api import PathModifier as PathModifierSpec

AnyRoute = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute


@lru_cache(maxsize=65536)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass
class CompiledRoute:
    """One route's rules in IR, for one context (Gateway-bound or mesh)."""

    route: AnyRoute
    ref: RouteRef
    created: float
    http: list[tuple[HTTPRule, tuple[HTTPMatch, ...]]] = field(default_factory=list)
    grpc: list[tuple[HTTPRule, tuple[GRPCMatch, ...] | None]] = field(default_factory=list)
    l4: list[L4Rule] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (rule index, why)
    ref_problems: list[tuple[RouteReason, str]] = field(default_factory=list)

    @property
    def rule_count(self) -> int:
        spec: Any = self.route.spec
        return len(spec.rules)

    @property
    def hostnames(self) -> tuple[str, ...]:
        spec: Any = self.route.spec
        return tuple(getattr(spec, "hostnames", ()))

    @property
    def order_key(self) -> tuple[float, str, str]:
        """Route precedence on ties: oldest, then "{namespace}/{name}"."""
        return (self.created, self.ref.namespace, self.ref.name)


def route_ref(route: Resource) -> RouteRef:
    return RouteRef(route.KIND, route.namespace, route.name)


def _header_ops(kind: str, spec: Any) -> HeaderOps:
    return HeaderOps(
        kind,  # type: ignore[arg-type]
        tuple((h.name, h.value) for h in spec.set),
        tuple((h.name, h.value) for h in spec.add),
        tuple(spec.remove),
    )


def _path_modifier(spec: PathModifierSpec | None) -> PathModifier | None:
    if spec is None:
        return None
    value = spec.replace_full_path if spec.type == "ReplaceFullPath" else spec.replace_prefix_match
    return PathModifier(spec.type, value or "")


def _compile_filters(
    filters: tuple[HTTPRouteFilter, ...] | tuple[GRPCRouteFilter, ...],
    compiled: CompiledRoute,
    resolver: BackendResolver,
    mesh: bool,
    where: str,
) -> tuple[tuple[Filter, ...], str | None]:
    """(filters, None) or ((), why the rule cannot be implemented)."""
    out: list[Filter] = []
    route = compiled.route
    item: Any
    for i, item in enumerate(filters):
        spec = item
        if item.type in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            modifier = (
                spec.request_header_modifier
                if item.type == "RequestHeaderModifier"
                else spec.response_header_modifier
            )
            out.append(_header_ops(item.type, modifier))
        elif item.type == "RequestRedirect":
            r = spec.request_redirect
            out.append(
                Redirect(
                    scheme=r.scheme,
                    hostname=r.hostname,
                    path=_path_modifier(r.path),
                    port=r.port,
                    status_code=r.status_code,
                )
            )
        elif item.type == "URLRewrite":
            out.append(
                Rewrite(
                    hostname=spec.url_rewrite.hostname, path=_path_modifier(spec.url_rewrite.path)
                )
            )
        elif item.type == "RequestMirror":
            mirror = spec.request_mirror
            backend = resolver.resolve(route.KIND, route.namespace, mirror.backend_ref, mesh)
            if backend.state == BackendState.INVALID:
                compiled.ref_problems.append(
                    (RouteReason(backend.reason), f"{where}.filters[{i}] mirror {backend.message}")
                )
                continue
            if mirror.fraction is not None:
                numerator, denominator = mirror.fraction.numerator, mirror.fraction.denominator
            elif mirror.percent is not None:
                numerator, denominator = mirror.percent, 100
            else:
                numerator, denominator = 1, 1
            out.append(Mirror(backend, numerator, denominator))
        elif item.type == "CORS":
            c = spec.cors
            out.append(
                Cors(
                    allow_origins=c.allow_origins,
                    allow_credentials=bool(c.allow_credentials),
                    allow_methods=c.allow_methods,
                    allow_headers=c.allow_headers,
                    expose_headers=c.expose_headers,
                    max_age=c.max_age,
                )
            )
        elif item.type == "ExtensionRef":
            ext = spec.extension_ref
            return (), (
                f"{where}.filters[{i}]: ExtensionRef {ext.group or 'core'}/{ext.kind} {ext.name} "
                "is not supported (netlet implements no extension filters)"
            )
        else:  # ExternalAuth
            return (), f"{where}.filters[{i}]: {item.type} filters are not supported by netlet"
    return tuple(out), None


def _value_matches(matches: tuple[HeaderMatch, ...], lower: bool) -> tuple[ValueMatch, ...]:
    out = []
    for m in matches:
        regex = _regex(m.value) if m.type == "RegularExpression" else None
        out.append(ValueMatch(m.name.lower() if lower else m.name, m.value, regex))
    return tuple(out)


def compile_http_match(match: HTTPRouteMatch) -> HTTPMatch:
    path = match.path
    prefix = ""
    regex = None
    if path.type == "PathPrefix":
        prefix = path.value.rstrip("/") or "/"
    elif path.type == "RegularExpression":
        regex = _regex(path.value)
    return HTTPMatch(
        path_type=path.type,
        path=path.value,
        prefix=prefix,
        path_regex=regex,
        method=match.method,
        headers=_value_matches(match.headers, lower=True),
        query=_value_matches(match.query_params, lower=False),
    )


def _backends(
    refs: Any, compiled: CompiledRoute, resolver: BackendResolver, mesh: bool, where: str
) -> tuple[tuple[WeightedBackend, ...], str | None]:
    route = compiled.route
    out = []
    for j, ref in enumerate(refs):
        backend = resolver.resolve(route.KIND, route.namespace, ref, mesh)
        if backend.state == BackendState.INVALID:
            compiled.ref_problems.append(
                (RouteReason(backend.reason), f"{where}.backendRefs[{j}] {backend.message}")
            )
        filters: tuple[Filter, ...] = ()
        if getattr(ref, "filters", ()):
            filters, why = _compile_filters(
                ref.filters, compiled, resolver, mesh, f"{where}.backendRefs[{j}]"
            )
            if why is not None:
                return (), why
        out.append(WeightedBackend(ref.weight, backend, filters))
    return tuple(out), None


def compile_route(route: AnyRoute, resolver: BackendResolver, mesh: bool = False) -> CompiledRoute:
    ref = route_ref(route)
    compiled = CompiledRoute(route, ref, creation_order(route.metadata.creation_timestamp))
    if isinstance(route, HTTPRoute):
        _compile_http(route, compiled, resolver, mesh)
    elif isinstance(route, GRPCRoute):
        _compile_grpc(route, compiled, resolver, mesh)
    else:
        for i, rule in enumerate(route.spec.rules):
            rule_ref = RuleRef(ref, i, rule.name)
            backends, _ = _backends(rule.backend_refs, compiled, resolver, mesh, f"rules[{i}]")
            compiled.l4.append(L4Rule(rule_ref, backends))
    return compiled


def _rule_parts(
    i: int,
    rule: HTTPRouteRule | GRPCRouteRule,
    compiled: CompiledRoute,
    resolver: BackendResolver,
    mesh: bool,
) -> tuple[tuple[Filter, ...], tuple[WeightedBackend, ...]] | None:
    """The filters and backends of rule i, or None (recorded in `compiled.dropped`)
    when the rule is invalid: the part shared by HTTPRoute and GRPCRoute rules."""
    where = f"rules[{i}]"
    if rule.session_persistence is not None:
        compiled.dropped.append((i, f"{where}.sessionPersistence is not supported by netlet"))
        return None
    filters, why = _compile_filters(rule.filters, compiled, resolver, mesh, where)
    backends: tuple[WeightedBackend, ...] = ()
    if why is None:
        backends, why = _backends(rule.backend_refs, compiled, resolver, mesh, where)
    if why is not None:
        compiled.dropped.append((i, why))
        return None
    return filters, backends


def _compile_http(
    route: HTTPRoute, compiled: CompiledRoute, resolver: BackendResolver, mesh: bool
) -> None:
    for i, rule in enumerate(route.spec.rules):
        parts = _rule_parts(i, rule, compiled, resolver, mesh)
        if parts is None:
            continue
        filters, backends = parts
        timeouts = None
        if rule.timeouts is not None:
            timeouts = Timeouts(
                parse_duration(rule.timeouts.request) if rule.timeouts.request else None,
                parse_duration(rule.timeouts.backend_request)
                if rule.timeouts.backend_request
                else None,
            )
        retry = None
        if rule.retry is not None:
            retry = Retry(
                rule.retry.codes,
                rule.retry.attempts,
                parse_duration(rule.retry.backoff) if rule.retry.backoff else None,
            )
        http_rule = HTTPRule(
            RuleRef(compiled.ref, i, rule.name), filters, backends, timeouts, retry
        )
        compiled.http.append((http_rule, tuple(compile_http_match(m) for m in rule.matches)))


def _compile_grpc(
    route: GRPCRoute, compiled: CompiledRoute, resolver: BackendResolver, mesh: bool
) -> None:
    rules = route.spec.rules
    if not rules:
        compiled.dropped.append((0, "the route has no rules"))
    for i, rule in enumerate(rules):
        parts = _rule_parts(i, rule, compiled, resolver, mesh)
        if parts is None:
            continue
        filters, backends = parts
        matches: tuple[GRPCMatch, ...] | None = None
        if rule.matches:
            out = []
            for m in rule.matches:
                method = m.method
                if method is None:
                    out.append(GRPCMatch(headers=_value_matches(m.headers, lower=True)))
                    continue
                regex = method.type == "RegularExpression"
                out.append(
                    GRPCMatch(
                        type=method.type,
                        service=method.service,
                        method=method.method,
                        service_regex=_regex(method.service) if regex and method.service else None,
                        method_regex=_regex(method.method) if regex and method.method else None,
                        headers=_value_matches(m.headers, lower=True),
                    )
                )
            matches = tuple(out)
        compiled.grpc.append(
            (HTTPRule(RuleRef(compiled.ref, i, rule.name), filters, backends), matches)
        )
