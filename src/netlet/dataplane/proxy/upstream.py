"""Backend connections: pooled HTTP/1.1 and h2c clients, and what their failures mean.

`UpstreamPool.send` takes one request to one endpoint and returns the response
head with a streaming body. HTTP/1.1 connections are kept alive and reused
(LIFO, swept after `Limits.upstream_idle_timeout`); an h2c connection carries
many streams at once. A request that fails on a reused connection before any
response byte arrived is sent once more on a fresh one when its body can be
replayed (the backend may have closed the idle connection as we wrote).

`UpstreamPool.start` is the same exchange without a Task or a future: for a
request without a body on a pooled connection, the response (body complete,
or streaming once it outgrows `DIRECT_BUFFER`) or the error goes to a callback
from the protocol's own callbacks.

TLS to a backend (BackendTLSPolicy) is an `OriginTLS`: the SSL context with the
policy's CA certificates, `validation.hostname` as SNI, and the check of the
certificate's name (the hostname, or one of `subjectAltNames` when given).

Failures become `UpstreamError`s whose status comes from `ERROR_STATUS`:
nothing accepting connections is 503 (the backend is unavailable), a
connection that broke or a response that is not HTTP is 502, and a deadline is
504 - the same mapping Envoy uses.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools

from netlet.dataplane.proxy.batch import WriteBatch
from netlet.dataplane.proxy.deadlines import Deadlines
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import Stats
from netlet.dataplane.proxy.streams import (
    FRAMING,
    H2_BODY_EVENTS,
    HEADER_NAMES,
    HOP_BY_HOP,
    BodyStream,
    Headers,
    ProxyError,
    Response,
    Tunnel,
    feed_h2_body,
    header_name,
)
from netlet.dataplane.proxy.tls import OriginTLS

log = logging.getLogger(__name__)


class Failure(enum.StrEnum):
    CONNECT_REFUSED = "connect-refused"
    CONNECT_ERROR = "connect-error"
    CONNECT_TIMEOUT = "connect-timeout"
    RESET = "reset"
    BAD_RESPONSE = "bad-response"
    TIMEOUT = "timeout"
    REFUSED_STREAM = "refused-stream"
    TLS = "tls-error"


ERROR_STATUS: dict[Failure, int] = {
    Failure.CONNECT_REFUSED: 503,
    Failure.CONNECT_ERROR: 503,
    Failure.CONNECT_TIMEOUT: 504,
    Failure.RESET: 502,
    Failure.BAD_RESPONSE: 502,
    Failure.TIMEOUT: 504,
    Failure.REFUSED_STREAM: 503,
    # No verified TLS session (BackendTLSPolicy): the backend is not usable, as
    # with any other failure to connect (the spec asks for a 5xx).
    Failure.TLS: 503,
}

Endpoint = tuple[str, int]
# Connections are pooled per endpoint, and per TLS settings when TLS is originated.
PoolKey = Endpoint | tuple[Endpoint, OriginTLS]

# A callback-driven exchange (`UpstreamPool.start`) hands the response over once
# its body is complete, or as a stream past this many buffered bytes.
DIRECT_BUFFER = 64 * 1024


class UpstreamError(ProxyError):
    def __init__(self, failure: Failure, detail: str = "", *, fresh_retry: bool = False) -> None:
        super().__init__(f"upstream {failure.value}: {detail}".rstrip(": "), ERROR_STATUS[failure])
        self.failure = failure
        # True when nothing reached the backend's application: safe to resend.
        self.fresh_retry = fresh_retry


class OutRequest:
    """A request as it goes to a backend (after the route's filters)."""

    __slots__ = ("authority", "content_length", "headers", "method", "path", "scheme")

    def __init__(
        self,
        method: str,
        authority: str,
        path: str,
        headers: Headers,
        scheme: str = "http",
        content_length: int | None = None,
    ) -> None:
        self.method = method
        self.authority = authority
        self.path = path
        self.headers = headers
        self.scheme = scheme
        self.content_length = content_length


Body = bytes | BodyStream | None

# Methods whose requests mean something with an empty body (send Content-Length: 0).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def h1_head(request: OutRequest, body: Body, upgrade: bool = False) -> tuple[bytes, bool]:
    """The HTTP/1.1 request head, and whether the body goes chunked."""
    lines = [f"{request.method} {request.path} HTTP/1.1\r\nhost: {request.authority}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in request.headers)
    chunked = False
    if isinstance(body, bytes):
        if body or request.method in BODY_METHODS:
            lines.append(f"content-length: {len(body)}\r\n")
    elif body is not None:
        if request.content_length is not None:
            lines.append(f"content-length: {request.content_length}\r\n")
        else:
            chunked = True
            lines.append("transfer-encoding: chunked\r\n")
    elif request.method in BODY_METHODS:
        lines.append("content-length: 0\r\n")
    if upgrade:
        lines.append("connection: upgrade\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1"), chunked


class _Unsolicited(Exception):
    """A response that answers no request (see `_H1Conn.on_message_begin`)."""


class _H1Conn(asyncio.Protocol):
    """One HTTP/1.1 connection to a backend; one request at a time. Bytes that answer
    no request (a message after the final response of a read, or on an idle
    connection) end the connection: it is never reused out of step with its backend."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        # Kept: asyncio.get_running_loop() costs a getpid() syscall on Python 3.11.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # The final response completed during this read: any message after it answers
        # nothing (reset per read only, as the next exchange may begin in between).
        self.final_done = False
        self.waiter: asyncio.Future[Response] | None = None
        self.response: Response | None = None
        self.body: BodyStream | None = None
        self.headers: Headers = []
        self.trailers: Headers | None = None
        self.head_only = False
        self.informational = False
        self.closed = False
        self.reused = False
        self.got_bytes = False
        self.request_sent = True
        self.idle_since = 0.0
        self.upgrade = False
        self.leftover = b""
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.close_delimited = False
        self.content_length: int | None = None
        self.chunked = False
        self.parts: list[bytes] | None = None
        self.parts_size = 0
        # Callback mode (UpstreamPool.start): gets the response or the error, once.
        self.on_done: Callable[[Response | UpstreamError], None] | None = None
        self.timeout_callback = self.timed_out  # bound once, armed per request

    # Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.final_done = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.leftover = data[offset:]
            if self.transport is not None:
                self.transport.pause_reading()
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(Failure.BAD_RESPONSE, str(exc)))
            self.abort()

    def eof_received(self) -> bool | None:
        self._end_close_delimited()
        return None

    def _end_close_delimited(self) -> None:
        """A body without Content-Length or chunking ends with the connection."""
        if not self.close_delimited:
            return
        if self.parts is not None:
            self._collected()
            if self.on_done is not None and self.response is not None:
                self._deliver(self.response)
        elif self.body is not None:
            self.body.end(self.trailers)
            self.body = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end_close_delimited()
        fresh = self.reused and not self.got_bytes
        self._fail(UpstreamError(Failure.RESET, "connection closed by backend", fresh_retry=fresh))
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("backend closed"))
        self.pool._forget(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: UpstreamError) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        elif self.on_done is not None:
            self.body = None
            self.parts = None
            self._deliver(exc)
        elif self.body is not None:
            self.body.fail(exc)
            self.body = None

    def _deliver(self, result: Response | UpstreamError) -> None:
        on_done = self.on_done
        self.on_done = None
        self.pool.deadlines.clear(self)
        if on_done is not None:
            on_done(result)

    def cancel(self) -> None:
        """The client of a callback-mode exchange went away: drop the connection."""
        self.on_done = None
        self.pool.deadlines.clear(self)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def timed_out(self) -> None:
        """The response did not come in time (Deadlines callback). The deadline of a
        callback exchange stays set when it ends (`on_message_complete`), so one that
        fires after that finds nothing to time out."""
        waiter = self.waiter
        if self.on_done is None and (waiter is None or waiter.done()):
            return
        error = UpstreamError(Failure.TIMEOUT, "no response head in time")
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        elif self.on_done is not None:
            self._deliver(error)
        self.abort()

    # Parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.final_done or (self.waiter is None and self.on_done is None):
            # Nothing was asked (the parser error that follows closes the connection).
            raise _Unsolicited
        self.headers = []
        self.trailers = None
        self.content_length = None
        self.chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = HEADER_NAMES.get(name) or header_name(name)
        if key not in FRAMING and self.response is None:
            self.headers.append((key, value.decode("latin-1")))  # the common case
        elif self.response is not None:
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((key, value.decode("latin-1")))
        elif key == "content-length":
            # Framing is this hop's business (the client side frames its own response);
            # llhttp has checked the value already.
            self.content_length = int(value)
        elif key in HOP_BY_HOP and not self.upgrade:
            if key == "transfer-encoding":
                self.chunked = True
        else:
            self.headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True
            return
        content_length = self.content_length
        chunked = self.chunked
        transport = self.transport
        assert transport is not None
        no_body = self.head_only or status in (204, 304) or status == 101
        body: BodyStream | bytes
        if no_body:
            body = BodyStream()
            body.end()
        elif self.on_done is not None:
            # Callback mode: the body is collected as bytes until it is complete (or
            # outgrows DIRECT_BUFFER and turns into a stream).
            body = b""
            self.parts = []
            self.parts_size = 0
            self.close_delimited = content_length is None and not chunked
        else:
            body = BodyStream(
                pause=transport.pause_reading,
                resume=transport.resume_reading,
                high_water=self.pool.limits.body_high_water,
            )
            self.body = body
            self.close_delimited = content_length is None and not chunked
        # A HEAD response keeps the length a GET would have had (RFC 9110 9.3.2).
        response = Response(
            status,
            self.headers,
            body,
            None if status in (101, 204, 304) else content_length,
        )
        self.response = response
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        elif self.head_only and self.on_done is not None:
            self._deliver(response)
        if self.head_only:
            # llhttp would wait for a body a HEAD response never has: do not reuse.
            self.closed = True
            transport.close()

    def on_body(self, data: bytes) -> None:
        parts = self.parts
        if parts is not None:
            parts.append(data)
            self.parts_size += len(data)
            if self.parts_size > DIRECT_BUFFER:
                self._to_stream()  # a big body: stream it from here on
            return
        if self.body is not None:
            self.body.feed(data)

    def _to_stream(self) -> None:
        """Callback mode, body too big to collect: hand the response over streaming."""
        transport, response, parts = self.transport, self.response, self.parts
        assert transport is not None and response is not None and parts is not None
        body = BodyStream(
            pause=transport.pause_reading,
            resume=transport.resume_reading,
            high_water=self.pool.limits.body_high_water,
        )
        for part in parts:
            body.feed(part)
        self.parts = None
        self.body = response.body = body
        self._deliver(response)

    def _collected(self) -> None:
        """Callback mode: the body is complete; put it in the response."""
        parts, response = self.parts, self.response
        self.parts = None
        if parts is not None and response is not None:
            response.body = parts[0] if len(parts) == 1 else b"".join(parts)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        response = self.response
        parts = self.parts
        if self.body is not None:
            self.body.end(self.trailers)
            self.body = None
        elif parts is not None:
            # Callback mode: the body is complete (see `_collected`).
            self.parts = None
            if response is not None:
                response.body = parts[0] if len(parts) == 1 else b"".join(parts)
        keep = self.parser.should_keep_alive() and self.request_sent and not self.closed
        self.final_done = True
        self.response = None
        self.waiter = None
        if self.upgrade:
            return
        if keep:
            self.pool._release(self)
        else:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        on_done = self.on_done
        if on_done is not None and response is not None:
            # Last: the callback may start the next exchange on this very connection.
            # (Its deadline stays: `timed_out` ignores it now, the next exchange resets it.)
            self.on_done = None
            on_done(response)

    # Sending -------------------------------------------------------------------------

    async def drain(self) -> None:
        if not self.write_paused:
            return
        self.drain_waiter = waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.drain_waiter = None

    def begin(self, head_only: bool) -> asyncio.Future[Response]:
        self.head_only = head_only
        self.got_bytes = False
        self.response = None
        self.body = None
        self.close_delimited = False
        self.on_done = None
        self.parts = None
        self.waiter = waiter = self.loop.create_future()
        return waiter

    def begin_direct(
        self, head_only: bool, on_done: Callable[[Response | UpstreamError], None]
    ) -> None:
        self.head_only = head_only
        self.got_bytes = False
        self.response = None
        self.body = None
        self.parts = None
        self.close_delimited = False
        self.waiter = None
        self.on_done = on_done
        self.request_sent = True


class UpstreamPool:
    """Connections to every backend endpoint this process talks to."""

    def __init__(self, limits: Limits | None = None, stats: Stats | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = stats or Stats()
        self._idle: dict[PoolKey, deque[_H1Conn]] = {}
        self._h2: dict[PoolKey, list[_H2Conn]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.deadlines = Deadlines()
        # Request heads of callback exchanges go out at the end of the loop's pass.
        self.batch = WriteBatch()

    # Connecting ------------------------------------------------------------------------

    async def _connect(
        self,
        factory: Callable[[], _H1Conn | _H2Conn],
        endpoint: Endpoint,
        tls: OriginTLS | None,
        alpn: str,
    ) -> _H1Conn | _H2Conn:
        """A new connection; with `tls`, the TCP connection first, then the handshake and
        the certificate check (so a TLS failure is told apart from a refused port)."""
        loop = asyncio.get_running_loop()
        where = f"{endpoint[0]}:{endpoint[1]}"
        timeout = self.limits.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                if tls is None:
                    _, proto = await loop.create_connection(factory, *endpoint)
                    self.stats.bump("upstream_connections")
                    return proto
                raw, _ = await loop.create_connection(asyncio.Protocol, *endpoint)
        except TimeoutError:
            raise UpstreamError(Failure.CONNECT_TIMEOUT, where) from None
        except ConnectionRefusedError:
            raise UpstreamError(Failure.CONNECT_REFUSED, where) from None
        except OSError as exc:
            raise UpstreamError(Failure.CONNECT_ERROR, f"{where}: {exc}") from None
        proto = factory()
        try:
            transport = await loop.start_tls(
                raw,
                proto,
                tls.context(alpn),
                server_hostname=tls.server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raw.abort()
            self.stats.bump("upstream_tls_failed")
            detail = str(exc) or type(exc).__name__
            raise UpstreamError(
                Failure.TLS, f"{where}: TLS to {tls.server_hostname}: {detail}"
            ) from None
        assert transport is not None
        problem = tls.check(transport.get_extra_info("peercert"))
        if problem is not None:
            transport.abort()
            self.stats.bump("upstream_tls_failed")
            raise UpstreamError(Failure.TLS, f"{where}: {problem}")
        proto.connection_made(transport)
        self.stats.bump("upstream_connections")
        return proto

    # HTTP/1.1 ------------------------------------------------------------------------

    async def _connect_h1(self, endpoint: Endpoint, tls: OriginTLS | None) -> _H1Conn:
        key: PoolKey = endpoint if tls is None else (endpoint, tls)
        conn = await self._connect(lambda: _H1Conn(self, key), endpoint, tls, "http/1.1")
        assert isinstance(conn, _H1Conn)
        return conn

    def _acquire_idle(self, key: PoolKey) -> _H1Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    def _release(self, conn: _H1Conn) -> None:
        if self._closed:
            conn.abort()
            return
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        if len(idle) >= self.limits.max_idle_per_backend:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(
                self.limits.upstream_idle_timeout / 2, self._sweep
            )

    def _forget(self, conn: _H1Conn) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = time.monotonic() - self.limits.upstream_idle_timeout
        remaining = 0
        for key, idle in list(self._idle.items()):
            while idle and idle[0].idle_since < deadline:
                conn = idle.popleft()
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.close()
            if not idle:
                del self._idle[key]  # keys of old snapshots' TLS settings do not pile up
            remaining += len(idle)
        if remaining and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(
                self.limits.upstream_idle_timeout / 2, self._sweep
            )

    def start(
        self,
        endpoint: Endpoint,
        head: bytes,
        head_only: bool,
        timeout: float | None,
        on_done: Callable[[Response | UpstreamError], None],
        tls: OriginTLS | None = None,
    ) -> Callable[[], None] | None:
        """Send a request without a body (its `head`, see `h1_head`) on a pooled
        HTTP/1.1 connection, now; `on_done` gets the response or the error later (see
        the module doc). `head_only`: a HEAD request (the response has no body).
        Returns a function that abandons the exchange, or None when no pooled
        connection is free (then use `send`, which connects)."""
        conn = self._acquire_idle(endpoint if tls is None else (endpoint, tls))
        if conn is None:
            return None
        conn.begin_direct(head_only, on_done)
        self.batch.write(conn.transport, head, conn.loop)
        if timeout is not None:
            self.deadlines.set(conn, timeout, conn.timeout_callback)
        else:
            self.deadlines.clear(conn)  # a previous exchange's deadline must not fire
        return conn.cancel

    async def send(
        self,
        endpoint: Endpoint,
        request: OutRequest,
        body: Body,
        timeout: float | None,
        *,
        h2c: bool = False,
        tls: OriginTLS | None = None,
    ) -> Response:
        """Send one request; the response head, its body still streaming."""
        if h2c:
            return await self._send_h2(endpoint, request, body, timeout, tls)
        conn = self._acquire_idle(endpoint if tls is None else (endpoint, tls))
        if conn is not None and body is None:
            # Fast path: a pooled connection and no body (most requests).
            head, _ = h1_head(request, None)
            waiter = conn.begin(request.method == "HEAD")
            conn.request_sent = True
            conn.transport.write(head)  # type: ignore[union-attr]
            if timeout is not None:
                self.deadlines.set(conn, timeout, conn.timed_out)
            try:
                return await waiter
            except UpstreamError as exc:
                if not exc.fresh_retry:
                    raise
                self.stats.bump("upstream_stale_retry")
                return await self._send_h1(None, endpoint, tls, request, body, timeout)
            except BaseException:
                conn.abort()
                raise
            finally:
                if timeout is not None:
                    self.deadlines.clear(conn)
        replayable = not isinstance(body, BodyStream)
        try:
            return await self._send_h1(conn, endpoint, tls, request, body, timeout)
        except UpstreamError as exc:
            if exc.fresh_retry and replayable:
                self.stats.bump("upstream_stale_retry")
                return await self._send_h1(None, endpoint, tls, request, body, timeout)
            raise

    async def _send_h1(
        self,
        conn: _H1Conn | None,
        endpoint: Endpoint,
        tls: OriginTLS | None,
        request: OutRequest,
        body: Body,
        timeout: float | None,
    ) -> Response:
        if conn is None:
            conn = await self._connect_h1(endpoint, tls)
        head, chunked = h1_head(request, body)
        waiter = conn.begin(request.method == "HEAD")
        transport = conn.transport
        assert transport is not None
        pump: asyncio.Task[None] | None = None
        if isinstance(body, bytes) or body is None:
            transport.write(head + body if body else head)
            conn.request_sent = True
        else:
            conn.request_sent = False
            transport.write(head)
            pump = conn.loop.create_task(_pump_h1(conn, body, chunked))
        if timeout is not None:
            self.deadlines.set(conn, timeout, conn.timed_out)
        try:
            return await waiter
        except BaseException:
            if pump is not None:
                pump.cancel()
            conn.abort()
            raise
        finally:
            if timeout is not None:
                self.deadlines.clear(conn)

    async def upgrade(
        self,
        endpoint: Endpoint,
        request: OutRequest,
        timeout: float | None,
        tls: OriginTLS | None = None,
    ) -> Response:
        """Send an Upgrade request on a connection of its own; a 101 comes back with
        the raw connection in `Response.tunnel`, anything else as a normal response."""
        conn = await self._connect_h1(endpoint, tls)
        conn.upgrade = True
        head, _ = h1_head(request, None, upgrade=True)
        waiter = conn.begin(False)
        assert conn.transport is not None
        conn.transport.write(head)
        try:
            async with asyncio.timeout(timeout or self.limits.upstream_timeout):
                response = await waiter
        except TimeoutError:
            conn.abort()
            raise UpstreamError(Failure.TIMEOUT, "no response to the upgrade") from None
        except BaseException:
            conn.abort()
            raise
        if response.status == 101:
            # The parser stopped at the head; what followed is the new protocol's.
            await asyncio.sleep(0)
            response.tunnel = Tunnel(conn.transport, conn.leftover)
        return response

    # HTTP/2 (h2c, or h2 over TLS) ------------------------------------------------------

    async def _h2_conn(self, endpoint: Endpoint, tls: OriginTLS | None) -> _H2Conn:
        key: PoolKey = endpoint if tls is None else (endpoint, tls)
        for conn in self._h2.get(key, ()):
            if conn.usable and conn.has_capacity:
                return conn
        made = await self._connect(lambda: _H2Conn(self, key), endpoint, tls, "h2")
        assert isinstance(made, _H2Conn)
        self._h2.setdefault(key, []).append(made)
        return made

    async def _send_h2(
        self,
        endpoint: Endpoint,
        request: OutRequest,
        body: Body,
        timeout: float | None,
        tls: OriginTLS | None,
    ) -> Response:
        if tls is not None:
            request.scheme = "https"
        conn = await self._h2_conn(endpoint, tls)
        try:
            return await conn.request(request, body, timeout)
        except UpstreamError as exc:
            if exc.fresh_retry and not isinstance(body, BodyStream):
                self.stats.bump("upstream_stale_retry")
                conn = await self._h2_conn(endpoint, tls)
                return await conn.request(request, body, timeout)
            raise

    def _forget_h2(self, conn: _H2Conn) -> None:
        conns = self._h2.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        self._closed = True
        self.deadlines.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        for conns in self._h2.values():
            for h2conn in conns:
                h2conn.close()
        self._h2.clear()


async def _pump_h1(conn: _H1Conn, body: BodyStream, chunked: bool) -> None:
    transport = conn.transport
    assert transport is not None
    try:
        while True:
            chunk = await body.read()
            if not chunk:
                break
            transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await conn.drain()
        if chunked:
            trailers = body.trailers or []
            tail = "".join(f"{n}: {v}\r\n" for n, v in trailers).encode("latin-1")
            transport.write(b"0\r\n" + tail + b"\r\n")
        conn.request_sent = True
    except ProxyError as exc:
        # The client's body broke (timeout, reset): the exchange cannot complete.
        waiter = conn.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        conn.abort()
    except (ConnectionError, asyncio.CancelledError):
        conn.abort()


class _H2Stream:
    __slots__ = ("body", "waiter", "window_waiter")

    def __init__(self, waiter: asyncio.Future[Response]) -> None:
        self.waiter = waiter
        self.body: BodyStream | None = None
        self.window_waiter: asyncio.Future[None] | None = None


class _H2Conn(asyncio.Protocol):
    """An h2c connection to a backend (prior knowledge), multiplexing requests."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _H2Stream] = {}
        self.usable = True
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []

    @property
    def has_capacity(self) -> bool:
        limit = self.h2.remote_settings.max_concurrent_streams
        return self.h2.open_outbound_streams < min(limit, 1000)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 256 * 1024,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(4 * 1024 * 1024 - 65535)
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self._flush()
            except h2.exceptions.ProtocolError:
                pass
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.pool._forget_h2(self)
        for stream in self.streams.values():
            self._fail(stream, UpstreamError(Failure.RESET, "h2 connection closed"))
        self.streams.clear()
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("backend closed"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, stream: _H2Stream, exc: UpstreamError) -> None:
        if not stream.waiter.done():
            stream.waiter.set_exception(exc)
        elif stream.body is not None:
            stream.body.fail(exc)
        if stream.window_waiter is not None and not stream.window_waiter.done():
            stream.window_waiter.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.usable = False
            for stream in self.streams.values():
                self._fail(stream, UpstreamError(Failure.BAD_RESPONSE, str(exc)))
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            headers = []
            status = 0
            content_length = None
            assert event.headers is not None
            for raw_name, raw_value in event.headers:
                name = raw_name.decode("latin-1")
                value = raw_value.decode("latin-1")
                if name == ":status":
                    status = int(value)
                elif name[0] != ":":
                    headers.append((name, value))
                    if name == "content-length":
                        content_length = int(value)
            sid = event.stream_id
            body = BodyStream(consumed=lambda n: self._ack(sid, n))
            stream.body = body
            if event.stream_ended is not None:
                body.end()
            if not stream.waiter.done():
                stream.waiter.set_result(Response(status, headers, body, content_length))
        elif isinstance(event, H2_BODY_EVENTS):
            stream = self.streams.get(event.stream_id)
            feed_h2_body(self.h2, stream.body if stream is not None else None, event)
            if isinstance(event, h2.events.StreamEnded):
                self.streams.pop(event.stream_id, None)  # the exchange is over
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                self._fail(
                    stream,
                    UpstreamError(
                        Failure.REFUSED_STREAM if refused else Failure.RESET,
                        f"stream reset ({event.error_code!s})",
                        fresh_retry=refused,
                    ),
                )
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for stream in self.streams.values():
                waiter = stream.window_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.usable = False
            last = event.last_stream_id or 0
            for sid, stream in list(self.streams.items()):
                if sid > last:
                    # Never processed by the backend (GOAWAY): safe to resend.
                    del self.streams[sid]
                    self._fail(stream, UpstreamError(Failure.RESET, "GOAWAY", fresh_retry=True))

    def _ack(self, stream_id: int, n: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.h2.acknowledge_received_data(n, stream_id)
        self._flush()

    async def request(self, request: OutRequest, body: Body, timeout: float | None) -> Response:
        if not self.usable:
            raise UpstreamError(Failure.RESET, "h2 connection going away", fresh_retry=True)
        loop = self.loop
        sid = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", request.method.encode("latin-1")),
            (b":scheme", request.scheme.encode("latin-1")),
            (b":authority", request.authority.encode("latin-1")),
            (b":path", request.path.encode("latin-1")),
        ]
        headers.extend((n.encode("latin-1"), v.encode("latin-1")) for n, v in request.headers)
        empty = body is None or body == b""
        waiter: asyncio.Future[Response] = loop.create_future()
        stream = _H2Stream(waiter)
        self.streams[sid] = stream
        self.h2.send_headers(sid, headers, end_stream=empty)
        self._flush()
        pump = None
        if not empty:
            assert body is not None
            pump = loop.create_task(self._pump(sid, stream, body))
        try:
            if timeout is None:
                return await waiter
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            self._reset(sid)
            raise UpstreamError(Failure.TIMEOUT, "no response head in time") from None
        except BaseException:
            if pump is not None:
                pump.cancel()
            self._reset(sid)
            raise

    def _reset(self, sid: int) -> None:
        self.streams.pop(sid, None)
        try:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        except h2.exceptions.ProtocolError:
            pass

    async def _pump(self, sid: int, stream: _H2Stream, body: bytes | BodyStream) -> None:
        try:
            if isinstance(body, bytes):
                await self._send_data(sid, stream, body, end=True)
                return
            while True:
                chunk = await body.read()
                if not chunk:
                    break
                await self._send_data(sid, stream, chunk, end=False)
            if body.trailers:
                trailers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in body.trailers]
                self.h2.send_headers(sid, trailers, end_stream=True)
            else:
                self.h2.end_stream(sid)
            self._flush()
        except ProxyError as exc:
            if not stream.waiter.done():
                stream.waiter.set_exception(exc)
            self._reset(sid)
        except (ConnectionError, h2.exceptions.ProtocolError, asyncio.CancelledError):
            self._reset(sid)

    async def _send_data(self, sid: int, stream: _H2Stream, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if window <= 0:
                stream.window_waiter = self.loop.create_future()
                try:
                    await stream.window_waiter
                finally:
                    stream.window_waiter = None
                continue
            piece, view = view[:window], view[window:]
            last = not view
            self.h2.send_data(sid, piece.tobytes(), end_stream=end and last)
            self._flush()
            if self.write_paused:
                waiter = self.loop.create_future()
                self.drain_waiters.append(waiter)
                await waiter
            if last:
                return
