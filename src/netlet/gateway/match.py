"""Request matching over the gateway program: the one implementation of routing
decisions, used by the proxy for every request and by `netlet gateway route`.

    match_http(program, request)            -> HTTPDecision   HTTP/HTTPS/gRPC
    match_tls(program, port, sni)            -> L4Decision     TLS listeners (SNI)
    match_tcp(program, port) / match_udp     -> L4Decision
    match_mesh(mesh, client_ns, ns, name, port, request) -> HTTPDecision  (GAMMA)
    select_tls_listener(program, port, sni)  -> ListenerTable  (certificate choice)
    pick_backend(backends, r)                -> WeightedBackend | None
    backend_request(decision, chosen)        -> Request as that backend sees it

Listener selection (Gateway "Listener Isolation" and Listener.Hostname): among
the port's listeners of the request's protocol, the most specific hostname that
matches the Host header wins; with HTTPS the SNI picks the listener and a Host
that another listener matches better answers 421, a Host no listener matches 404.

Decisions carry no randomness: weighted choice and mirror sampling take the
caller's random number, so the proxy and tests stay deterministic when they want.
The functions never mutate the tables and never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netlet.gateway.filters import (
    apply_request_filters,
    cors_preflight_headers,
    is_preflight,
)
from netlet.gateway.hostnames import host_matches, normalize_host, wildcard_candidates
from netlet.gateway.table import (
    Action,
    Cors,
    GatewayProgram,
    GRPCEntry,
    GRPCTable,
    HeaderOps,
    Headers,
    HTTPEntry,
    HTTPTable,
    L4Rule,
    ListenerInfo,
    ListenerTable,
    MeshProgram,
    Mirror,
    Request,
    Retry,
    RuleAction,
    Timeouts,
    WeightedBackend,
    cut_path,
    slot_setters,
)

__all__ = [
    "Action",
    "HTTPDecision",
    "L4Decision",
    "PathClasses",
    "backend_request",
    "find_grpc_entry",
    "find_http_entry",
    "match_http",
    "match_listener",
    "match_mesh",
    "match_tcp",
    "match_tls",
    "match_udp",
    "path_classes",
    "pick_backend",
    "routing_headers",
    "select_listener",
    "select_tls_listener",
    "should_mirror",
    "with_host",
]


@dataclass(frozen=True, slots=True, init=False)
class HTTPDecision:
    """The answer for one request: what the matched rule does (`outcome`, shared by
    every request that rule matches, reason text included) and what depends on this
    request (the request after the rule's filters, a redirect's Location, CORS
    preflight headers). The rule's fields read through: `decision.backends`..."""

    outcome: RuleAction
    original: Request
    request: Request  # after the rule's request filters
    listener: ListenerInfo | None = None
    entry: HTTPEntry | GRPCEntry | None = None
    location: str | None = None
    response_headers: Headers = ()  # for RESPOND (CORS preflight headers)
    grpc: bool = False  # routed by a GRPCRoute (errors as gRPC statuses)
    role: str = ""  # mesh: "producer" / "consumer"

    def __init__(
        self,
        outcome: RuleAction,
        original: Request,
        request: Request,
        listener: ListenerInfo | None = None,
        entry: HTTPEntry | GRPCEntry | None = None,
        location: str | None = None,
        response_headers: Headers = (),
        grpc: bool = False,
        role: str = "",
    ) -> None:
        # The generated __init__'s work through the slots' setters (one decision per
        # request the brain routes; see table.slot_setters).
        _decision_outcome(self, outcome)
        _decision_original(self, original)
        _decision_request(self, request)
        _decision_listener(self, listener)
        _decision_entry(self, entry)
        _decision_location(self, location)
        _decision_response_headers(self, response_headers)
        _decision_grpc(self, grpc)
        _decision_role(self, role)

    @property
    def action(self) -> Action:
        return self.outcome.action

    @property
    def status(self) -> int:
        """0 for FORWARD (the backend answers)."""
        return self.outcome.status

    @property
    def reason(self) -> str:
        return self.outcome.reason

    @property
    def backends(self) -> tuple[WeightedBackend, ...]:
        return self.outcome.backends

    @property
    def mirrors(self) -> tuple[Mirror, ...]:
        return self.outcome.mirrors

    @property
    def response_ops(self) -> tuple[HeaderOps, ...]:
        """Apply to the backend's response."""
        return self.outcome.response_ops

    @property
    def cors(self) -> Cors | None:
        """Add cors_response_headers to the response."""
        return self.outcome.cors

    @property
    def timeouts(self) -> Timeouts | None:
        return self.outcome.timeouts

    @property
    def retry(self) -> Retry | None:
        return self.outcome.retry

    @property
    def matched_prefix(self) -> str | None:
        if isinstance(self.entry, HTTPEntry) and self.entry.match.path_type == "PathPrefix":
            return self.entry.match.prefix
        return None


