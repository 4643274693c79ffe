"""Carries out the gateway brain's decision for one HTTP request.

The brain (`netlet.gateway.match`) says what to do: redirect, answer (404, 421,
500, a CORS preflight), or forward the request - already rewritten by the
rule's filters - to one of weighted backends, with mirrors, response header
modifiers, CORS, timeouts and retries. This module does only what needs I/O or
chance: draw the random numbers for the weighted pick and mirror sampling, pick
an endpoint, send, time, retry, and put the response headers right.

- A chosen backend that is invalid answers 500 for its share of traffic, one
  without endpoints 503 (HTTPBackendRef; `Upstream.status`).
- Timeouts (GEP-1742): `request` bounds the whole exchange up to the response
  head, retries included; `backendRequest` bounds each try; both answer 504;
  0 disables one.
- Retries (GEP-1731): on the listed codes and on connection errors, up to
  `attempts` more tries with `backoff` between them, only while the request
  body can be replayed (bodies up to `Limits.max_replay_body` are kept).
- Mirrors: a sampled copy goes to the mirror backend; its response is read and
  dropped; at most `Limits.max_mirrors_in_flight` at once.
- gRPC requests get errors the gateway makes itself as gRPC statuses
  (trailers-only responses), mapped from HTTP as gRPC's own mapping does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import Stats
from netlet.dataplane.proxy.plan import Upstream, Upstreams
from netlet.dataplane.proxy.site import ConnInfo
from netlet.dataplane.proxy.streams import (
    HOP_BY_HOP,
    BodyStream,
    Headers,
    ProxyError,
    Request,
    Response,
    local_response,
)
from netlet.dataplane.proxy.upstream import (
    BODY_METHODS,
    Body,
    OutRequest,
    UpstreamError,
    UpstreamPool,
    h1_head,
)
from netlet.gateway import table as gw
from netlet.gateway.filters import apply_response_ops, cors_response_headers
from netlet.gateway.match import (
    Action,
    HTTPDecision,
    backend_request,
    pick_backend,
    should_mirror,
)

log = logging.getLogger(__name__)

# gRPC status for an HTTP status the gateway itself answers with (gRPC's
# doc/http-grpc-status-mapping.md); 504 from a gateway timeout is DEADLINE_EXCEEDED.
GRPC_STATUS = {
    400: 13,  # INTERNAL
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 12,  # UNIMPLEMENTED
    408: 4,  # DEADLINE_EXCEEDED
    429: 14,  # UNAVAILABLE
    500: 14,  # UNAVAILABLE: an invalid backendRef (GRPCRoute)
    502: 14,
    503: 14,
    504: 4,
}
GRPC_UNKNOWN = 2


class Router(Protocol):
    def route(self, request: Request, conn: ConnInfo) -> Routed:
        """The brain's decision for `request` and the upstream state to carry it out."""
        ...


class Routed:
    """A decision of the brain with what the engine derives from it once: the route's
    name for logs and, when the rule forwards the client's own request to a single
    valid backend (no filter rewrites it), that backend's `Upstream`. Kept with the
    decision in the router's memo, so a memo hit costs nothing more. What depends only
    on the rule (and gRPC-ness) can be copied from the Routed of an earlier decision
    of the same rule (`like`)."""

    __slots__ = (
        "callback",
        "decision",
        "direct",
        "per_try",
        "plain_response",
        "route",
        "upstreams",
    )
    route: str
    callback: bool
    per_try: float | None
    plain_response: bool
    direct: Upstream | None

    def __init__(
        self, decision: HTTPDecision, upstreams: Upstreams, like: Routed | None = None
    ) -> None:
        self.decision = decision
        self.upstreams = upstreams
        if like is not None:
            self.route = like.route
            self.callback = like.callback
            self.per_try = like.per_try
            self.plain_response = like.plain_response
            self.direct = like.direct
            return
        entry = decision.entry
        self.route = entry.rule.ref.text if entry is not None else ""
        outcome = decision.outcome
        timeouts = outcome.timeouts
        # `Engine.begin` may serve the request from callbacks: nothing to retry, mirror
        # or time as a whole; `per_try` is the rule's backendRequest timeout, if any.
        self.callback = (
            outcome.retry is None
            and not outcome.mirrors
            and (timeouts is None or not timeouts.request)
        )
        self.per_try = timeouts.backend_request if timeouts is not None else None
        # The backend's response goes to the client as it is (no header to add).
        self.plain_response = not outcome.response_ops and outcome.cors is None
        self.direct = None
        backends = outcome.backends
        if (
            outcome.action is Action.FORWARD
            and len(backends) == 1
            and not outcome.per_request
            and not backends[0].filters
            and backends[0].weight > 0
        ):
            upstream = upstreams.get(backends[0].backend, decision.grpc)
            if upstream.status is None:
                self.direct = upstream


