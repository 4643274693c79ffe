"""Layer-4 forwarding: TCPRoute, TLSRoute passthrough and UDPRoute.

A TCP connection is joined to one backend endpoint chosen when it opens. A
passthrough connection has had its ClientHello peeked at (`server.TlsPort`,
never decrypted) to route on the SNI; the bytes go to the backend as they came.
UDP keeps one session per client address and port: the first datagram picks a
backend, later ones (and the replies) follow it until the session has been idle
for `Limits.udp_session_timeout`; sessions are bounded by `Limits.max_udp_sessions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from netlet.dataplane.proxy import pipe
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import AccessLog, Stats
from netlet.dataplane.proxy.streams import ProxyError

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]


class L4Router(Protocol):
    def pick(self, sni: str | None) -> Endpoint:
        """The endpoint for a new connection/session; ProxyError when there is none."""
        ...


@dataclass(slots=True)
class L4Site:
    name: str
    port: int
    router: L4Router
    limits: Limits = field(default_factory=Limits)
    stats: Stats = field(default_factory=Stats)
    access_log: AccessLog | None = None
    log_fields: dict[str, Any] = field(default_factory=dict)

    def log(self, kind: str, client: str, **fields: Any) -> None:
        if self.access_log is not None:
            record = {"time": round(time.time(), 6), "listener": self.name, "protocol": kind}
            record["client"] = client
            record.update(fields)
            record.update(self.log_fields)
            self.access_log.write(record)


async def _connect(endpoint: Endpoint, timeout: float) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, _ = await loop.create_connection(asyncio.Protocol, *endpoint)
    transport.pause_reading()
    return transport


class TcpEntry(asyncio.Protocol):
    """A client connection on a TCP or TLS listener, joined to one backend endpoint.

    For TLS passthrough the ClientHello was only peeked at (it is still unread in
    the socket), so the backend receives the client's bytes exactly as sent; `sni`
    is what the peek found."""

    def __init__(self, site: L4Site, sni: str | None = None, kind: str = "TCP") -> None:
        self.site = site
        self.sni = sni
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.piped = False
        self.early = b""
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.site.stats.connection_opened(self.site.name)
        self.transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(self._forward())

    def data_received(self, data: bytes) -> None:
        # Reading is paused, but a loop may deliver what it had already read
        # (uvloop does): keep it for the backend.
        self.early += data

    def eof_received(self) -> bool:
        # The client half-closed before the pipe exists: pass it on once joined.
        self.early_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if not self.piped:
            self.site.stats.connection_closed(self.site.name)

    def _close(self, why: str) -> None:
        self.site.log(self.kind, self.client, sni=self.sni, error=why)
        if self.transport is not None:
            self.transport.close()

    async def _forward(self) -> None:
        site = self.site
        client = self.transport
        assert client is not None
        sni = self.sni
        try:
            endpoint = site.router.pick(sni)
        except ProxyError as exc:
            site.stats.bump("l4_no_route")
            self._close(str(exc))
            return
        try:
            upstream = await _connect(endpoint, site.limits.connect_timeout)
        except (OSError, TimeoutError) as exc:
            site.stats.bump("l4_connect_error")
            self._close(f"connect {endpoint[0]}:{endpoint[1]}: {exc or 'timeout'}")
            return
        started = self.started
        kind = self.kind

        def closed(a: pipe.PipeProtocol, b: pipe.PipeProtocol) -> None:
            site.stats.connection_closed(site.name)
            site.stats.bump("l4_bytes_from_clients", a.bytes_in)
            site.stats.bump("l4_bytes_to_clients", b.bytes_in)
            site.stats.request_done(site.name, kind, 0)
            site.log(
                kind,
                self.client,
                sni=sni,
                upstream=f"{endpoint[0]}:{endpoint[1]}",
                bytes_received=a.bytes_in,
                bytes_sent=b.bytes_in,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
            )

        self.piped = True
        client_side, _ = pipe.join(
            client,
            upstream,
            b_first=self.early,
            idle_timeout=site.limits.tcp_idle_timeout,
            on_close=closed,
        )
        if self.early_eof:
            client_side.eof_received()


class _UdpSession(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener, client: tuple[str, int]) -> None:
        self.listener = listener
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.last = time.monotonic()
        self.endpoint: Endpoint | None = None
        self.packets_in = 0
        self.packets_out = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop: not a subclass
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.last = time.monotonic()
        self.packets_out += 1
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        self.listener.site.stats.bump("udp_upstream_error")

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.packets_in += 1
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.pending) < 64:
            self.pending.append(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, site: L4Site) -> None:
        self.site = site
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UdpSession] = {}
        self.sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop: not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        client = (str(addr[0]), int(addr[1]))
        session = self.sessions.get(client)
        if session is None:
            session = self._open(client)
            if session is None:
                return
        session.send(data)

    def _open(self, client: tuple[str, int]) -> _UdpSession | None:
        site = self.site
        if len(self.sessions) >= site.limits.max_udp_sessions:
            site.stats.bump("udp_sessions_full")
            return None
        try:
            endpoint = site.router.pick(None)
        except ProxyError:
            site.stats.bump("l4_no_route")
            return None
        session = _UdpSession(self, client)
        session.endpoint = endpoint
        self.sessions[client] = session
        site.stats.connection_opened(site.name)
        loop = asyncio.get_running_loop()
        factory: Callable[[], _UdpSession] = lambda: session  # noqa: E731
        task = loop.create_task(loop.create_datagram_endpoint(factory, remote_addr=endpoint))

        def opened(done: asyncio.Task[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                site.stats.bump("udp_upstream_error")
                self._end(client)

        task.add_done_callback(opened)
        if self.sweeper is None:
            self.sweeper = loop.call_later(site.limits.udp_session_timeout / 2, self._sweep)
        return session

    def _end(self, client: tuple[str, int]) -> None:
        session = self.sessions.pop(client, None)
        if session is None:
            return
        session.close()
        site = self.site
        site.stats.connection_closed(site.name)
        site.stats.request_done(site.name, "UDP", 0)
        endpoint = session.endpoint or ("", 0)
        site.log(
            "UDP",
            client[0],
            upstream=f"{endpoint[0]}:{endpoint[1]}",
            datagrams_received=session.packets_in,
            datagrams_sent=session.packets_out,
        )

    def _sweep(self) -> None:
        self.sweeper = None
        deadline = time.monotonic() - self.site.limits.udp_session_timeout
        for client, session in list(self.sessions.items()):
            if session.last < deadline:
                self._end(client)
        if self.sessions:
            self.sweeper = asyncio.get_running_loop().call_later(
                self.site.limits.udp_session_timeout / 2, self._sweep
            )
