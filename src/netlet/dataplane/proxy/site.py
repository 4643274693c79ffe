"""What the protocols share: the `Site` a listening socket serves and the `Handler`
that answers its requests.

A `Site` is fixed for the life of a listening socket; what it routes to is not:
the handler reads the current routing snapshot per request, so a reload never
touches a `Site`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from netlet.dataplane.proxy.batch import WriteBatch
from netlet.dataplane.proxy.deadlines import Deadlines
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.observe import AccessLog, Stats
from netlet.dataplane.proxy.streams import Request, Response

_PROTOCOLS = {"1.1": "HTTP/1.1", "2": "HTTP/2", "1.0": "HTTP/1.0"}


@dataclass(slots=True)
class ConnInfo:
    """One client connection: who, over what, and which TLS name it asked for."""

    site: Site
    client: str = ""
    client_port: int = 0
    sni: str | None = None
    tls: bool = False
    alpn: str | None = None


class Handler(Protocol):
    async def handle(self, request: Request, conn: ConnInfo) -> Response: ...


@dataclass(slots=True)
class Site:
    """One listening socket's settings: the listener it stands for and its helpers."""

    name: str
    port: int
    handler: Handler
    limits: Limits = field(default_factory=Limits)
    stats: Stats = field(default_factory=Stats)
    access_log: AccessLog | None = None
    scheme: str = "http"
    # HTTP/2 without TLS when the client starts with the preface (prior knowledge).
    h2c: bool = True
    # Extra fields written with every access-log line (gateway, listener).
    log_fields: dict[str, Any] = field(default_factory=dict)
    # Timeouts of this listener's connections (head, idle), ticking coarsely.
    deadlines: Deadlines = field(default_factory=Deadlines)
    # Open client connections (protocol objects with `shutdown()`), for draining.
    connections: set[Any] = field(default_factory=set)
    # Responses are written at the end of the event loop's pass (see batch.py).
    batch: WriteBatch = field(default_factory=WriteBatch)

    async def drain(self, timeout: float) -> None:
        """Ask every connection to finish what it is doing and close; abort the rest
        after `timeout` seconds."""
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        self.deadlines.close()

    def log_request(
        self,
        conn: ConnInfo,
        request: Request,
        status: int,
        sent: int,
        started: float,
        response: Response | None,
    ) -> None:
        protocol = _PROTOCOLS.get(request.version) or f"HTTP/{request.version}"
        self.stats.request_done(
            self.name,
            protocol,
            status,
            response.upstream_seconds if response is not None and response.upstream else None,
        )
        if self.access_log is None:
            return
        record: dict[str, Any] = {
            "time": round(time.time(), 6),
            "listener": self.name,
            "client": conn.client,
            "protocol": protocol,
            "method": request.method,
            "authority": request.authority,
            "path": request.path,
            "status": status,
            "bytes_sent": sent,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        if conn.sni:
            record["sni"] = conn.sni
        if response is not None:
            if response.route:
                record["route"] = response.route
            if response.upstream:
                record["upstream"] = response.upstream
                record["upstream_ms"] = round(response.upstream_seconds * 1000, 3)
        record.update(self.log_fields)
        self.access_log.write(record)