def gateway_request(request: Request, conn: ConnInfo) -> gw.Request:
    """The proxy's request as the brain's `Request` (path and query split)."""
    raw = request.path
    question = raw.find("?")
    path, query = (raw[:question], raw[question + 1 :]) if question >= 0 else (raw, "")
    return gw.Request(
        request.method,
        path,
        request.authority,
        conn.site.port,
        request.scheme,
        query,
        tuple(request.headers),
        conn.sni,
    )


def forward_headers(request: Request, headers: Sequence[tuple[str, str]], scheme: str) -> Headers:
    """Headers for the backend: lower-case names, hop-by-hop ones dropped (and those the
    client named in Connection; `te: trailers` stays), X-Forwarded-For/-Proto added."""
    out: Headers = []
    forwarded_for = None
    connection = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in _NOT_FORWARDED:
            if name == "x-forwarded-for":
                forwarded_for = value
            elif name == "connection":
                connection = value if connection is None else f"{connection},{value}"
            elif name == "te" and value.strip().lower() == "trailers":
                out.append((name, value))
            continue
        out.append((name, value))
    if connection is not None:
        named = {token.strip().lower() for token in connection.split(",")}
        if "x-forwarded-for" in named:
            forwarded_for = None
        out = [(n, v) for n, v in out if n not in named or n == "te"]
    client = request.client
    out.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    out.append(("x-forwarded-proto", scheme))
    return out


# Request headers that never go to the backend as they came (hop-by-hop, Host, and the
# X-Forwarded-For the proxy extends).
_NOT_FORWARDED = HOP_BY_HOP | {"host", "x-forwarded-for"}


def _client_target(request: Request) -> str:
    """The client's request target as the backend receives it: without an empty query
    (the brain's Request has none either)."""
    path = request.path
    return path[:-1] if path.endswith("?") else path


def client_out(request: Request) -> OutRequest:
    """The client's own request as the backend receives it (no filter changes it)."""
    headers = forward_headers(request, request.headers, request.scheme)
    return OutRequest(
        request.method,
        request.authority,
        _client_target(request),
        headers,
        content_length=request.content_length,
    )


