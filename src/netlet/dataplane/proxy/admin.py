"""The admin endpoint: counters and configuration over HTTP, for people and scrapers.

    GET /healthz   "ok"
    GET /stats     counters as JSON (all worker processes added up)
    GET /metrics   the same in the Prometheus text format
    GET /config    generation, served Gateways, the bind map (listener port ->
                   bound address), problems, the last reload's outcome

It is an ordinary `Handler` behind `http1.H1Server`, on its own socket.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from netlet.dataplane.proxy.observe import prometheus
from netlet.dataplane.proxy.site import ConnInfo
from netlet.dataplane.proxy.streams import Request, Response, local_response

StatsSource = Callable[[], Awaitable[dict[str, Any]]]
ConfigSource = Callable[[], dict[str, Any]]


class AdminHandler:
    def __init__(self, stats: StatsSource, config: ConfigSource) -> None:
        self.stats = stats
        self.config = config

    async def handle(self, request: Request, conn: ConnInfo) -> Response:
        path = request.path.split("?", 1)[0]
        if request.method not in ("GET", "HEAD"):
            return local_response(405, "admin endpoint is read-only")
        if path == "/healthz":
            return Response(200, [("content-type", "text/plain")], b"ok\n")
        if path == "/stats":
            return _json(await self.stats())
        if path == "/metrics":
            text = prometheus(await self.stats())
            return Response(200, [("content-type", "text/plain; version=0.0.4")], text.encode())
        if path == "/config":
            return _json(self.config())
        return local_response(404, "try /healthz, /stats, /metrics or /config")


def _json(data: dict[str, Any]) -> Response:
    body = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
    return Response(200, [("content-type", "application/json")], body)
