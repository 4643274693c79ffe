"""Requests, responses and the body streams between a client and a backend.

A `BodyStream` carries bytes one way with bounded buffering: the producer (a
protocol's data callback) feeds it and is told to pause once `high_water` bytes
are buffered; the consumer (`read`) resumes it. This is what keeps memory bounded
whatever the speed of either side. Names of headers are lower-case `str`
(latin-1, as on the wire); values are `str` too.

Every error raised towards a client carries the HTTP status it maps to
(`ProxyError.status`), so protocols never guess.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.connection
import h2.events

Headers = list[tuple[str, str]]

# Headers that describe one hop, never forwarded as they are (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Headers each side of the proxy writes itself (framing) and never copies from the other.
FRAMING = HOP_BY_HOP | {"content-length"}

DEFAULT_HIGH_WATER = 256 * 1024

# Header names as they come on the wire -> lower-case str, for the parsers' header
# callbacks (a dict lookup instead of a decode and a lower per header). Bounded: names
# past the bound are converted each time.
HEADER_NAMES: dict[bytes, str] = {}
_HEADER_NAMES_MAX = 512


def header_name(raw: bytes) -> str:
    """The lower-case str of a header name not in `HEADER_NAMES` yet (kept there)."""
    name = raw.decode("latin-1").lower()
    if len(HEADER_NAMES) < _HEADER_NAMES_MAX:
        HEADER_NAMES[raw] = name
    return name


class ProxyError(Exception):
    """An error that ends one request with `status` (and a short reason for logs)."""

    status = 502

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        if status is not None:
            self.status = status


class ClientBodyTimeout(ProxyError):
    status = 408


class StreamReset(ProxyError):
    """The other side went away mid-body."""

    status = 502


class BodyStream:
    """Bytes from one producer to one consumer; `read()` returns b"" at the end."""

    __slots__ = (
        "_buf",
        "_consumed",
        "_done",
        "_exc",
        "_high",
        "_pause",
        "_paused",
        "_resume",
        "_size",
        "_waiter",
        "read_timeout",
        "received",
        "trailers",
    )

    def __init__(
        self,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
        consumed: Callable[[int], None] | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
        read_timeout: float | None = None,
    ) -> None:
        self._buf: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._consumed = consumed
        self._high = high_water
        self._paused = False
        self.read_timeout = read_timeout
        self.received = 0
        self.trailers: Headers | None = None

    # Producer side ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._done or not data:
            return
        self._buf.append(data)
        self._size += len(data)
        self.received += len(data)
        if self._size > self._high and not self._paused and self._pause is not None:
            self._paused = True
            self._pause()
        self._wake()

    def end(self, trailers: Headers | None = None) -> None:
        if trailers is not None:
            self.trailers = trailers
        self._done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self._done and not self._buf:
            return
        self._exc = exc
        self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Consumer side ----------------------------------------------------------------

    @property
    def at_eof(self) -> bool:
        return self._done and not self._buf

    @property
    def complete(self) -> bool:
        """Everything was received (nothing more will be fed)."""
        return self._done and self._exc is None

    def take_buffered(self) -> bytes:
        """What is already here, without waiting (for fast paths)."""
        if not self._buf:
            return b""
        data = b"".join(self._buf) if len(self._buf) > 1 else self._buf[0]
        self._buf.clear()
        self._took(len(data))
        return data

    async def read(self) -> bytes:
        while not self._buf:
            if self._exc is not None:
                raise self._exc
            if self._done:
                return b""
            await self._wait()
        data = self._buf.popleft()
        self._took(len(data))
        return data

    async def read_all(self, limit: int) -> bytes:
        """The whole body; ProxyError(413) past `limit` bytes."""
        parts = []
        total = 0
        while chunk := await self.read():
            total += len(chunk)
            if total > limit:
                raise ProxyError("request body too large", 413)
            parts.append(chunk)
        return b"".join(parts)

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """Up to about `limit` bytes; (data, True) when that was the whole body.
        When it was not, the data is put back so the stream still reads whole."""
        parts: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = await self.read()
            if not chunk:
                return b"".join(parts), True
            parts.append(chunk)
            total += len(chunk)
        data = b"".join(parts)
        self._buf.appendleft(data)
        self._size += len(data)
        return data, False

    def _took(self, n: int) -> None:
        self._size -= n
        if self._consumed is not None:
            self._consumed(n)
        if self._paused and self._size <= self._high // 2 and self._resume is not None:
            self._paused = False
            self._resume()

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        try:
            if self.read_timeout is None:
                await waiter
            else:
                try:
                    await asyncio.wait_for(waiter, self.read_timeout)
                except TimeoutError:
                    raise ClientBodyTimeout("body read timed out") from None
        finally:
            self._waiter = None


# The HTTP/2 events that carry a stream's body, in either direction.
H2_BODY_EVENTS = (h2.events.DataReceived, h2.events.TrailersReceived, h2.events.StreamEnded)


def feed_h2_body(
    conn: h2.connection.H2Connection, body: BodyStream | None, event: h2.events.Event
) -> None:
    """Hand one of `H2_BODY_EVENTS` to the stream's `body`. Padding is acknowledged at
    once, data only as `body` is consumed; data for a stream without a body (gone, or
    never having one) is acknowledged and dropped, so the connection window stays
    open."""
    if isinstance(event, h2.events.DataReceived):
        data = event.data or b""
        pad = (event.flow_controlled_length or 0) - len(data)
        if pad:
            conn.acknowledge_received_data(pad, event.stream_id)
        if body is not None:
            body.feed(data)
        else:
            conn.acknowledge_received_data(len(data), event.stream_id)
    elif body is None:
        return
    elif isinstance(event, h2.events.TrailersReceived):
        body.trailers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers or ()]
    elif isinstance(event, h2.events.StreamEnded):
        body.end()


def fixed_body(data: bytes) -> BodyStream:
    stream = BodyStream()
    stream.feed(data)
    stream.end()
    return stream


@dataclass(slots=True)
class Request:
    """One HTTP request as the proxy received it (HTTP/1.1 or HTTP/2 alike)."""

    method: str
    scheme: str
    authority: str
    path: str
    headers: Headers
    body: BodyStream | None
    version: str = "1.1"
    client: str = ""
    content_length: int | None = None
    # HTTP/1.1 Upgrade (WebSocket): the protocol asked for.
    upgrade: str | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def host(self) -> str:
        """The authority without a port (what Gateway API hostnames match)."""
        host = self.authority
        if host.startswith("["):
            return host[: host.find("]") + 1]
        colon = host.rfind(":")
        return host[:colon] if colon >= 0 else host

    @property
    def is_grpc(self) -> bool:
        ctype = self.header("content-type")
        return ctype is not None and ctype.startswith("application/grpc")


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: BodyStream | bytes = b""
    # Known length of a streamed body (from the backend's Content-Length).
    content_length: int | None = None
    # Set when the backend agreed to an upgrade (101): the raw two-way pipe.
    tunnel: Tunnel | None = None
    # For the access log.
    upstream: str = ""
    upstream_seconds: float = 0.0
    route: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Tunnel:
    """A backend connection that switched protocols (101): raw bytes from now on.
    `leftover` is what the backend sent after its response head."""

    __slots__ = ("leftover", "transport")

    def __init__(self, transport: asyncio.Transport, leftover: bytes = b"") -> None:
        self.transport = transport
        self.leftover = leftover


REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    421: "Misdirected Request",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


def reason(status: int) -> str:
    return REASONS.get(status, "Unknown")


def local_response(status: int, message: str = "", headers: Headers | None = None) -> Response:
    """A response the proxy makes itself (errors, redirects, preflights)."""
    body = (message or reason(status)).encode() + b"\n" if status >= 400 else b""
    hdrs = list(headers or [])
    if body:
        hdrs.append(("content-type", "text/plain; charset=utf-8"))
    return Response(status, hdrs, body)