(
    _decision_outcome,
    _decision_original,
    _decision_request,
    _decision_listener,
    _decision_entry,
    _decision_location,
    _decision_response_headers,
    _decision_grpc,
    _decision_role,
) = slot_setters(
    HTTPDecision,
    "outcome",
    "original",
    "request",
    "listener",
    "entry",
    "location",
    "response_headers",
    "grpc",
    "role",
)


def _respond(
    request: Request,
    status: int,
    reason: str,
    listener: ListenerInfo | None = None,
    grpc: bool = False,
    role: str = "",
) -> HTTPDecision:
    outcome = RuleAction(Action.RESPOND, status, reason)
    return HTTPDecision(outcome, request, request, listener=listener, grpc=grpc, role=role)


# Listener selection --------------------------------------------------------------------


def _first_listener(
    listeners: tuple[ListenerTable, ...], host: str, protocols: tuple[str, ...]
) -> ListenerTable | None:
    for table in listeners:
        info = table.info
        if info.protocol not in protocols:
            continue
        if not info.hostname or host_matches(info.hostname, host):
            return table
    return None


def select_tls_listener(
    program: GatewayProgram, port: int, sni: str | None
) -> ListenerTable | None:
    """The HTTPS or TLS listener a TLS connection lands on, by SNI (most specific
    hostname first); used to choose the certificate or passthrough."""
    table = program.port(port, "tcp")
    if table is None:
        return None
    return _first_listener(table.listeners, normalize_host(sni or ""), ("HTTPS", "TLS"))


def select_listener(
    program: GatewayProgram, request: Request
) -> tuple[ListenerTable | None, int, str]:
    """(listener, 0, '') or (None, status, why) for an HTTP(S) request."""
    return _select_listener(program, request, normalize_host(request.host))


def _select_listener(
    program: GatewayProgram, request: Request, host: str
) -> tuple[ListenerTable | None, int, str]:
    table = program.port(request.port, "tcp")
    if table is None:
        return None, 404, f"no listener on port {request.port}"
    https = request.scheme == "https"
    protocol = _HTTPS if https else _HTTP
    by_host = _first_listener(table.listeners, host, protocol)
    if https and request.sni is not None:
        by_sni = _first_listener(table.listeners, normalize_host(request.sni), protocol)
        if by_sni is None:
            return (
                None,
                404,
                f"no {protocol[0]} listener on port {request.port} for SNI {request.sni}",
            )
        if by_host is not by_sni:
            if by_host is not None:
                return (
                    None,
                    421,
                    (
                        f"misdirected: SNI {request.sni} selected {by_sni.info.name} but Host "
                        f"{host} belongs to {by_host.info.name}"
                    ),
                )
            return None, 404, f"Host {host} matches no listener (SNI selected {by_sni.info.name})"
    if by_host is None:
        return None, 404, f"Host {host} matches no {protocol[0]} listener on port {request.port}"
    return by_host, 0, ""


