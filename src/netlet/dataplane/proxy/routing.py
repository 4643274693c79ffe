"""The proxy's view of the gateway brain: immutable snapshots of the route tables,
swapped atomically, and the routers every listener asks.

A `Snapshot` holds the brain's `GatewayProgram`s (one per Gateway) plus the
data-plane state derived from them (upstream cursors, SSL contexts). A `Holder`
points at the current snapshot; a reload replaces that one reference. Each
request reads `holder.current` once, when it starts, and uses that snapshot to
the end: in-flight requests finish on the table they began with.

Routers never parse configuration per request: they call the brain's matching
functions (`netlet.gateway.match`, the one implementation) on the precomputed
programs.

The decision memo: `match_http` is a pure function of the program and of what it
reads from the request - method, scheme, Host, path and query, port, SNI and the
headers `routing_headers` names (those some match on the port tests, and
content-type). Of the path and query it reads only what the tables can tell
apart, so the key holds the target's class (`PathClasses.key`). Decisions that
depend on nothing else (no filter rewrites the request or redirects, no CORS, no
backendRef filters: `memoizable`) are kept per snapshot under exactly that key,
so requests differing in other headers (request ids, cookies, user agents) reuse
one decision. Such a decision carries the request it was first made for: the
engine forwards the client's own request instead, which is what the brain would
have computed (`Engine.prepare`). Bounded; a new snapshot
starts empty, so a reload never serves a stale decision. A decision is kept on the
second request with its key (a doorkeeper set of key hashes remembers the first),
so traffic whose every request differs (unique paths) does not churn the memo.
"""

from __future__ import annotations

import hashlib
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from netlet.dataplane.proxy import tls
from netlet.dataplane.proxy.engine import Routed, gateway_request
from netlet.dataplane.proxy.l4 import Endpoint
from netlet.dataplane.proxy.plan import Upstreams
from netlet.dataplane.proxy.site import ConnInfo
from netlet.dataplane.proxy.streams import ProxyError, Request
from netlet.gateway.match import (
    HTTPDecision,
    L4Decision,
    match_http,
    match_tcp,
    match_tls,
    match_udp,
    path_classes,
    pick_backend,
    routing_headers,
    select_tls_listener,
)
from netlet.gateway.table import Certificate, GatewayProgram

DECISION_MEMO_SIZE = 4096
DOORKEEPER_SIZE = 16384


@dataclass(slots=True)
class Snapshot:
    """One generation of routing state. Never mutated after it is published, except
    for the caches that only derive from it."""

    generation: int
    programs: Mapping[str, GatewayProgram]
    # Endpoint filter of every Upstreams (loopback mode), see plan.Upstreams.
    allow: Callable[[str], bool] | None = None
    _upstreams: dict[str, Upstreams] = field(default_factory=dict)
    # The decision memo (see the module doc), per Gateway; emptied when full.
    decisions: dict[str, dict[tuple[object, ...], Routed]] = field(default_factory=dict)
    # Hashes of memo keys seen once (see the module doc), per Gateway.
    seen: dict[str, set[int]] = field(default_factory=dict)
    # What routing reads per (Gateway, port), computed once, with that Gateway's memo.
    _memos: dict[tuple[str, int], _PortMemo] = field(default_factory=dict)
    _contexts: dict[tuple[str, str], ssl.SSLContext] = field(default_factory=dict)

    def program(self, gateway: str) -> GatewayProgram | None:
        return self.programs.get(gateway)

    def upstreams(self, gateway: str) -> Upstreams:
        """The data-plane state of one Gateway's backends (made on first use)."""
        found = self._upstreams.get(gateway)
        if found is None:
            program = self.programs.get(gateway)
            client = program.client_certificate if program is not None else None
            found = self._upstreams[gateway] = Upstreams(self.allow, client)
        return found

    def ssl_context(self, certificate: Certificate) -> ssl.SSLContext:
        """An SSL context serving `certificate` (ALPN h2, http/1.1), made once."""
        digest = hashlib.sha256(certificate.cert_pem + certificate.key_pem).hexdigest()
        key = (certificate.secret, digest)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = tls.server_context(
                [tls.Certificate(certificate.cert_pem, certificate.key_pem)]
            )
        return ctx