def client_head(request: Request) -> bytes:
    """`h1_head(client_out(request), None)` in one pass, for a request without a body:
    the same bytes (tests/proxy/test_units.py compares them)."""
    parts = [
        f"{request.method} {_client_target(request)} HTTP/1.1\r\nhost: {request.authority}\r\n"
    ]
    forwarded_for = None
    for name, value in request.headers:
        if name in _NOT_FORWARDED:
            if name == "host":
                continue
            if name != "x-forwarded-for":
                # Connection (and the headers it names), TE...: the general path.
                return h1_head(client_out(request), None)[0]
            forwarded_for = value
            continue
        parts.append(f"{name}: {value}\r\n")
    client = request.client
    parts.append(
        f"x-forwarded-for: {forwarded_for}, {client}\r\nx-forwarded-proto: {request.scheme}\r\n"
        if forwarded_for
        else f"x-forwarded-for: {client}\r\nx-forwarded-proto: {request.scheme}\r\n"
    )
    if request.method in BODY_METHODS:
        parts.append("content-length: 0\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def grpc_error(status: int, message: str) -> Response:
    """A trailers-only gRPC response for an error the gateway answers itself."""
    code = GRPC_STATUS.get(status, GRPC_UNKNOWN)
    return Response(
        200,
        [
            ("content-type", "application/grpc"),
            ("grpc-status", str(code)),
            ("grpc-message", message.replace("\r", " ").replace("\n", " ")),
        ],
        b"",
    )


class Exchange:
    """A request on its way to a backend: the decision and everything derived from it
    (`Engine.prepare`), carried out by `Engine.forward` or `Engine.begin`. `out` (the
    request as the backend sees it) is made on first use when it is the client's own
    request (`client_out`): the callback path writes its head without it."""

    __slots__ = ("done", "engine", "index", "out", "request", "routed", "started", "upstream")

    def __init__(
        self,
        request: Request,
        routed: Routed,
        upstream: Upstream,
        out: OutRequest | None,
    ) -> None:
        self.request = request
        self.routed = routed
        self.upstream = upstream
        self.out = out
        self.index = -1  # the endpoint already chosen (begin), else -1
        # Callback mode (Engine.begin): who gets the response, and since when.
        self.engine: Engine | None = None
        self.done: Callable[[Response | Exchange], None] | None = None
        self.started = 0.0

    @property
    def decision(self) -> HTTPDecision:
        return self.routed.decision

    def outbound(self) -> OutRequest:
        out = self.out
        if out is None:
            out = self.out = client_out(self.request)
        return out

    def answered(self, result: Response | UpstreamError) -> None:
        """The pool's callback in callback mode: finish the response, hand it over."""
        engine, done, routed = self.engine, self.done, self.routed
        assert engine is not None and done is not None
        if isinstance(result, UpstreamError):
            if result.fresh_retry:
                # The pooled connection was closed as we wrote: a fresh one, async.
                engine.stats.bump("upstream_stale_retry")
                done(self)
                return
            engine.stats.bump(f"upstream_{result.failure.value}")
            response = local_response(result.status, str(result))
            response.upstream_seconds = time.monotonic() - self.started
            done(engine._finish(self.request, routed.decision, routed.route, response, True))
            return
        result.upstream = self.upstream.labels[self.index]
        result.upstream_seconds = time.monotonic() - self.started
        if routed.plain_response:
            result.route = routed.route  # all `_finish` would do
            done(result)
        else:
            done(engine._finish(self.request, routed.decision, routed.route, result, False))


class Engine:
    """The Handler for HTTP listeners: routes with `router`, forwards with `pool`."""

    def __init__(
        self,
        router: Router,
        pool: UpstreamPool,
        limits: Limits | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.router = router
        self.pool = pool
        self.limits = limits or Limits()
        self.stats = stats or Stats()
        self._mirrors_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: Request, conn: ConnInfo) -> Response:
        prepared = self.prepare(request, conn)
        if isinstance(prepared, Response):
            return prepared
        return await self.forward(prepared)

    def prepare(self, request: Request, conn: ConnInfo) -> Response | Exchange:
        """Everything before the first byte goes to a backend: the brain's decision,
        the backend's share, the request as that backend receives it. A Response
        when the gateway answers itself (redirect, 404, 500/503 shares...)."""
        routed = self.router.route(request, conn)
        direct = routed.direct
        if direct is not None:
            # One backend, the client's own request: nothing to choose or rewrite.
            return Exchange(request, routed, direct, None)
        decision = routed.decision
        outcome = decision.outcome
        route = routed.route
        action = outcome.action
        if action is Action.REDIRECT:
            response = Response(outcome.status, [("location", decision.location or "/")])
            return self._finish(request, decision, route, response, local=True)
        if action is Action.RESPOND:
            if decision.response_headers or outcome.status < 400:
                response = Response(outcome.status, _lower(decision.response_headers))
            else:
                response = local_response(outcome.status, outcome.reason)
            return self._finish(request, decision, route, response, local=True)
        backends = outcome.backends
        # One backendRef needs no draw (pick_backend ignores the number then).
        chosen = pick_backend(backends, random.random() if len(backends) > 1 else 0.0)
        if chosen is None:
            response = local_response(500, "no backend")
            return self._finish(request, decision, route, response, local=True)
        upstream = routed.upstreams.get(chosen.backend, decision.grpc)
        if upstream.status is not None:
            self.stats.bump("invalid_backend" if upstream.status == 500 else "no_endpoints")
            message = chosen.backend.message or chosen.backend.reason or "backend unavailable"
            if upstream.refused:
                message = (
                    f"{upstream.name}: endpoints outside loopback are not used in loopback mode"
                )
            if upstream.refusal:
                message = upstream.refusal
            response = local_response(upstream.status, message)
            return self._finish(request, decision, route, response, local=True)
        if not outcome.per_request and not chosen.filters:
            # No filter changes the request: the backend gets the client's request (what
            # `backend_request` would return; the decision may be a memo's, made for
            # another request with the same routing inputs).
            return Exchange(request, routed, upstream, None)
        seen = backend_request(decision, chosen)
        headers = forward_headers(request, seen.headers, request.scheme)
        path = f"{seen.path}?{seen.query}" if seen.query else seen.path
        out = OutRequest(
            request.method, seen.host, path, headers, content_length=request.content_length
        )
        return Exchange(request, routed, upstream, out)

    def begin(
        self, request: Request, conn: ConnInfo, done: Callable[[Response | Exchange], None]
    ) -> Response | Exchange | Callable[[], None]:
        """The request without a Task when it can be: a Response when the gateway
        answers itself; else, for a plain forward (no body, no retries, mirrors or
        request timeout) on a pooled HTTP/1.1 connection, the request is sent now and
        `done` gets the finished Response later (or the Exchange, when it needs
        `forward` after all: a stale pooled connection); the return value then
        cancels it. Anything else comes back as the Exchange for `forward`."""
        prepared = self.prepare(request, conn)
        if isinstance(prepared, Response):
            return prepared
        routed, upstream = prepared.routed, prepared.upstream
        if (
            not routed.callback
            or request.body is not None
            or request.upgrade is not None
            or upstream.h2c
        ):
            return prepared
        per_try = routed.per_try
        if per_try is None:
            per_try = self.limits.upstream_timeout
        out = prepared.out
        head = client_head(request) if out is None else h1_head(out, None)[0]
        index = prepared.index = upstream.pick()
        prepared.engine = self
        prepared.done = done
        prepared.started = time.monotonic()
        cancel = self.pool.start(
            upstream.endpoints[index],
            head,
            request.method == "HEAD",
            per_try or None,
            prepared.answered,
            upstream.tls,
        )
        return prepared if cancel is None else cancel

    async def forward(self, ex: Exchange) -> Response:
        """Send the prepared request to a backend (retries, timeouts, mirrors) and
        return the response with the rule's response filters applied."""
        request, decision, route, upstream, out = (
            ex.request,
            ex.routed.decision,
            ex.routed.route,
            ex.upstream,
            ex.outbound(),
        )
        if request.upgrade is not None and not upstream.h2c:
            response = await self._upgrade(upstream, out)
            return self._finish(request, decision, route, response, local=False)
        body: Body = request.body
        replayable = body is None
        outcome = decision.outcome
        if (outcome.retry is not None or outcome.mirrors) and isinstance(body, BodyStream):
            data, whole = await body.read_up_to(self.limits.max_replay_body)
            if whole:
                body = data
                replayable = True
        for mirror in outcome.mirrors:
            if should_mirror(mirror, random.random()):
                upstreams = ex.routed.upstreams
                self._mirror(upstreams.get(mirror.backend, decision.grpc), out, body, replayable)
        timeouts = outcome.timeouts
        request_timeout = timeouts.request if timeouts is not None else None
        started = time.monotonic()
        try:
            if request_timeout:
                async with asyncio.timeout(request_timeout):
                    response = await self._send(decision, upstream, out, body, replayable)
            elif outcome.retry is None:
                # The common case, without the retry loop's extra coroutine.
                index = upstream.pick() if ex.index < 0 else ex.index
                per_try = timeouts.backend_request if timeouts is not None else None
                if per_try is None:
                    per_try = self.limits.upstream_timeout
                response = await self.pool.send(
                    upstream.endpoints[index],
                    out,
                    body,
                    per_try or None,
                    h2c=upstream.h2c,
                    tls=upstream.tls,
                )
                response.upstream = upstream.labels[index]
            else:
                response = await self._send(decision, upstream, out, body, replayable)
        except TimeoutError:
            self.stats.bump("request_timeout")
            response = local_response(504, "request timeout")
            return self._finish(request, decision, route, response, local=True)
        except UpstreamError as exc:
            self.stats.bump(f"upstream_{exc.failure.value}")
            response = local_response(exc.status, str(exc))
            response.upstream_seconds = time.monotonic() - started
            return self._finish(request, decision, route, response, local=True)
        response.upstream_seconds = time.monotonic() - started
        return self._finish(request, decision, route, response, local=False)

    async def _send(
        self,
        decision: HTTPDecision,
        upstream: Upstream,
        out: OutRequest,
        body: Body,
        replayable: bool,
    ) -> Response:
        retry = decision.retry
        tries = 1
        codes: tuple[int, ...] = ()
        backoff = 0.0
        if retry is not None and replayable:
            tries += retry.attempts if retry.attempts is not None else 1
            codes = retry.codes
            backoff = retry.backoff or 0.0
        timeouts = decision.timeouts
        per_try = timeouts.backend_request if timeouts is not None else None
        if per_try is None:
            per_try = self.limits.upstream_timeout
        for attempt in range(tries):
            index = upstream.pick()
            endpoint = upstream.endpoints[index]
            last = attempt == tries - 1
            try:
                response = await self.pool.send(
                    endpoint, out, body, per_try or None, h2c=upstream.h2c, tls=upstream.tls
                )
            except UpstreamError:
                if last:
                    raise
                self.stats.bump("retry")
                if backoff:
                    await asyncio.sleep(backoff)
                continue
            response.upstream = upstream.labels[index]
            if not last and response.status in codes:
                self.stats.bump("retry")
                await _discard(response)
                if backoff:
                    await asyncio.sleep(backoff)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _upgrade(self, upstream: Upstream, out: OutRequest) -> Response:
        headers = [(n, v) for n, v in out.headers if n != "upgrade"]
        headers.append(("upgrade", "websocket"))
        request = OutRequest(out.method, out.authority, out.path, headers)
        endpoint = upstream.endpoint()
        try:
            response = await self.pool.upgrade(
                endpoint, request, self.limits.upstream_timeout, tls=upstream.tls
            )
        except UpstreamError as exc:
            return local_response(exc.status, str(exc))
        response.upstream = f"{endpoint[0]}:{endpoint[1]}"
        if response.status == 101:
            self.stats.bump("websocket_upgrades")
        return response

    def _finish(
        self,
        request: Request,
        decision: HTTPDecision,
        route: str,
        response: Response,
        local: bool,
    ) -> Response:
        response.route = route
        if local and (decision.grpc or request.is_grpc) and response.status >= 400:
            upstream, seconds = response.upstream, response.upstream_seconds
            response = grpc_error(
                response.status, decision.reason if response.status == 404 else _text(response)
            )
            response.route, response.upstream, response.upstream_seconds = route, upstream, seconds
        outcome = decision.outcome
        if outcome.response_ops:
            response.headers = _lower(
                apply_response_ops(tuple(response.headers), outcome.response_ops)
            )
        if outcome.cors is not None and outcome.action is not Action.RESPOND:
            extra = cors_response_headers(outcome.cors, decision.original)
            if extra:
                response.headers = [*response.headers, *_lower(extra)]
        return response

    def _mirror(self, upstream: Upstream, out: OutRequest, body: Body, replayable: bool) -> None:
        if upstream.status is not None:
            self.stats.bump("mirror_no_backend")
            return
        if not replayable:
            self.stats.bump("mirror_body_too_large")
            return
        if self._mirrors_in_flight >= self.limits.max_mirrors_in_flight:
            self.stats.bump("mirror_dropped")
            return
        copy = OutRequest(out.method, out.authority, out.path, list(out.headers))
        self._mirrors_in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send_mirror(upstream, copy, body))
        self._tasks.add(task)
        task.add_done_callback(self._mirror_done)

    def _mirror_done(self, task: asyncio.Task[None]) -> None:
        self._mirrors_in_flight -= 1
        self._tasks.discard(task)

    async def _send_mirror(self, upstream: Upstream, out: OutRequest, body: Body) -> None:
        endpoint = upstream.endpoint()
        try:
            response = await self.pool.send(
                endpoint,
                out,
                body,
                self.limits.upstream_timeout,
                h2c=upstream.h2c,
                tls=upstream.tls,
            )
            await _discard(response)
            self.stats.bump("mirrored")
        except (ProxyError, OSError) as exc:
            self.stats.bump("mirror_failed")
            log.debug("mirror to %s failed: %s", endpoint, exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _lower(headers: gw.Headers) -> Headers:
    return [(n.lower(), v) for n, v in headers]


def _text(response: Response) -> str:
    body = response.body
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace").strip()
    return f"HTTP {response.status}"


async def _discard(response: Response) -> None:
    body = response.body
    if isinstance(body, BodyStream):
        with contextlib.suppress(ProxyError):
            while await body.read():
                pass