_HTTP = ("HTTP",)
_HTTPS = ("HTTPS",)


# Rule lookup ---------------------------------------------------------------------------


def find_http_entry(table: HTTPTable, request: Request) -> HTTPEntry | None:
    """The highest-precedence HTTPRoute match for the request, or None (404)."""
    return _find_http_entry(table, request, normalize_host(request.host))


def _find_http_entry(table: HTTPTable, request: Request, host: str) -> HTTPEntry | None:
    path = request.path
    for _, index in table.groups(host):
        best: HTTPEntry | None = None
        for entries in index.candidate_lists(path):
            for entry in entries:
                if best is not None and entry.rank >= best.rank:
                    break
                match = entry.match
                if match.path_type == "RegularExpression" and not match.path_matches(path):
                    continue
                if match.path_only or match.rest_matches(request):
                    best = entry
                    break
        if best is not None:
            return best
    return None


def find_grpc_entry(table: GRPCTable, request: Request) -> GRPCEntry | None:
    return _find_grpc_entry(table, request, normalize_host(request.host))


def _find_grpc_entry(table: GRPCTable, request: Request, host: str) -> GRPCEntry | None:
    service_method = request.grpc_service_method
    if service_method is None:
        return None
    service, method = service_method
    for _, entries in table.groups(host):
        for entry in entries:
            if entry.match.mismatch(service, method, request) is None:
                return entry
    return None


# Decisions -----------------------------------------------------------------------------


def _decide(
    request: Request,
    entry: HTTPEntry | GRPCEntry,
    listener: ListenerInfo | None,
    port: int,
    grpc: bool,
    role: str = "",
) -> HTTPDecision:
    rule = entry.rule
    outcome = rule.outcome
    forwarded = request
    location = None
    if outcome.per_request:
        prefix = (
            entry.match.prefix
            if isinstance(entry, HTTPEntry) and entry.match.path_type == "PathPrefix"
            else None
        )
        result = apply_request_filters(request, rule.filters, prefix, port, rule.effects)
        forwarded, location = result.request, result.location
    preflight = rule.preflight
    if preflight is not None and preflight.cors is not None and is_preflight(request):
        headers = cors_preflight_headers(preflight.cors, request)
        return HTTPDecision(
            preflight, request, forwarded, listener, entry, None, headers, grpc, role
        )
    return HTTPDecision(outcome, request, forwarded, listener, entry, location, (), grpc, role)


def match_listener(table: ListenerTable, request: Request) -> HTTPDecision:
    """Route a request that has landed on `table` (an HTTP or HTTPS listener)."""
    return _match_listener(table, request, normalize_host(request.host))


def _match_listener(table: ListenerTable, request: Request, host: str) -> HTTPDecision:
    info = table.info
    if table.grpc is not None and request.is_grpc:
        grpc_entry = _find_grpc_entry(table.grpc, request, host)
        if grpc_entry is not None:
            return _decide(request, grpc_entry, info, info.port, grpc=True)
    if table.http is not None:
        entry = _find_http_entry(table.http, request, host)
        if entry is not None:
            return _decide(request, entry, info, info.port, grpc=False)
    return _respond(
        request, 404, f"no route rule on {info} matches", listener=info, grpc=request.is_grpc
    )


def match_http(program: GatewayProgram, request: Request) -> HTTPDecision:
    """Route one HTTP(S) or gRPC request arriving at the Gateway."""
    host = normalize_host(request.host)
    table, status, why = _select_listener(program, request, host)
    if table is None:
        return _respond(request, status, why)
    return _match_listener(table, request, host)