class Holder:
    """The current snapshot; `swap` publishes a new one in a single assignment."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot:
        old, self.current = self.current, snapshot
        return old


class _PortMemo:
    """The decision memo's state for one (Gateway, port) of a snapshot: what routing
    reads there (`routing_headers`, `path_classes`), the memo and the doorkeeper."""

    __slots__ = ("headers", "memo", "paths", "rules", "seen")

    def __init__(
        self,
        program: GatewayProgram,
        port: int,
        memo: dict[tuple[object, ...], Routed],
        seen: set[int],
    ) -> None:
        self.headers = routing_headers(program, port)
        self.paths = path_classes(program, port)
        self.memo = memo
        self.seen = seen
        # A Routed per (rule outcome, gRPC) to copy what depends only on the rule from.
        self.rules: dict[tuple[int, bool], Routed] = {}


class GatewayRouter:
    """HTTP routing for the listeners of one Gateway (the Engine's `Router`)."""

    __slots__ = ("gateway", "holder")

    def __init__(self, holder: Holder, gateway: str) -> None:
        self.holder = holder
        self.gateway = gateway

    def decide(self, request: Request, conn: ConnInfo) -> tuple[HTTPDecision, Upstreams]:
        routed = self.route(request, conn)
        return routed.decision, routed.upstreams

    def route(self, request: Request, conn: ConnInfo) -> Routed:
        snapshot = self.holder.current
        gateway = self.gateway
        port = conn.site.port
        state = snapshot._memos.get((gateway, port))
        if state is None:
            program = snapshot.programs.get(gateway)
            if program is None:
                raise ProxyError(f"Gateway {gateway} is not served any more", 404)
            state = snapshot._memos[(gateway, port)] = _PortMemo(
                program,
                port,
                snapshot.decisions.setdefault(gateway, {}),
                snapshot.seen.setdefault(gateway, set()),
            )
        names = state.headers
        key = (
            request.method,
            request.scheme,
            request.authority,
            state.paths.key(request.path),
            port,
            conn.sni,
            # Usually just content-type: no match on the port tests a header.
            request.header(names[0])
            if len(names) == 1
            else tuple(request.header(name) for name in names),
        )
        routed = state.memo.get(key)
        if routed is None:
            program = snapshot.programs[gateway]
            decision = match_http(program, gateway_request(request, conn))
            if decision.entry is None:  # answered without a rule (404...): nothing shared
                routed = Routed(decision, snapshot.upstreams(gateway))
            else:
                # The rule's outcome is one object, made with the table (id is stable).
                rule_key = (id(decision.outcome), decision.grpc)
                like = state.rules.get(rule_key)
                routed = Routed(decision, snapshot.upstreams(gateway), like)
                if like is None:
                    state.rules[rule_key] = routed
            if memoizable(decision):
                _remember(state, key, routed)
        return routed


def _remember(state: _PortMemo, key: tuple[object, ...], routed: Routed) -> None:
    seen = state.seen
    digest = hash(key)
    if digest not in seen:
        if len(seen) >= DOORKEEPER_SIZE:
            seen.clear()
        seen.add(digest)
        return
    memo = state.memo
    if len(memo) >= DECISION_MEMO_SIZE:
        memo.clear()
    memo[key] = routed


def memoizable(decision: HTTPDecision) -> bool:
    """True when the decision depends only on the memo key (see the module doc)."""
    outcome = decision.outcome
    return (
        not outcome.per_request
        and outcome.cors is None
        and not outcome.backend_filters
        and not decision.response_headers
    )


class L4GatewayRouter:
    """TCP, UDP and TLS-passthrough routing for one Gateway port."""

    __slots__ = ("gateway", "holder", "port", "protocol")

    def __init__(self, holder: Holder, gateway: str, port: int, protocol: str) -> None:
        self.holder = holder
        self.gateway = gateway
        self.port = port
        self.protocol = protocol  # "TCP", "UDP" or "TLS"

    def decision(self, sni: str | None) -> L4Decision:
        program = self.holder.current.programs.get(self.gateway)
        if program is None:
            return L4Decision(None, None, f"Gateway {self.gateway} is not served any more")
        if self.protocol == "UDP":
            return match_udp(program, self.port)
        if self.protocol == "TLS":
            return match_tls(program, self.port, sni)
        return match_tcp(program, self.port)

    def pick(self, sni: str | None) -> Endpoint:
        snapshot = self.holder.current
        decision = self.decision(sni)
        if decision.refused:
            raise ProxyError(decision.reason, 503)
        chosen = pick_backend(decision.backends, random.random())
        if chosen is None:
            raise ProxyError("every backendRef has weight 0", 503)
        upstream = snapshot.upstreams(self.gateway).get(chosen.backend)
        if upstream.status is not None:
            # An invalid share is refused (the connection is closed), as for TCPRoute.
            raise ProxyError(f"{upstream.name}: backend unavailable", upstream.status)
        if upstream.tls is not None:
            # Streams are relayed as they are: a backend that wants TLS from the Gateway
            # (BackendTLSPolicy) is refused rather than sent the stream in clear text.
            raise ProxyError(
                f"{upstream.name}: BackendTLSPolicy {upstream.tls.policy} asks for TLS, "
                f"which {self.protocol} routes do not originate",
                503,
            )
        return upstream.endpoint()


def sni_selector(holder: Holder, gateway: str, port: int) -> tuple[ssl.SSLContext | None, object]:
    """The default SSL context for an HTTPS port and an SNI callback choosing the
    certificate of the listener the SNI selects (`select_tls_listener`)."""
    program = holder.current.programs.get(gateway)
    default = _first_certificate(program, port) if program is not None else None
    if default is None:
        return None, None
    base = holder.current.ssl_context(default)

    def choose(sslobj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name is not None:
            sslobj.netlet_sni = name  # type: ignore[attr-defined]
        snapshot = holder.current
        current = snapshot.programs.get(gateway)
        if current is None:
            return
        table = select_tls_listener(current, port, name)
        cert = None
        if table is not None and table.info.tls is not None and table.info.tls.certificates:
            cert = table.info.tls.certificates[0]
        else:
            cert = _first_certificate(current, port)
        if cert is not None:
            ctx = snapshot.ssl_context(cert)
            if ctx is not sslobj.context:
                sslobj.context = ctx

    base.sni_callback = choose
    return base, choose


def _first_certificate(program: GatewayProgram, port: int) -> Certificate | None:
    table = program.port(port, "tcp")
    if table is None:
        return None
    for listener in table.listeners:
        info = listener.info
        if info.tls is not None and info.tls.mode == "Terminate" and info.tls.certificates:
            return info.tls.certificates[0]
    return None
