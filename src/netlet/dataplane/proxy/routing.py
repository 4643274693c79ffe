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
"""

from __future__ import annotations

import hashlib
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from netlet.dataplane.proxy import tls
from netlet.dataplane.proxy.engine import gateway_request
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
    pick_backend,
    select_tls_listener,
)
from netlet.gateway.table import Certificate, GatewayProgram

DECISION_MEMO_SIZE = 4096


@dataclass(slots=True)
class Snapshot:
    """One generation of routing state. Never mutated after it is published, except
    for the caches that only derive from it."""

    generation: int
    programs: Mapping[str, GatewayProgram]
    upstreams: Upstreams = field(default_factory=Upstreams)
    # match_http is a pure function of (program, request): identical requests (all
    # of method, scheme, host, port, path, query, headers, SNI equal) get the
    # decision computed for the first one. Bounded; emptied when full.
    decisions: dict[str, dict[tuple[object, ...], HTTPDecision]] = field(default_factory=dict)
    _contexts: dict[tuple[str, str], ssl.SSLContext] = field(default_factory=dict)

    def program(self, gateway: str) -> GatewayProgram | None:
        return self.programs.get(gateway)

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


class GatewayRouter:
    """HTTP routing for the listeners of one Gateway (the Engine's `Router`)."""

    __slots__ = ("gateway", "holder")

    def __init__(self, holder: Holder, gateway: str) -> None:
        self.holder = holder
        self.gateway = gateway

    def decide(self, request: Request, conn: ConnInfo) -> tuple[HTTPDecision, Upstreams]:
        snapshot = self.holder.current
        program = snapshot.programs.get(self.gateway)
        if program is None:
            raise ProxyError(f"Gateway {self.gateway} is not served any more", 404)
        memo = snapshot.decisions.get(self.gateway)
        if memo is None:
            memo = snapshot.decisions[self.gateway] = {}
        # Everything `gateway_request` reads, so equal keys mean equal brain requests.
        key = (
            request.method,
            request.scheme,
            request.authority,
            request.path,
            conn.site.port,
            conn.sni,
            tuple(request.headers),
        )
        decision = memo.get(key)
        if decision is None:
            decision = match_http(program, gateway_request(request, conn))
            if len(memo) >= DECISION_MEMO_SIZE:
                memo.clear()
            memo[key] = decision
        return decision, snapshot.upstreams


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
        upstream = snapshot.upstreams.get(chosen.backend)
        if upstream.status is not None:
            # An invalid share is refused (the connection is closed), as for TCPRoute.
            raise ProxyError(f"{upstream.name}: backend unavailable", upstream.status)
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