def match_mesh(
    mesh: MeshProgram,
    client_namespace: str,
    namespace: str,
    name: str,
    port: int,
    request: Request,
) -> HTTPDecision | None:
    """Route a request a pod in `client_namespace` sends to Service ns/name:port. None
    means no route applies: the Service behaves as plain Kubernetes (GEP-1294)."""
    mesh_port = mesh.port(namespace, name, port)
    if mesh_port is None:
        return None
    role, routes = mesh_port.routes_for(client_namespace)
    if routes is None:
        return None
    host = normalize_host(request.host)
    if routes.grpc is not None and request.is_grpc:
        grpc_entry = _find_grpc_entry(routes.grpc, request, host)
        if grpc_entry is not None:
            return _decide(request, grpc_entry, None, port, True, role)
    if routes.http is not None:
        entry = _find_http_entry(routes.http, request, host)
        if entry is not None:
            return _decide(request, entry, None, port, False, role)
    # Routes replace the implicit Service behaviour: no matching rule is a 404.
    return _respond(request, 404, f"no {role} route rule for {namespace}/{name}:{port}", role=role)


# Backends ------------------------------------------------------------------------------


def pick_backend(backends: tuple[WeightedBackend, ...], r: float) -> WeightedBackend | None:
    """Weighted choice with r in [0, 1): weight/(sum of weights) of the draws land on
    each backend (HTTPBackendRef weight); None when every weight is 0."""
    if len(backends) == 1:  # the common case, without a generator
        only = backends[0]
        return only if only.weight > 0 else None
    total = sum(b.weight for b in backends)
    if total <= 0:
        return None
    point = r * total
    for backend in backends:
        if point < backend.weight:
            return backend
        point -= backend.weight
    return next(b for b in reversed(backends) if b.weight > 0)


def backend_request(decision: HTTPDecision, chosen: WeightedBackend) -> Request:
    """The request as `chosen` receives it: rule filters, then the backendRef's own."""
    if not chosen.filters:
        return decision.request
    port = decision.listener.port if decision.listener else decision.request.port
    outcome = apply_request_filters(decision.request, chosen.filters, decision.matched_prefix, port)
    return outcome.request


def should_mirror(mirror: Mirror, r: float) -> bool:
    """Sample a mirror (percent / fraction) with r in [0, 1)."""
    return r * mirror.denominator < mirror.numerator


# Layer 4 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class L4Decision:
    listener: ListenerInfo | None
    rule: L4Rule | None
    reason: str

    @property
    def backends(self) -> tuple[WeightedBackend, ...]:
        return self.rule.backends if self.rule is not None else ()

    @property
    def refused(self) -> bool:
        return self.rule is None


def match_tls(program: GatewayProgram, port: int, sni: str | None) -> L4Decision:
    table = select_tls_listener(program, port, sni)
    if table is None:
        return L4Decision(None, None, f"no TLS or HTTPS listener on port {port} for SNI {sni}")
    if table.info.protocol != "TLS":
        return L4Decision(table.info, None, f"SNI {sni} selects HTTPS {table.info}")
    if table.tls is not None:
        host = normalize_host(sni or "")
        entry = table.tls.by_host.get(host)
        if entry is None:
            for wildcard in wildcard_candidates(host):
                entry = table.tls.by_host.get(wildcard)
                if entry is not None:
                    break
        if entry is None:
            entry = table.tls.by_host.get("")  # v1alpha2 TLSRoutes without hostnames
        if entry is not None:
            return L4Decision(table.info, entry.rule, f"TLSRoute hostname {entry.hostname}")
    if table.l4 is not None:  # TLS Terminate + TCPRoute
        return L4Decision(table.info, table.l4, f"{table.l4.ref}")
    return L4Decision(table.info, None, f"no TLSRoute on {table.info} for SNI {sni}")


def _match_l4(program: GatewayProgram, port: int, transport: str, protocol: str) -> L4Decision:
    table = program.port(port, transport)
    if table is None:
        return L4Decision(None, None, f"no listener on {transport} port {port}")
    for listener in table.listeners:
        if listener.info.protocol == protocol:
            if listener.l4 is None:
                return L4Decision(listener.info, None, f"no route attached to {listener.info}")
            return L4Decision(listener.info, listener.l4, str(listener.l4.ref))
    return L4Decision(None, None, f"no {protocol} listener on port {port}")


