"""The gateway program: precomputed route tables a data plane serves without
re-reading any Kubernetes object.

This module is the contract between the gateway brain (`netlet.gateway.build`
makes these values) and its consumers: the proxy (`netlet.dataplane.proxy`),
`netlet gateway route` and the tests. Everything is immutable (frozen dataclasses
with slots, tuples, `ipaddress` values; the few lookup dicts are built once and
never mutated, and are excluded from equality). Matching lives in
`netlet.gateway.match`, the one implementation both the explainer and the proxy use.

Layout::

    GatewayProgram (one Gateway)
      gateway, addresses
      listeners:  ListenerTable...          every Programmed listener, merged order
      ports:      (transport, port) -> PortTable
    PortTable (one socket: "tcp"/"udp" + port)
      listeners:  ListenerTable...          most specific hostname first
    ListenerTable
      info: ListenerInfo                    name, owner (Gateway/ListenerSet), port,
                                            protocol, hostname, tls (certificates,
                                            frontend CA bundle)
      http: HTTPTable | None                HTTP/HTTPS listeners
      grpc: GRPCTable | None                HTTP/HTTPS listeners with GRPCRoutes
      tls:  TLSTable | None                 TLS listeners (TLSRoute by SNI)
      l4:   L4Rule | None                   TCP/UDP listeners, TLS Terminate + TCPRoute
    HTTPTable
      entries: HTTPEntry...                 the total order (rank = position)
      exact_hosts / wildcard_hosts / any_host -> PathIndex    (hostname groups)
    HTTPEntry = one (rule, match) pair: rank, HTTPRule, HTTPMatch, match_index,
                route hostnames, precedence key
    HTTPRule: ref (route, rule index/name), filters (in order), backends,
              timeouts, retry; derived once: effects (FilterEffects),
              outcome / preflight (RuleAction: what matching the rule does)
    WeightedBackend: weight, Backend, backend-level filters
    Backend: key (kind/ns/name/port), state (valid | invalid -> 500 |
             no-endpoints -> 503), endpoints, appProtocol, tls (BackendTLSPolicy)

Precedence (HTTPRouteRule.Matches, HTTPRouteSpec.Hostnames, Listener.AllowedRoutes):
hostname groups are tried in order (exact request host, then matching wildcards
longest first, then routes without hostnames); inside a group the entry with the
lowest rank that matches wins. Ranks order entries by: Exact path, then
RegularExpression path (implementation-specific; longer pattern first), then
PathPrefix by prefix length; then method match; more header matches; more query
matches; older route; route "{namespace}/{name}"; rule index; match index.

GRPCRoute (GRPCRouteRule.Matches): hostname groups the same way; ranks order by
characters in the service, characters in the method, header matches, then route
age, name, rule and match index.

Requests with `content-type: application/grpc*` are matched against a listener's
GRPCRoutes first and fall back to its HTTPRoutes (v1.6 lets HTTPRoutes and
GRPCRoutes share hostnames); other requests only see HTTPRoutes.

Backends: `state` says what the data plane does with the share of traffic the
weights send there: VALID -> forward to one of `endpoints`; INVALID -> answer 500
(gRPC: UNAVAILABLE); NO_ENDPOINTS -> answer 503. A rule whose weights are all 0,
or that has no backendRefs and no redirect, answers 500.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from netlet.gateway.hostnames import wildcard_candidates

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Headers = tuple[tuple[str, str], ...]


# Requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class Request:
    """An HTTP request as the gateway received it (or as a backend will see it).

    `path` excludes the query; `query` is the raw query string without '?';
    `host` is the Host/:authority value as sent; `port` is the listener port the
    connection arrived on; `sni` is the TLS server name (HTTPS only)."""

    method: str
    path: str
    host: str
    port: int
    scheme: str = "http"
    query: str = ""
    headers: Headers = ()
    sni: str | None = None
    # Lookup maps, made on first use: most requests are routed without reading a
    # header or the query (the proxy builds one Request per request it serves).
    _header_map: dict[str, str] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    _query_map: dict[str, str] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __init__(
        self,
        method: str,
        path: str,
        host: str,
        port: int,
        scheme: str = "http",
        query: str = "",
        headers: Headers = (),
        sni: str | None = None,
    ) -> None:
        # What the generated __init__ does, through the slots' own setters: a proxy
        # makes one Request per request it routes (see `slot_setters`).
        _request_method(self, method)
        _request_path(self, path)
        _request_host(self, host)
        _request_port(self, port)
        _request_scheme(self, scheme)
        _request_query(self, query)
        _request_headers(self, headers)
        _request_sni(self, sni)
        _request_header_map(self, None)
        _request_query_map(self, None)

    def header(self, name: str) -> str | None:
        """The value of a header (case-insensitive name), repeated values comma-joined."""
        header_map = self._header_map
        if header_map is None:
            header_map = {}
            for raw, value in self.headers:
                key = raw.lower()
                # Repeated headers are compared as one comma-joined value (RFC 9110 5.3).
                header_map[key] = f"{header_map[key]},{value}" if key in header_map else value
            # A cache of a value derived from immutable fields: the Request stays equal.
            object.__setattr__(self, "_header_map", header_map)
        return header_map.get(name.lower())

    def query_param(self, name: str) -> str | None:
        """The first value of a query parameter (exact, case-sensitive name)."""
        query_map = self._query_map
        if query_map is None:
            query_map = {}
            if self.query:
                for key, value in parse_qsl(self.query, keep_blank_values=True):
                    query_map.setdefault(key, value)  # the first value of a repeated param
            object.__setattr__(self, "_query_map", query_map)
        return query_map.get(name)

    @property
    def is_grpc(self) -> bool:
        content_type = self.header("content-type") or ""
        return content_type.startswith("application/grpc")

    @property
    def grpc_service_method(self) -> tuple[str, str] | None:
        """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
        parts = self.path.split("/")
        if len(parts) == 3 and parts[0] == "" and parts[1] and parts[2]:
            return parts[1], parts[2]
        return None

    @property
    def url(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"

    @classmethod
    def from_url(
        cls,
        method: str,
        url: str,
        headers: Headers = (),
        *,
        sni: str | None = None,
    ) -> Request:
        """'GET', 'https://shop.example.com/api?x=1' -> a Request on port 443 with SNI
        (the URL's host) unless `sni` says otherwise. A Host header overrides the URL's."""
        parts = urlsplit(url)
        scheme = (parts.scheme or "http").lower()
        port = parts.port or (443 if scheme == "https" else 80)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        host = next((v for k, v in headers if k.lower() == "host"), netloc)
        if scheme == "https" and sni is None:
            sni = (parts.hostname or "").lower() or None
        return cls(
            method=method.upper(),
            path=parts.path or "/",
            host=host,
            port=port,
            scheme=scheme,
            query=parts.query,
            headers=tuple((k, v) for k, v in headers if k.lower() != "host"),
            sni=sni,
        )


def slot_setters(cls: type, *names: str) -> tuple[Callable[[object, object], None], ...]:
    """The `__set__` of slots of a frozen dataclass, for a hand-written `__init__` that
    is cheaper than the generated one (which goes through `object.__setattr__` for
    each field). Only for construction: the instances stay frozen."""
    return tuple(cls.__dict__[name].__set__ for name in names)


(
    _request_method,
    _request_path,
    _request_host,
    _request_port,
    _request_scheme,
    _request_query,
    _request_headers,
    _request_sni,
    _request_header_map,
    _request_query_map,
) = slot_setters(
    Request,
    "method",
    "path",
    "host",
    "port",
    "scheme",
    "query",
    "headers",
    "sni",
    "_header_map",
    "_query_map",
)


# Backends ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend address (EndpointSlice endpoint or selected pod) and target port."""

    address: IPAddress
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node: str | None = None
    zone: str | None = None
    target: str = ""  # "Pod ns/name" when known

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


class BackendState(enum.StrEnum):
    VALID = "valid"  # forward to an endpoint
    INVALID = "invalid"  # HTTPBackendRef invalid: answer 500 for this share
    NO_ENDPOINTS = "no-endpoints"  # a Service without ready endpoints: answer 503


@dataclass(frozen=True, slots=True)
class BackendKey:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | None

    def __str__(self) -> str:
        kind = self.kind if not self.group else f"{self.kind}.{self.group}"
        port = f":{self.port}" if self.port is not None else ""
        return f"{kind} {self.namespace}/{self.name}{port}"


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """BackendTLSPolicy for this Service port: originate TLS to the endpoints.

    `ca_bundle` is the concatenated PEM of the valid caCertificateRefs;
    `well_known` is "System" when the system trust store is to be used;
    `valid` is False when no CA could be resolved (connections must fail: 5xx)."""

    policy: str  # "ns/name"
    hostname: str  # SNI, and the name to verify unless subject_alt_names is set
    ca_bundle: bytes = b""
    well_known: str | None = None
    subject_alt_names: tuple[tuple[Literal["Hostname", "URI"], str], ...] = ()
    valid: bool = True


@dataclass(frozen=True, slots=True)
class Backend:
    """A resolved backendRef target. Shared by every rule that references it."""

    key: BackendKey
    state: BackendState
    reason: str = ""  # RouteReason for INVALID
    message: str = ""
    endpoints: tuple[Endpoint, ...] = ()  # usable endpoints (ready), in a stable order
    app_protocol: str | None = None
    service_port_name: str | None = None
    tls: BackendTLS | None = None

    @property
    def status_code(self) -> int | None:
        """What the data plane answers instead of forwarding, if anything."""
        if self.state == BackendState.INVALID:
            return 500
        if self.state == BackendState.NO_ENDPOINTS:
            return 503
        return None


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    weight: int
    backend: Backend
    filters: tuple[Filter, ...] = ()  # HTTPBackendRef.filters: only when this one is chosen


# Filters -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """HTTPHeaderFilter: set (replace), add (append), remove; names case-insensitive."""

    kind: Literal["RequestHeaderModifier", "ResponseHeaderModifier"]
    set: Headers = ()
    add: Headers = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str


@dataclass(frozen=True, slots=True)
class Redirect:
    kind: Literal["RequestRedirect"] = "RequestRedirect"
    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class Rewrite:
    kind: Literal["URLRewrite"] = "URLRewrite"
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    """Send a copy of `numerator/denominator` of requests to one endpoint of `backend`;
    its responses are ignored."""

    backend: Backend
    numerator: int = 1
    denominator: int = 1
    kind: Literal["RequestMirror"] = "RequestMirror"


@dataclass(frozen=True, slots=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5
    kind: Literal["CORS"] = "CORS"


Filter = HeaderOps | Redirect | Rewrite | Mirror | Cors


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; 0 disables the timeout; None leaves the proxy's default."""

    request: float | None = None
    backend_request: float | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: float | None = None  # seconds, base interval


# Rules and matches ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class RuleRef:
    route: RouteRef
    index: int
    name: str | None = None
    # "HTTPRoute ns/name rules[i] (name)", made once: logs and reasons use it per request.
    text: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        name = f" ({self.name})" if self.name else ""
        object.__setattr__(self, "text", f"{self.route} rules[{self.index}]{name}")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """A header or query-parameter condition: Exact or RegularExpression (full match)."""

    name: str  # header names are kept lower-case
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.regex is not None:
            return self.regex.fullmatch(actual) is not None
        return actual == self.value


PathType = Literal["Exact", "PathPrefix", "RegularExpression"]


@dataclass(frozen=True, slots=True)
class HTTPMatch:
    """One HTTPRouteMatch, compiled. `path` is the value as written; `prefix` is the
    PathPrefix value without its trailing '/' ('/' stays '/')."""

    path_type: PathType
    path: str
    prefix: str = ""
    path_regex: re.Pattern[str] | None = None
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()
    # True when the path is the only condition (the index has checked it already).
    path_only: bool = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        only = self.method is None and not self.headers and not self.query
        object.__setattr__(self, "path_only", only)

    def path_matches(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        if self.path_type == "PathPrefix":
            prefix = self.prefix
            return prefix in ("/", path) or path.startswith(prefix + "/")
        assert self.path_regex is not None
        return self.path_regex.fullmatch(path) is not None

    def mismatch(self, request: Request) -> str | None:
        """None when the request matches; otherwise the first failing condition."""
        if not self.path_matches(request.path):
            return f"path {request.path!r} does not match {self.path_type} {self.path!r}"
        if self.method is not None and request.method != self.method:
            return f"method {request.method} is not {self.method}"
        for cond in self.headers:
            if not cond.matches(request.header(cond.name)):
                return f"header {cond.name} {request.header(cond.name)!r} does not match"
        for cond in self.query:
            if not cond.matches(request.query_param(cond.name)):
                return f"query {cond.name} {request.query_param(cond.name)!r} does not match"
        return None

    def rest_matches(self, request: Request) -> bool:
        """Everything but the path (the index already chose the path)."""
        if self.method is not None and request.method != self.method:
            return False
        for cond in self.headers:
            if not cond.matches(request.header(cond.name)):
                return False
        return all(cond.matches(request.query_param(cond.name)) for cond in self.query)

    def __str__(self) -> str:
        parts = [f"{self.path_type} {self.path}"]
        if self.method:
            parts.append(f"method={self.method}")
        parts.extend(f"header {c.name}={c.value}" for c in self.headers)
        parts.extend(f"query {c.name}={c.value}" for c in self.query)
        return ", ".join(parts)


class Action(enum.StrEnum):
    FORWARD = "forward"  # send `request` to one of `backends`
    REDIRECT = "redirect"  # answer `status` with Location `location`
    RESPOND = "respond"  # answer `status` (404, 421, 500, CORS preflight 200)


@dataclass(frozen=True, slots=True)
class FilterEffects:
    """What a filter list does whatever the request: filters take effect in order and a
    RequestRedirect ends the list (HTTPRouteRule.Filters), so mirrors, response header
    modifiers and CORS listed after a redirect do nothing. `rewrites` is True when a
    filter before that point changes the request (RequestHeaderModifier, URLRewrite)."""

    redirect: Redirect | None = None
    mirrors: tuple[Mirror, ...] = ()
    response_ops: tuple[HeaderOps, ...] = ()
    cors: Cors | None = None
    rewrites: bool = False


def filter_effects(filters: tuple[Filter, ...]) -> FilterEffects:
    if not filters:
        return NO_EFFECTS
    mirrors: list[Mirror] = []
    response_ops: list[HeaderOps] = []
    cors: Cors | None = None
    redirect: Redirect | None = None
    rewrites = False
    for item in filters:
        if isinstance(item, HeaderOps):
            if item.kind == "RequestHeaderModifier":
                rewrites = True
            else:
                response_ops.append(item)
        elif isinstance(item, Redirect):
            redirect = item
            break
        elif isinstance(item, Rewrite):
            rewrites = True
        elif isinstance(item, Mirror):
            mirrors.append(item)
        elif isinstance(item, Cors):
            cors = item
    return FilterEffects(redirect, tuple(mirrors), tuple(response_ops), cors, rewrites)


NO_EFFECTS = FilterEffects()


@dataclass(frozen=True, slots=True)
class RuleAction:
    """What a rule does when it matches, whatever the request (HTTPRouteRule): forward to
    its backends, redirect, or answer 500 when it has no usable backendRefs. Made once per
    rule with the table, reason text included, and shared by every decision; what depends
    on the request (the rewritten request, a redirect's Location, CORS preflight headers)
    is in the decision itself."""

    action: Action
    status: int  # 0 for FORWARD (the backend answers)
    reason: str
    backends: tuple[WeightedBackend, ...] = ()
    mirrors: tuple[Mirror, ...] = ()
    response_ops: tuple[HeaderOps, ...] = ()
    cors: Cors | None = None
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    # The filters must run on each request: they rewrite it, or redirect (Location).
    per_request: bool = False
    # Some backendRef has filters of its own (applied to the request it is chosen for).
    backend_filters: bool = False


@dataclass(frozen=True, slots=True)
class HTTPRule:
    ref: RuleRef
    filters: tuple[Filter, ...] = ()
    backends: tuple[WeightedBackend, ...] = ()
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    # Derived once from the fields above (see RuleAction): `outcome` for any request,
    # `preflight` for a CORS preflight when the rule has a CORS filter.
    effects: FilterEffects = field(init=False, repr=False, compare=False, hash=False)
    outcome: RuleAction = field(init=False, repr=False, compare=False, hash=False)
    preflight: RuleAction | None = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        effects = filter_effects(self.filters)
        ref = self.ref

        def action(
            kind: Action,
            status: int,
            reason: str,
            backends: tuple[WeightedBackend, ...] = (),
            per_request: bool = effects.rewrites,
        ) -> RuleAction:
            return RuleAction(
                kind,
                status,
                reason,
                backends,
                effects.mirrors,
                effects.response_ops,
                effects.cors,
                self.timeouts,
                self.retry,
                per_request,
                any(b.filters for b in backends),
            )

        # The order of HTTPRouteRule semantics: a redirect answers whatever else the
        # rule says; a CORS preflight is answered by the gateway; a rule without a
        # usable backendRef answers 500.
        preflight = None
        if effects.redirect is not None:
            outcome = action(
                Action.REDIRECT, effects.redirect.status_code, f"redirect by {ref}", (), True
            )
        else:
            if effects.cors is not None:
                preflight = action(Action.RESPOND, 200, f"CORS preflight answered by {ref}")
            if not self.backends or all(b.weight == 0 for b in self.backends):
                why = "no backendRefs" if not self.backends else "every backendRef has weight 0"
                outcome = action(Action.RESPOND, 500, f"{ref}: {why}")
            else:
                outcome = action(Action.FORWARD, 0, f"forward by {ref}", self.backends)
        object.__setattr__(self, "effects", effects)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "preflight", preflight)

    @property
    def redirect(self) -> Redirect | None:
        return next((f for f in self.filters if isinstance(f, Redirect)), None)


@dataclass(frozen=True, slots=True)
class HTTPEntry:
    """One (rule, match) pair in a listener's total order."""

    rank: int
    rule: HTTPRule
    match: HTTPMatch
    match_index: int
    hostnames: tuple[str, ...]  # the route's hostnames on this listener; () = any
    key: tuple[object, ...]  # the precedence key the rank was sorted by

    def __str__(self) -> str:
        return f"{self.rule.ref} matches[{self.match_index}] ({self.match})"


@dataclass(frozen=True, slots=True)
class PathIndex:
    """HTTP entries of one hostname group, by path. Each list is in rank order."""

    exact: Mapping[str, tuple[HTTPEntry, ...]] = field(default_factory=dict, compare=False)
    prefix: Mapping[str, tuple[HTTPEntry, ...]] = field(default_factory=dict, compare=False)
    regex: tuple[HTTPEntry, ...] = ()
    # Segments in the longest indexed prefix ('/' has none): longer candidates of a
    # request path cannot be in `prefix`, so they are not even formed.
    depth: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        depth = max((0 if key == "/" else key.count("/") for key in self.prefix), default=0)
        object.__setattr__(self, "depth", depth)

    def candidate_lists(self, path: str) -> list[tuple[HTTPEntry, ...]]:
        """Every list that may hold a matching entry for `path`."""
        lists = []
        exact = self.exact.get(path)
        if exact:
            lists.append(exact)
        if self.regex:
            lists.append(self.regex)
        prefix = self.prefix
        if prefix:
            depth = self.depth
            if depth == 0:
                # Only '/' is indexed: the one candidate of every path.
                found = prefix.get("/")
                if found:
                    lists.append(found)
                return lists
            for candidate in prefix_candidates(cut_path(path, depth)):
                found = prefix.get(candidate)
                if found:
                    lists.append(found)
        return lists


def cut_path(path: str, depth: int) -> str:
    """`path` without what follows its first `depth` segments: all that a PathPrefix
    index whose longest prefix has `depth` segments reads of it."""
    if path.count("/") > depth:
        return path[: _nth_slash(path, depth + 1)]
    return path


def _nth_slash(path: str, n: int) -> int:
    """The index of the n-th '/' of `path` (1-based); the caller knows there are n."""
    index = -1
    for _ in range(n):
        index = path.index("/", index + 1)
    return index


def prefix_candidates(path: str) -> list[str]:
    """Normalized PathPrefix values that can match `path`, longest first:
    '/a/b/c' -> ['/a/b/c', '/a/b', '/a', '/']; '/a/b/' -> ['/a/b', '/a', '/']."""
    out = []
    if path and path != "/" and not path.endswith("/"):
        out.append(path)
    cut = path.rfind("/")
    while cut > 0:
        out.append(path[:cut])
        cut = path.rfind("/", 0, cut)
    out.append("/")
    return out


@dataclass(frozen=True, slots=True)
class HTTPTable:
    entries: tuple[HTTPEntry, ...] = ()
    exact_hosts: Mapping[str, PathIndex] = field(default_factory=dict, compare=False)
    wildcard_hosts: Mapping[str, PathIndex] = field(default_factory=dict, compare=False)
    any_host: PathIndex = field(default_factory=PathIndex)

    def groups(self, host: str) -> list[tuple[str, PathIndex]]:
        """Hostname groups for a (normalized) request host, in precedence order."""
        out: list[tuple[str, PathIndex]] = []
        exact = self.exact_hosts.get(host)
        if exact is not None:
            out.append((host, exact))
        if self.wildcard_hosts:
            for wildcard in wildcard_candidates(host):
                found = self.wildcard_hosts.get(wildcard)
                if found is not None:
                    out.append((wildcard, found))
        out.append(("", self.any_host))
        return out


@dataclass(frozen=True, slots=True)
class GRPCMatch:
    """One GRPCRouteMatch, compiled; service/method None match anything."""

    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = None
    method: str | None = None
    service_regex: re.Pattern[str] | None = None
    method_regex: re.Pattern[str] | None = None
    headers: tuple[ValueMatch, ...] = ()

    def mismatch(self, service: str, method: str, request: Request) -> str | None:
        if self.service is not None:
            ok = (
                self.service_regex.fullmatch(service) is not None
                if self.service_regex is not None
                else service == self.service
            )
            if not ok:
                return f"service {service!r} does not match {self.type} {self.service!r}"
        if self.method is not None:
            ok = (
                self.method_regex.fullmatch(method) is not None
                if self.method_regex is not None
                else method == self.method
            )
            if not ok:
                return f"method {method!r} does not match {self.type} {self.method!r}"
        for cond in self.headers:
            if not cond.matches(request.header(cond.name)):
                return f"header {cond.name} {request.header(cond.name)!r} does not match"
        return None

    def __str__(self) -> str:
        parts = []
        if self.service is not None or self.method is not None:
            parts.append(f"{self.type} {self.service or '*'}/{self.method or '*'}")
        parts.extend(f"header {c.name}={c.value}" for c in self.headers)
        return ", ".join(parts) or "any"


@dataclass(frozen=True, slots=True)
class GRPCEntry:
    rank: int
    rule: HTTPRule  # GRPCRoute rules carry the same filter/backends shape
    match: GRPCMatch
    match_index: int | None  # None: a rule without matches (matches everything)
    hostnames: tuple[str, ...]
    key: tuple[object, ...]

    def __str__(self) -> str:
        where = f"matches[{self.match_index}]" if self.match_index is not None else "any"
        return f"{self.rule.ref} {where} ({self.match})"


@dataclass(frozen=True, slots=True)
class GRPCTable:
    entries: tuple[GRPCEntry, ...] = ()
    exact_hosts: Mapping[str, tuple[GRPCEntry, ...]] = field(default_factory=dict, compare=False)
    wildcard_hosts: Mapping[str, tuple[GRPCEntry, ...]] = field(default_factory=dict, compare=False)
    any_host: tuple[GRPCEntry, ...] = ()

    def groups(self, host: str) -> list[tuple[str, tuple[GRPCEntry, ...]]]:
        out: list[tuple[str, tuple[GRPCEntry, ...]]] = []
        exact = self.exact_hosts.get(host)
        if exact:
            out.append((host, exact))
        for wildcard in wildcard_candidates(host):
            found = self.wildcard_hosts.get(wildcard)
            if found:
                out.append((wildcard, found))
        out.append(("", self.any_host))
        return out


# Layer 4 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class L4Rule:
    """A TLSRoute/TCPRoute/UDPRoute rule: weighted backends (invalid shares are refused)."""

    ref: RuleRef
    backends: tuple[WeightedBackend, ...]


@dataclass(frozen=True, slots=True)
class TLSEntry:
    hostname: str  # the TLSRoute hostname (precise or wildcard)
    rule: L4Rule
    key: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class TLSTable:
    """TLSRoutes on a TLS listener by SNI: precise names, then wildcards longest first;
    between routes with the same hostname the older (then namespace/name) wins."""

    entries: tuple[TLSEntry, ...] = ()
    by_host: Mapping[str, TLSEntry] = field(default_factory=dict, compare=False)


# Listeners, ports, gateways ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    """A TLS certificate chain and key (PEM) from a kubernetes.io/tls Secret."""

    secret: str  # "ns/name"
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class FrontendValidation:
    """Client certificate validation (Gateway spec.tls.frontend) for an HTTPS listener."""

    ca_bundle: bytes
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    mode: Literal["Terminate", "Passthrough"]
    certificates: tuple[Certificate, ...] = ()
    frontend_validation: FrontendValidation | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    gateway: str  # "ns/name" of the Gateway the listener is merged into
    owner_kind: Literal["Gateway", "ListenerSet"]
    owner: str  # "ns/name" of the object that declares it
    name: str
    port: int
    protocol: Literal["HTTP", "HTTPS", "TLS", "TCP", "UDP"]
    hostname: str | None = None
    tls: ListenerTLS | None = None

    @property
    def transport(self) -> Literal["tcp", "udp"]:
        return "udp" if self.protocol == "UDP" else "tcp"

    def __str__(self) -> str:
        owner = f"{self.owner_kind} {self.owner}"
        return f"{owner} listener {self.name} ({self.protocol}/{self.port})"


@dataclass(frozen=True, slots=True)
class ListenerTable:
    info: ListenerInfo
    http: HTTPTable | None = None
    grpc: GRPCTable | None = None
    tls: TLSTable | None = None
    l4: L4Rule | None = None


@dataclass(frozen=True, slots=True)
class PortTable:
    transport: Literal["tcp", "udp"]
    port: int
    listeners: tuple[ListenerTable, ...]  # most specific hostname first


@dataclass(frozen=True, slots=True)
class GatewayProgram:
    gateway: str  # "ns/name"
    addresses: tuple[str, ...] = ()
    listeners: tuple[ListenerTable, ...] = ()
    # spec.tls.backend.clientCertificateRef: presented to backends with a BackendTLSPolicy.
    client_certificate: Certificate | None = None
    ports: Mapping[tuple[str, int], PortTable] = field(default_factory=dict, compare=False)

    def port(self, port: int, transport: str = "tcp") -> PortTable | None:
        return self.ports.get((transport, port))


# Mesh (GAMMA) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeshRoutes:
    """Routes of one role (producer, or consumers from one namespace) for a Service port.
    Route hostnames are ignored in a mesh (GEP-1294 "hostnames field")."""

    http: HTTPTable | None = None
    grpc: GRPCTable | None = None


@dataclass(frozen=True, slots=True)
class MeshPort:
    """GEP-1294: requests to a Service frontend (its ClusterIP and port) from namespace N
    use N's consumer routes when there are any, else the producer routes (routes in the
    Service's own namespace); with neither, the Service works as plain Kubernetes."""

    service: str  # "ns/name"
    port: int
    port_name: str | None = None
    cluster_ips: tuple[IPAddress, ...] = ()
    producer: MeshRoutes | None = None
    consumers: Mapping[str, MeshRoutes] = field(default_factory=dict, compare=False)

    def routes_for(self, client_namespace: str) -> tuple[str, MeshRoutes | None]:
        """('consumer'|'producer'|'none', routes) for a client in `client_namespace`."""
        consumer = self.consumers.get(client_namespace)
        if consumer is not None:
            return "consumer", consumer
        if self.producer is not None:
            return "producer", self.producer
        return "none", None


@dataclass(frozen=True, slots=True)
class MeshProgram:
    ports: Mapping[tuple[str, str, int], MeshPort] = field(default_factory=dict, compare=False)

    def port(self, namespace: str, name: str, port: int) -> MeshPort | None:
        return self.ports.get((namespace, name, port))
