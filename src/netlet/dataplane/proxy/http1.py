"""HTTP/1.1 server side: bytes from a client connection -> `Request`s -> the handler.

Parsing is llhttp (httptools) in its strict mode, which rejects what request
smuggling feeds on: Content-Length with Transfer-Encoding, duplicate
Content-Length, bad chunk sizes, bare LF, obsolete line folding, control
characters. Limits on top of it: head size (431, 414 for the URL), header count
(431), a slow-client deadline for the head (408) and between body chunks (408).

Invariants:
- responses go out in request order (pipelining-safe): one request is handled at
  a time, the ones pipelined behind it wait in a bounded queue (reading pauses
  when it is full);
- a response is framed by this module only (Content-Length or chunked), never by
  copying the backend's framing headers;
- a connection whose request body was not read to the end is not reused.

A request without a body whose handler offers `begin` (the gateway Engine) is
served without an asyncio Task: the handler answers at once, or sends the
request upstream and calls back with the finished response, which is written
from that callback; only responses that must stream take a Task.

A connection that opens with the HTTP/2 preface (prior knowledge, h2c) or that
negotiated ALPN "h2" is handed to `http2.H2Server` before any parsing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from netlet.dataplane.proxy import pipe
from netlet.dataplane.proxy.site import ConnInfo, Site
from netlet.dataplane.proxy.streams import (
    FRAMING,
    HEADER_NAMES,
    REASONS,
    BodyStream,
    Headers,
    ProxyError,
    Request,
    Response,
    header_name,
    local_response,
    reason,
)

log = logging.getLogger(__name__)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Statuses that never carry a body (RFC 9110 6.4.1).
_NO_BODY_STATUS = frozenset({204, 304})

# Status lines of the common statuses, formatted once.
_STATUS_LINES = {code: f"HTTP/1.1 {code} {text}\r\n" for code, text in REASONS.items()}

# Request headers `on_headers_complete` looks at (the others are only forwarded).
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "upgrade"})

# Method names as str, made once.
_METHODS = {
    name.encode("ascii"): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
}

_HEAD = 0  # waiting for / reading a request head
_BODY = 1  # head done, body (if any) arriving


class _InFlight:
    """A request answered by callbacks (`Handler.begin`), where a Task would stand. One
    per connection, reused: a connection serves one request at a time."""

    __slots__ = ("cancel_exchange", "keep_alive", "request", "started")

    def __init__(self) -> None:
        self.request: Request | None = None
        self.keep_alive = True
        self.started = 0.0
        self.cancel_exchange: Callable[[], None] | None = None

    def done(self) -> bool:
        return False

    def cancel(self) -> None:
        if self.cancel_exchange is not None:
            self.cancel_exchange()


class _Fatal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class H1Server(asyncio.Protocol):
    """One client connection speaking HTTP/1.x."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.limits = site.limits
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: ConnInfo = ConnInfo(site)
        self.parser = httptools.HttpRequestParser(self)
        self._first = True
        self._phase = _HEAD
        self._head_bytes = 0
        self._head_size = 0
        self._url = b""
        self._headers: Headers = []
        self._trailers: Headers | None = None
        self._current: Request | None = None
        self._queue: deque[tuple[Request, bool]] = deque()
        self._active: asyncio.Task[None] | _InFlight | None = None
        # The handler's callback entry point, when it has one (see the module doc).
        self._begin: Callable[..., Any] | None = getattr(site.handler, "begin", None)
        self._inflight = _InFlight()
        self._done_callback = self._direct_done  # bound once, handed over per request
        self._deadlines = site.deadlines
        self._batch = site.batch
        self._timeout_callback = self._on_timeout  # bound once, armed per request
        self._read_paused: set[str] = set()
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._fatal: _Fatal | None = None
        self._upgrade_leftover: bytes | None = None
        self._message_begun = False
        self._draining = False

    # Connection lifecycle ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        peer = transport.get_extra_info("peername")
        ssl_object = transport.get_extra_info("ssl_object")
        self.conn = ConnInfo(
            self.site,
            client=peer[0] if peer else "",
            client_port=peer[1] if peer else 0,
            tls=ssl_object is not None,
        )
        if ssl_object is not None:
            from netlet.dataplane.proxy.tls import server_name

            self.conn.sni = server_name(ssl_object)
            self.conn.alpn = ssl_object.selected_alpn_protocol()
            if self.conn.alpn == "h2":
                self._switch_to_h2(b"")
                return
        self.site.stats.connection_opened(self.site.name)
        self.site.connections.add(self)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.site.stats.connection_closed(self.site.name)
        self.site.connections.discard(self)
        self._cancel_timer()
        if self._current is not None and self._current.body is not None:
            self._current.body.fail(ProxyError("client closed the connection", 499))
        for request, _ in self._queue:
            if request.body is not None:
                request.body.fail(ProxyError("client closed the connection", 499))
        self._queue.clear()
        if self._active is not None and not self._active.done():
            self._active.cancel()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("client closed the connection"))

    def shutdown(self) -> None:
        """Finish the request in progress (if any), then close."""
        self._draining = True
        if self._active is None:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _send(self, data: bytes) -> None:
        """Write to the client at the end of the loop's pass (batch.py): every write of
        this protocol goes this way, so they stay in order."""
        self._batch.write(self.transport, data, self.loop)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _switch_to_h2(self, data: bytes) -> None:
        from netlet.dataplane.proxy.http2 import H2Server

        assert self.transport is not None
        self._cancel_timer()
        if not self._closed and self.conn.alpn != "h2":
            # Counted as an HTTP/1 connection already; H2Server counts it again.
            self.site.stats.connections_total[self.site.name] -= 1
            self.site.stats.connection_closed(self.site.name)
            self.site.connections.discard(self)
        proto = H2Server(self.site)
        self._batch.flush()  # nothing of ours may follow what H2Server writes
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport, conn=self.conn)
        self._closed = True  # this protocol object is done; H2Server owns the counters now
        if data:
            proto.data_received(data)

    # Timers ------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._deadlines.set(self, seconds, self._timeout_callback)

    def _cancel_timer(self) -> None:
        self._deadlines.clear(self)

    def _on_timeout(self) -> None:
        if self._active is not None:
            return
        if self._message_begun:
            # A slow client: its head did not arrive in time.
            self.site.stats.bump("client_header_timeout")
            self._write_error_and_close(408, "request head not received in time")
        else:
            self._close()

    # Reading -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._first:
            self._first = False
            head = data[: len(H2_PREFACE)]
            if self.site.h2c and head[:3] == b"PRI" and H2_PREFACE.startswith(head):
                self._switch_to_h2(data)
                return
        if self._upgrade_leftover is not None:
            # Bytes after an Upgrade request, before the tunnel is joined.
            self._upgrade_leftover += data
            return
        if self._fatal is not None:
            return
        if self._phase == _HEAD:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._upgrade_leftover = data[offset:]
            self._pause_reading("upgrade")
            return
        except _Fatal as exc:
            self._fail(exc)
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, _Fatal) else _Fatal(400, str(exc)))
            return
        except httptools.HttpParserError as exc:
            self.site.stats.bump("bad_request")
            self._fail(_Fatal(400, str(exc)))
            return
        if self._phase == _HEAD and self._message_begun:
            if self._head_bytes > self.limits.max_header_bytes:
                self._fail(_Fatal(431, "request head too large"))
            elif self._active is None:
                # A head still incomplete: the slow-client deadline (408) starts. A head
                # that arrived whole (the usual case) never needs the timer.
                self._arm(self.limits.header_timeout)

    def _fail(self, exc: _Fatal) -> None:
        """A request that cannot be parsed: answer it in order, then close."""
        self._fatal = exc
        self._pause_reading("fatal")
        if self._current is not None and self._current.body is not None:
            self._current.body.fail(ProxyError(str(exc), exc.status))
        if self._active is None:
            self._write_error_and_close(exc.status, str(exc))

    # httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._message_begun = True
        self._phase = _HEAD
        self._url = b""
        self._headers = []
        self._trailers = None
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_url_bytes:
            raise _Fatal(414, "request URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        entry = (HEADER_NAMES.get(name) or header_name(name), value.decode("latin-1"))
        if self._phase:  # _BODY: trailers of a chunked body
            if self._trailers is None:
                self._trailers = []
            self._trailers.append(entry)
            return
        headers = self._headers
        headers.append(entry)
        size = self._head_size = self._head_size + len(name) + len(value) + 4
        limits = self.limits
        if size > limits.max_header_bytes:
            raise _Fatal(431, "request head too large")
        if len(headers) > limits.max_headers:
            raise _Fatal(431, "too many request headers")

    def on_headers_complete(self) -> None:
        parser = self.parser
        self._phase = _BODY
        self._head_bytes = 0
        version = parser.get_http_version()
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        headers = self._headers
        host = None
        content_length = None
        chunked = False
        upgrade = None
        for name, value in headers:
            if name not in _FRAMING:
                continue
            if name == "host":
                if host is not None:
                    raise _Fatal(400, "more than one Host header")
                host = value
            elif name == "content-length":
                content_length = int(value)
            elif name == "transfer-encoding":
                # RFC 9112 6.1: chunked must be the final coding (else 400); codings
                # the proxy does not implement get 501.
                codings = [c.strip().lower() for c in value.split(",")]
                if codings[-1] != "chunked":
                    raise _Fatal(400, "Transfer-Encoding must end with chunked")
                if len(codings) > 1:
                    raise _Fatal(501, f"unsupported transfer coding {value!r}")
                chunked = True
            elif name == "upgrade":
                upgrade = value
        if method == "CONNECT":
            raise _Fatal(405, "CONNECT is not supported")
        url = self._url.decode("latin-1")
        scheme = self.site.scheme
        if not url.startswith("/"):
            if url == "*" and method == "OPTIONS":
                path = "*"
            else:
                # absolute-form (RFC 9112 3.2.2): the URL's authority replaces Host.
                parts = urlsplit(url)
                if not parts.scheme or not parts.netloc:
                    raise _Fatal(400, "bad request target")
                host = parts.netloc
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        else:
            path = url
        if host is None:
            if version == "1.1":
                raise _Fatal(400, "missing Host header")
            host = ""
        body: BodyStream | None = None
        if chunked or (content_length is not None and content_length > 0):
            body = BodyStream(
                pause=lambda: self._pause_reading("body"),
                resume=lambda: self._resume_reading("body"),
                high_water=self.limits.body_high_water,
                read_timeout=self.limits.body_timeout,
            )
        if not parser.should_upgrade():
            upgrade = None
        request = Request(
            method,
            scheme,
            host,
            path,
            headers,
            body,
            version,
            self.conn.client,
            content_length,
            upgrade,
        )
        self._current = request
        keep_alive = parser.should_keep_alive()
        if self._active is None and not self._queue:
            # The idle/head deadline stays set: `_on_timeout` ignores it while a request
            # is active, and the end of the response sets the next one.
            self._start(request, keep_alive)
        else:
            self._queue.append((request, keep_alive))
            if len(self._queue) >= self.limits.max_pipeline:
                self._pause_reading("pipeline")

    def on_body(self, data: bytes) -> None:
        current = self._current
        if current is not None and current.body is not None:
            current.body.feed(data)

    def on_message_complete(self) -> None:
        current = self._current
        if current is not None and current.body is not None:
            current.body.end(self._trailers)
        self._current = None
        self._phase = _HEAD
        self._message_begun = False

    # Flow control ----------------------------------------------------------------

    def _pause_reading(self, why: str) -> None:
        if not self._read_paused and self.transport is not None:
            self.transport.pause_reading()
        self._read_paused.add(why)

    def _resume_reading(self, why: str) -> None:
        if why in self._read_paused:
            self._read_paused.discard(why)
            if not self._read_paused and self.transport is not None and not self._closed:
                self.transport.resume_reading()

    async def _drain(self) -> None:
        if not self._write_paused:
            return
        self._drain_waiter = waiter = self.loop.create_future()
        try:
            await asyncio.wait_for(waiter, self.limits.send_timeout)
        except TimeoutError:
            self.site.stats.bump("client_send_timeout")
            raise ConnectionResetError("client did not read the response in time") from None
        finally:
            self._drain_waiter = None

    # Serving -----------------------------------------------------------------------

    def _start(self, request: Request, keep_alive: bool) -> None:
        if request.body is not None:
            if request.header("expect") == "100-continue":
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif self._begin is not None and request.upgrade is None:
            self._start_direct(self._begin, request, keep_alive)
            return
        self._active = self.loop.create_task(self._serve(request, keep_alive))

    def _start_direct(self, begin: Callable[..., Any], request: Request, keep_alive: bool) -> None:
        started = time.monotonic()
        inflight = self._active = self._inflight
        inflight.request = request
        inflight.keep_alive = keep_alive
        inflight.started = started
        inflight.cancel_exchange = None
        try:
            result = begin(request, self.conn, self._done_callback)
        except ProxyError as exc:
            result = local_response(exc.status, str(exc))
        except Exception:
            log.exception("error while serving %s %s", request.method, request.path)
            self._active = None
            self._write_error_and_close(500, "internal error")
            return
        if isinstance(result, Response):
            self._respond_now(request, result, keep_alive, started)
        elif callable(result):
            inflight.cancel_exchange = result  # in flight: `_direct_done` comes later
        else:
            self._active = self.loop.create_task(
                self._serve(request, keep_alive, exchange=result, started=started)
            )

    def _direct_done(self, result: Response | object) -> None:
        """The handler's callback: the response of the request in flight, or the
        exchange when it needs the async path after all (a stale pooled connection)."""
        inflight = self._active
        if inflight is not self._inflight:
            return  # the client went away meanwhile
        request, keep_alive, started = inflight.request, inflight.keep_alive, inflight.started
        assert request is not None
        if isinstance(result, Response):
            self._respond_now(request, result, keep_alive, started)
        else:
            self._active = self.loop.create_task(
                self._serve(request, keep_alive, exchange=result, started=started)
            )

    def _respond_now(
        self, request: Request, response: Response, keep_alive: bool, started: float
    ) -> None:
        """Write a finished response from a callback; a body still arriving streams
        from a Task."""
        body = response.body
        if not isinstance(body, bytes) and not body.complete:
            self._active = self.loop.create_task(
                self._serve(request, keep_alive, response=response, started=started)
            )
            return
        sent, keep_alive = self._write_complete(request, response, keep_alive)
        self.site.log_request(self.conn, request, response.status, sent, started, response)
        if self._write_paused:
            self._active = self.loop.create_task(self._drain_then_continue(keep_alive))
            return
        self._active = None
        self._continue(keep_alive)

    async def _drain_then_continue(self, keep_alive: bool) -> None:
        try:
            await self._drain()
        except ConnectionError:
            self.site.stats.bump("client_reset")
            self._close()
            return
        self._active = None
        self._continue(keep_alive)

    def _continue(self, keep_alive: bool) -> None:
        """After a response: close, or serve what is queued, or wait for more."""
        if not keep_alive or self._closed or self._draining:
            self._close()
            return
        if self._upgrade_leftover is not None:
            self._upgrade_refused()
        if self._active is None:
            self._next()

    async def _serve(
        self,
        request: Request,
        keep_alive: bool,
        *,
        exchange: object = None,
        started: float | None = None,
        response: Response | None = None,
    ) -> None:
        """Handle a request (or carry on with an `exchange` or a `response` the
        callback path began) and write the response."""
        if started is None:
            started = time.monotonic()
        status = 0
        sent = 0
        try:
            if response is None:
                try:
                    if exchange is None:
                        response = await self.site.handler.handle(request, self.conn)
                    else:
                        response = await self.site.handler.forward(exchange)  # type: ignore[attr-defined]
                except ProxyError as exc:
                    response = local_response(exc.status, str(exc))
            status = response.status
            if response.tunnel is not None and status == 101:
                self._open_tunnel(request, response)
                self.site.log_request(self.conn, request, status, 0, started, response)
                return
            sent, keep_alive = await self._write_response(request, response, keep_alive)
        except asyncio.CancelledError:
            return
        except (ConnectionError, ProxyError) as exc:
            # The client went away or its body broke: nothing more to say to it.
            self.site.stats.bump("client_reset" if isinstance(exc, ConnectionError) else "aborted")
            self.site.log_request(self.conn, request, status or 499, sent, started, response)
            self._close()
            return
        except Exception:
            log.exception("error while serving %s %s", request.method, request.path)
            self._write_error_and_close(500, "internal error")
            return
        self.site.log_request(self.conn, request, status, sent, started, response)
        self._active = None
        if request.body is not None and not request.body.at_eof:
            keep_alive = keep_alive and await self._discard_body(request.body)
        self._continue(keep_alive)

    def _upgrade_refused(self) -> None:
        """The backend answered an Upgrade request normally: parse HTTP/1.1 again."""
        leftover = self._upgrade_leftover or b""
        self._upgrade_leftover = None
        self.parser = httptools.HttpRequestParser(self)
        self._resume_reading("upgrade")
        if leftover:
            self.data_received(leftover)

    def _next(self) -> None:
        if self._queue:
            request, keep_alive = self._queue.popleft()
            self._resume_reading("pipeline")
            self._start(request, keep_alive)
        elif self._fatal is not None:
            self._write_error_and_close(self._fatal.status, str(self._fatal))
        elif self._message_begun:
            self._arm(self.limits.header_timeout)
        else:
            self._arm(self.limits.idle_timeout)

    async def _discard_body(self, body: BodyStream) -> bool:
        """Read and drop what is left of a body the handler did not want, so the
        connection stays usable; give up (close) past 64 KiB or 1 s."""
        left = 64 * 1024
        try:
            async with asyncio.timeout(1.0):
                while chunk := await body.read():
                    left -= len(chunk)
                    if left < 0:
                        return False
        except (TimeoutError, ProxyError):
            return False
        return True

    def _write_complete(
        self, request: Request, response: Response, keep_alive: bool
    ) -> tuple[int, bool]:
        """Write a response whose whole body is here, in one write, framed by
        Content-Length (the backend's framing is not copied)."""
        transport = self.transport
        assert transport is not None
        status = response.status
        body = response.body
        data = body if isinstance(body, bytes) else body.take_buffered()
        no_body = request.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        if isinstance(body, bytes):
            tail = f"content-length: {len(data)}\r\n" if status not in _NO_BODY_STATUS else ""
        elif response.content_length is not None:
            # A HEAD response keeps the length a GET would have had (RFC 9110 9.3.2).
            tail = f"content-length: {response.content_length}\r\n"
        elif not no_body:
            tail = f"content-length: {len(data)}\r\n"  # the whole body is here
        else:
            tail = ""
        if not keep_alive:
            tail += "connection: close\r\n\r\n"
        elif request.version == "1.0":
            tail += "connection: keep-alive\r\n\r\n"
        else:
            tail += "\r\n"
        lines = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} {reason(status)}\r\n"]
        for name, value in response.headers:
            if name not in FRAMING:
                lines.append(f"{name}: {value}\r\n")
        lines.append(tail)
        head = "".join(lines).encode("latin-1")
        if no_body or not data:
            self._send(head)
            return 0, keep_alive
        self._send(head + data)
        return len(data), keep_alive

    async def _write_response(
        self, request: Request, response: Response, keep_alive: bool
    ) -> tuple[int, bool]:
        transport = self.transport
        assert transport is not None
        status = response.status
        no_body = request.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        body = response.body
        lines = [f"HTTP/1.1 {status} {reason(status)}\r\n"]
        for name, value in response.headers:
            if name not in FRAMING:
                lines.append(f"{name}: {value}\r\n")
        chunked = False
        if isinstance(body, bytes):
            if status not in _NO_BODY_STATUS:
                lines.append(f"content-length: {len(body)}\r\n")
        elif response.content_length is not None:
            lines.append(f"content-length: {response.content_length}\r\n")
        elif not no_body:
            if request.version == "1.1":
                chunked = True
                lines.append("transfer-encoding: chunked\r\n")
            else:
                keep_alive = False  # HTTP/1.0: the end of the body is the end of the connection
        if not keep_alive:
            lines.append("connection: close\r\n")
        elif request.version == "1.0":
            lines.append("connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        if isinstance(body, bytes):
            if no_body or not body:
                self._send(head)
            else:
                self._send(head + body)
            if self._write_paused:
                await self._drain()
            return len(body), keep_alive
        if no_body:
            self._send(head)
            # The backend's body (none for HEAD) must still be consumed for its connection.
            while await body.read():
                pass
            return 0, keep_alive
        sent = 0
        first = body.take_buffered()
        if chunked:
            self._send(head + (b"%x\r\n%s\r\n" % (len(first), first) if first else b""))
        else:
            self._send(head + first)
        sent += len(first)
        if (
            body.at_eof
            and not chunked
            and body.complete
            and (response.content_length is None or sent == response.content_length)
        ):
            # The whole body came with the head (the common small response).
            if self._write_paused:
                await self._drain()
            return sent, keep_alive
        while True:
            if self._write_paused:
                await self._drain()
            chunk = await body.read()
            if not chunk:
                break
            sent += len(chunk)
            self._send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self._send(b"0\r\n\r\n")
        elif response.content_length is not None and sent != response.content_length:
            # The backend sent fewer bytes than it announced: the client must see an error.
            raise ConnectionResetError("upstream body shorter than its Content-Length")
        if self._write_paused:
            await self._drain()
        return sent, keep_alive

    def _open_tunnel(self, request: Request, response: Response) -> None:
        """101 Switching Protocols: from now on the connection is a raw pipe."""
        transport = self.transport
        tunnel = response.tunnel
        assert transport is not None and tunnel is not None
        lines = [f"HTTP/1.1 101 {reason(101)}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in response.headers)
        lines.append("\r\n")
        self._send("".join(lines).encode("latin-1"))
        self._batch.flush()  # the pipe writes to the transport itself from now on
        leftover = self._upgrade_leftover or b""
        self._upgrade_leftover = None
        self._cancel_timer()
        self._closed = True
        self.site.connections.discard(self)
        site = self.site

        def closed(a: pipe.PipeProtocol, b: pipe.PipeProtocol) -> None:
            site.stats.connection_closed(site.name)

        pipe.join(
            transport,
            tunnel.transport,
            a_first=tunnel.leftover,
            b_first=leftover,
            idle_timeout=self.limits.tcp_idle_timeout,
            on_close=closed,
        )
        self._read_paused.clear()

    def _write_error_and_close(self, status: int, message: str) -> None:
        if self.transport is None or self._closed:
            return
        response = local_response(status, message)
        body = response.body
        assert isinstance(body, bytes)
        lines = [f"HTTP/1.1 {status} {reason(status)}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in response.headers)
        lines.append(f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self._send("".join(lines).encode("latin-1") + body)
        self.site.stats.request_done(self.site.name, "HTTP/1.1", status)
        self._close()

    def _close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self._batch.flush()  # what was written goes before the close
            self.transport.close()
