"""HTTP/2 server side (h2): one connection, many concurrent streams -> `Request`s.

Reached by the h2c prior-knowledge preface on cleartext listeners or by ALPN
"h2" after TLS. gRPC is ordinary HTTP/2 here: request and response trailers are
carried through (`BodyStream.trailers`), which is all gRPC needs.

Invariants:
- at most `Limits.max_streams` concurrent streams (advertised in SETTINGS and
  enforced by h2; a client that ignores it is refused with RST_STREAM);
- request bodies are flow-controlled by consumption: WINDOW_UPDATE is sent
  only when the handler has read the bytes, so a slow backend cannot make the
  proxy buffer more than one window per stream;
- response data honours the client's windows and the transport's write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from netlet.dataplane.proxy.site import ConnInfo, Site
from netlet.dataplane.proxy.streams import (
    FRAMING,
    H2_BODY_EVENTS,
    HOP_BY_HOP,
    BodyStream,
    Headers,
    ProxyError,
    Request,
    Response,
    feed_h2_body,
    local_response,
)

log = logging.getLogger(__name__)

STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 4 * 1024 * 1024


class _Stream:
    __slots__ = ("body", "id", "request", "task", "window_waiter")

    def __init__(self, stream_id: int, request: Request) -> None:
        self.id = stream_id
        self.request = request
        self.body = request.body
        self.task: asyncio.Task[None] | None = None
        self.window_waiter: asyncio.Future[None] | None = None


class H2Server(asyncio.Protocol):
    def __init__(self, site: Site) -> None:
        self.site = site
        self.limits = site.limits
        self.loop = asyncio.get_event_loop()
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=True,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.conn = ConnInfo(site)
        self.streams: dict[int, _Stream] = {}
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._idle: asyncio.TimerHandle | None = None
        self._draining = False

    # Lifecycle -----------------------------------------------------------------------

    def connection_made(
        self, transport: asyncio.BaseTransport, conn: ConnInfo | None = None
    ) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        if conn is None:
            peer = transport.get_extra_info("peername")
            conn = ConnInfo(self.site, client=peer[0] if peer else "")
        self.conn = conn
        self.site.stats.connection_opened(self.site.name)
        self.site.connections.add(self)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.limits.max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.limits.max_header_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self.h2.initiate_connection()
        # The SETTINGS frame above advertised the limits. h2 would answer a client
        # that exceeds the stream limit by closing the whole connection; refusing
        # just the extra stream is kinder (RFC 9113 5.1.2), so h2 is told a larger
        # limit and `_request` enforces the advertised one.
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 4 * self.limits.max_header_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.site.stats.connection_closed(self.site.name)
        self.site.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        for stream in list(self.streams.values()):
            self._abort_stream(stream, ProxyError("client connection closed", 499))
        self.streams.clear()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("client connection closed"))

    def shutdown(self) -> None:
        """GOAWAY: no new streams; close once the open ones are done."""
        self._draining = True
        if not self.streams:
            self.close()
        else:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(last_stream_id=self.h2.highest_inbound_stream_id)
            self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _arm_idle(self) -> None:
        if self._draining and not self.streams:
            self.close()
            return
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if not self.streams and not self._closed:
            self._idle = self.loop.call_later(self.limits.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        if not self.streams:
            self.close()

    def close(self, error: h2.errors.ErrorCodes = h2.errors.ErrorCodes.NO_ERROR) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.h2.close_connection(error_code=error)
            self._flush()
        except h2.exceptions.ProtocolError:
            pass
        self.transport.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # Reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.site.stats.bump("h2_protocol_error")
            log.debug("HTTP/2 protocol error from %s: %s", self.conn.client, exc)
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, H2_BODY_EVENTS):
            stream = self.streams.get(event.stream_id)
            feed_h2_body(self.h2, stream.body if stream is not None else None, event)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                self.site.stats.bump("h2_client_reset")
                self._abort_stream(stream, ProxyError("client reset the stream", 499))
            self._arm_idle()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_senders(getattr(event, "stream_id", 0))
        elif isinstance(event, h2.events.ConnectionTerminated) and self.transport is not None:
            self.transport.close()

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        assert event.headers is not None
        headers: Headers = []
        method = path = scheme = authority = ""
        size = 0
        cookies = []
        for raw_name, raw_value in event.headers:
            name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
            value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
            size += len(name) + len(value) + 32
            if name[0] == ":":
                if name == ":method":
                    method = value
                elif name == ":path":
                    path = value
                elif name == ":scheme":
                    scheme = value
                elif name == ":authority":
                    authority = value
            elif name == "cookie":
                cookies.append(value)
            elif name == "host":
                authority = authority or value
            else:
                headers.append((name, value))
        if cookies:
            # RFC 9113 8.2.3: split cookie fields are joined before going to HTTP/1.1.
            headers.append(("cookie", "; ".join(cookies)))
        ended = event.stream_ended is not None
        body = None
        if not ended:
            body = BodyStream(
                consumed=lambda n: self._ack(stream_id, n),
                high_water=STREAM_WINDOW * 2,
                read_timeout=self.limits.body_timeout,
            )
        content_length = None
        for name, value in headers:
            if name == "content-length":
                content_length = int(value)
        request = Request(
            method,
            scheme or self.site.scheme,
            authority,
            path,
            headers,
            body,
            version="2",
            client=self.conn.client,
            content_length=content_length,
        )
        if len(self.streams) >= self.limits.max_streams:
            self.site.stats.bump("h2_refused_stream")
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        stream = _Stream(stream_id, request)
        self.streams[stream_id] = stream
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if size > self.limits.max_header_bytes:
            stream.task = self.loop.create_task(
                self._respond_local(stream, 431, "request headers too large")
            )
        elif method == "CONNECT":
            stream.task = self.loop.create_task(self._respond_local(stream, 405, "no CONNECT"))
        elif not authority or not path:
            stream.task = self.loop.create_task(self._respond_local(stream, 400, "no authority"))
        else:
            stream.task = self.loop.create_task(self._serve(stream))

    def _ack(self, stream_id: int, n: int) -> None:
        if self._closed:
            return
        self.h2.acknowledge_received_data(n, stream_id)
        self._flush()

    def _abort_stream(self, stream: _Stream, exc: ProxyError) -> None:
        if stream.body is not None:
            stream.body.fail(exc)
        if stream.task is not None and not stream.task.done():
            stream.task.cancel()
        waiter = stream.window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("stream reset"))

    # Writing -------------------------------------------------------------------------

    async def _respond_local(self, stream: _Stream, status: int, message: str) -> None:
        started = time.monotonic()
        response = local_response(status, message)
        try:
            sent = await self._send(stream, response)
        except (ConnectionError, asyncio.CancelledError):
            sent = 0
        self._finish(stream, started, status, sent, response)

    async def _serve(self, stream: _Stream) -> None:
        started = time.monotonic()
        request = stream.request
        response: Response | None = None
        status = 0
        sent = 0
        try:
            try:
                response = await self.site.handler.handle(request, self.conn)
            except ProxyError as exc:
                response = local_response(exc.status, str(exc))
            status = response.status
            sent = await self._send(stream, response)
        except asyncio.CancelledError:
            status = status or 499
        except (ConnectionError, ProxyError) as exc:
            status = status or (exc.status if isinstance(exc, ProxyError) else 499)
            self._reset(stream.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        except Exception:
            log.exception("error while serving %s %s", request.method, request.path)
            status = 500
            self._reset(stream.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self._finish(stream, started, status, sent, response)

    def _finish(
        self, stream: _Stream, started: float, status: int, sent: int, response: Response | None
    ) -> None:
        self.site.log_request(self.conn, stream.request, status, sent, started, response)
        self.streams.pop(stream.id, None)
        body = stream.body
        if body is not None and not body.at_eof and not self._closed:
            # The handler did not read the whole request: stop the client sending it.
            self._reset(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        self._arm_idle()

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        if self._closed:
            return
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            return
        self._flush()

    async def _send(self, stream: _Stream, response: Response) -> int:
        request = stream.request
        status = response.status
        body = response.body
        no_body = request.method == "HEAD" or status in (204, 304)
        headers: list[tuple[str, str]] = [(":status", str(status))]
        for name, value in response.headers:
            if name not in FRAMING:
                headers.append((name, value))
        if isinstance(body, bytes):
            if status not in (204, 304):
                headers.append(("content-length", str(len(body))))
            end = no_body or not body
            self.h2.send_headers(stream.id, _encode(headers), end_stream=end)
            self._flush()
            if not end:
                await self._send_data(stream, body, end=True)
            return 0 if no_body else len(body)
        if response.content_length is not None:
            headers.append(("content-length", str(response.content_length)))
        self.h2.send_headers(stream.id, _encode(headers), end_stream=False)
        self._flush()
        sent = 0
        while True:
            chunk = await body.read()
            if not chunk:
                break
            if not no_body:
                sent += len(chunk)
                await self._send_data(stream, chunk, end=False)
        trailers = body.trailers
        if trailers:
            self.h2.send_headers(
                stream.id,
                _encode([(n, v) for n, v in trailers if n not in HOP_BY_HOP]),
                end_stream=True,
            )
        else:
            self.h2.end_stream(stream.id)
        self._flush()
        return sent

    async def _send_data(self, stream: _Stream, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            window = min(
                self.h2.local_flow_control_window(stream.id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                await self._wait_window(stream)
                continue
            piece = view[:window]
            view = view[window:]
            last = not view
            self.h2.send_data(stream.id, piece.tobytes(), end_stream=end and last)
            self._flush()
            if self._write_paused:
                await self._drain()
            if last:
                return

    async def _wait_window(self, stream: _Stream) -> None:
        waiter = self.loop.create_future()
        stream.window_waiter = waiter
        try:
            await asyncio.wait_for(waiter, self.limits.send_timeout)
        except TimeoutError:
            self.site.stats.bump("client_send_timeout")
            raise ConnectionResetError("client did not open its window in time") from None
        finally:
            stream.window_waiter = None

    def _wake_senders(self, stream_id: int) -> None:
        targets = self.streams.values() if stream_id == 0 else [self.streams.get(stream_id)]
        for stream in targets:
            if stream is None:
                continue
            waiter = stream.window_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, self.limits.send_timeout)
        except TimeoutError:
            self.site.stats.bump("client_send_timeout")
            raise ConnectionResetError("client did not read in time") from None


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