def match_tcp(program: GatewayProgram, port: int) -> L4Decision:
    return _match_l4(program, port, "tcp", "TCP")


def match_udp(program: GatewayProgram, port: int) -> L4Decision:
    return _match_l4(program, port, "udp", "UDP")


def with_host(request: Request, host: str) -> Request:
    return replace(request, host=host)


# What matching reads -------------------------------------------------------------------


def routing_headers(program: GatewayProgram, port: int) -> tuple[str, ...]:
    """The request headers HTTP and gRPC matching on `port` can read (lower-case names,
    sorted), content-type (gRPC detection) always among them. Two requests equal in
    method, scheme, Host, path with query, port, SNI and these headers get equal
    decisions from `match_http`, apart from the request they carry, unless the rule's
    filters depend on more (`RuleAction.per_request`, CORS)."""
    names = {"content-type"}
    table = program.port(port, "tcp")
    for listener in table.listeners if table is not None else ():
        if listener.http is not None:
            for entry in listener.http.entries:
                names.update(cond.name for cond in entry.match.headers)
        if listener.grpc is not None:
            for grpc_entry in listener.grpc.entries:
                names.update(cond.name for cond in grpc_entry.match.headers)
    return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class PathClasses:
    """What HTTP matching on one port reads of a request target (path and query), as a
    key: two targets with equal `key`s get equal decisions from `match_http` (the other
    inputs of `routing_headers` being equal), apart from the request they carry.

    Why: `_find_http_entry` reads the path only through `PathIndex.candidate_lists` -
    the exact map (a dict lookup of the whole path), the regular expressions (the whole
    path), and the PathPrefix map looked up with `prefix_candidates` of the path cut
    after `depth` segments - and the query only for query matches. So without regular
    expressions (or GRPCRoutes, which read service and method from the path) a path no
    Exact match names is known by its first `depth` segments (the deepest prefix of the
    port), and the query is ignored when no match tests one: `/item/1` and `/item/2`
    are one class under a PathPrefix `/item` rule."""

    exact: frozenset[str] = frozenset()  # every Exact path on the port
    depth: int = 0  # the most segments of a PathPrefix on the port
    whole: bool = True  # regular expressions or gRPC: every path is its own class
    query: bool = True  # some match tests the query

    def key(self, target: str) -> object:
        """The class of `target` (path, with '?query' when there is one)."""
        question = target.find("?")
        path = target if question < 0 else target[:question]
        if self.whole or path in self.exact:
            cls: object = path
        else:
            cut = cut_path(path, self.depth)
            # A cut that is itself an Exact path names another class than that path.
            cls = cut if cut == path or cut not in self.exact else ("prefix", cut)
        if self.query and question >= 0:
            return (cls, target[question + 1 :])
        return cls


def path_classes(program: GatewayProgram, port: int) -> PathClasses:
    """The `PathClasses` of the HTTP listeners on `port` (all of them: the class must
    hold whichever listener and hostname group the Host selects)."""
    table = program.port(port, "tcp")
    if table is None:
        return PathClasses()  # nothing listens there: no reason to group paths
    exact: set[str] = set()
    depth = 0
    whole = False
    query = False
    for listener in table.listeners:
        if listener.grpc is not None:
            whole = True
        http = listener.http
        if http is None:
            continue
        for index in (*http.exact_hosts.values(), *http.wildcard_hosts.values(), http.any_host):
            exact.update(index.exact)
            depth = max(depth, index.depth)
            whole = whole or bool(index.regex)
        query = query or any(entry.match.query for entry in http.entries)
    return PathClasses(frozenset(exact), depth, whole, query)
