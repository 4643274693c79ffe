"""Fixtures for the proxy tests: an event loop thread, echo backends, a protocol-level
server with a test handler, raw socket helpers. Everything listens on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netlet.dataplane.proxy.http1 import H1Server
from netlet.dataplane.proxy.limits import Limits
from netlet.dataplane.proxy.site import ConnInfo, Site
from netlet.dataplane.proxy.streams import Request, Response
from tests.proxy.backends import EchoBackend, LoopThread


@pytest.fixture(
    scope="module",
    params=[pytest.param(False, id="asyncio loop"), pytest.param(True, id="uvloop")],
)
def loop_thread(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    # Every end-to-end test runs on both event loops: uvloop's transports are not
    # asyncio's classes, and the proxy uses uvloop when it is installed.
    thread = LoopThread(use_uvloop=request.param)
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def echo(loop_thread: LoopThread) -> Iterator[EchoBackend]:
    backend = loop_thread.run(EchoBackend("echo").start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


class SelfEcho:
    """A Handler that answers with what the proxy parsed (no backend involved)."""

    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def handle(self, request: Request, conn: ConnInfo) -> Response:
        self.seen.append(request)
        body = b""
        if request.body is not None:
            body = await request.body.read_all(10 * 1024 * 1024)
        if request.path.startswith("/sleep/"):
            await asyncio.sleep(int(request.path.split("?")[0].split("/")[2]) / 1000)
        payload = {
            "method": request.method,
            "path": request.path,
            "authority": request.authority,
            "headers": request.headers,
            "body": body.decode("latin-1"),
            "version": request.version,
            "trailers": request.body.trailers if request.body is not None else None,
        }
        return Response(200, [("content-type", "application/json")], json.dumps(payload).encode())


class ProtocolServer:
    """H1Server (and H2 through it) on a free port with a given handler and limits."""

    def __init__(self, loop_thread: LoopThread, handler: Any, limits: Limits) -> None:
        self.loop_thread = loop_thread
        self.site = Site("test", 80, handler, limits)
        self.server: asyncio.Server | None = None
        self.port = 0

    def start(self) -> ProtocolServer:
        async def go() -> asyncio.Server:
            loop = asyncio.get_running_loop()
            return await loop.create_server(lambda: H1Server(self.site), "127.0.0.1", 0)

        self.server = self.loop_thread.run(go())
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def go() -> None:
            assert self.server is not None
            self.server.close()
            await self.site.drain(0.5)

        self.loop_thread.run(go())


@pytest.fixture
def make_server(loop_thread: LoopThread) -> Iterator[Any]:
    servers: list[ProtocolServer] = []

    def make(handler: Any = None, limits: Limits | None = None) -> ProtocolServer:
        server = ProtocolServer(loop_thread, handler or SelfEcho(), limits or Limits()).start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def raw_exchange(
    port: int, data: bytes, *, timeout: float = 5.0, close_after: bool = False
) -> bytes:
    """Send bytes on a fresh connection and read until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if close_after:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def read_responses(
    sock: socket.socket, count: int, timeout: float = 5.0
) -> list[tuple[int, bytes]]:
    """Read `count` Content-Length-framed HTTP/1.1 responses from `sock`."""
    sock.settimeout(timeout)
    buffer = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        out.append((status, rest[:length]))
        buffer = rest[length:]
    return out
