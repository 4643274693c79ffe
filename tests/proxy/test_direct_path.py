"""Requests served without a Task (the callback path of `Engine.begin`/`UpstreamPool
.start`): every way a backend can frame a response arrives whole at the client,
whatever its size, over a pooled connection.

Spec: RFC 9112 6 (message body length: Content-Length, chunked, or the end of the
connection), RFC 9110 9.3.2 (a HEAD response carries the Content-Length a GET
would have had), 15.3.5/15.4.5 (204 and 304 have no body); a response cut short
by the backend must not reach the client as if complete (Envoy's and nginx's
behaviour: the client connection is reset, or 502 before the head was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.backends import LoopThread
from tests.proxy.harness import http_gateway

# A response no request asked for (what a confused backend might send).
UNASKED = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"


def body_of(size: int) -> bytes:
    return bytes((i * 7) % 251 for i in range(size))


class ScriptedBackend:
    """An HTTP/1.1 server answering from the path: /cl/N, /chunked/N, /close/N, /head,
    /204, /die, /slow (answers after 1 s), /extra (a second, unasked response right
    behind the first), /later/N (an unasked response 0.1 s after the answer). Counts
    connections, and closed ones."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> ScriptedBackend:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
                if not await self._answer(method, target, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()

    async def _answer(self, method: str, target: str, writer: asyncio.StreamWriter) -> bool:
        parts = target.split("/")
        kind = parts[1]
        size = int(parts[2]) if len(parts) > 2 else 0
        data = body_of(size)
        if kind == "cl":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + data)
        elif kind == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            third = size // 3
            for piece in (data[:third], data[third : 2 * third], data[2 * third :]):
                if piece:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif kind == "close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + data)
            await writer.drain()
            return False
        elif kind == "head":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif kind == "204":
            writer.write(b"HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n")
        elif kind == "die":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
            await writer.drain()
            writer.transport.abort()
            return False
        elif kind == "slow":
            await asyncio.sleep(1.0)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        elif kind == "extra":
            writer.write(UNASKED.replace(b"stale", b"a").replace(b": 5", b": 1") + UNASKED)
        elif kind == "later":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + data)
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(UNASKED)
        await writer.drain()
        return True


@pytest.fixture
def scripted(loop_thread: LoopThread) -> Iterator[ScriptedBackend]:
    backend = loop_thread.run(ScriptedBackend().start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


@pytest.fixture
def proxy_port(loop_thread: LoopThread, tmp_path, scripted: ScriptedBackend) -> Iterator[int]:
    route = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: r, namespace: default}\n"
        "spec:\n  parentRefs: [{name: gw}]\n  rules:\n"
        "  - backendRefs: [{name: svc, port: 80}]\n"
    )
    with http_gateway(loop_thread, tmp_path, scripted.port, route) as port:
        yield port


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/cl/10", id="a small Content-Length body"),
        pytest.param("/cl/70000", id="a Content-Length body past the collect limit streams"),
        pytest.param("/cl/1000000", id="a 1 MB Content-Length body"),
        pytest.param("/chunked/20", id="a small chunked body"),
        pytest.param("/chunked/300000", id="a large chunked body"),
        pytest.param("/close/5000", id="a body ended by the backend closing"),
        pytest.param("/close/200000", id="a large body ended by the backend closing"),
    ],
)
def test_every_response_framing_arrives_whole(proxy_port, scripted, path):
    size = int(path.split("/")[2])
    with httpx.Client(timeout=10) as client:
        first = client.get(f"http://127.0.0.1:{proxy_port}{path}")
        second = client.get(f"http://127.0.0.1:{proxy_port}{path}")
    for response in (first, second):
        assert response.status_code == 200
        assert response.content == body_of(size)
    reusable = not path.startswith("/close/")
    # Keep-alive backends serve both requests on one pooled connection.
    assert scripted.connections == (1 if reusable else 2)


def test_head_keeps_the_content_length_and_204_has_no_body(proxy_port):
    with httpx.Client(timeout=10) as client:
        head = client.head(f"http://127.0.0.1:{proxy_port}/head")
        empty = client.get(f"http://127.0.0.1:{proxy_port}/204")
        after = client.get(f"http://127.0.0.1:{proxy_port}/cl/3")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "1234", b"")
    assert (empty.status_code, empty.content, empty.headers["x-empty"]) == (204, b"", "yes")
    assert "content-length" not in empty.headers
    assert after.content == body_of(3)


def test_a_body_cut_short_by_the_backend_never_looks_complete(proxy_port):
    with httpx.Client(timeout=10) as client:
        try:
            response = client.get(f"http://127.0.0.1:{proxy_port}/die")
        except httpx.HTTPError:
            pass  # the connection was reset: fine
        else:
            # Answered before any byte went out: the gateway's error, not a short 200.
            assert response.status_code == 502
        assert client.get(f"http://127.0.0.1:{proxy_port}/cl/5").content == body_of(5)


def test_a_request_the_client_abandons_closes_its_backend_connection(proxy_port, scripted):
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while scripted.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The backend saw its connection go before it answered (the exchange was dropped).
    assert scripted.closed == 1
    with httpx.Client(timeout=10) as client:
        assert client.get(f"http://127.0.0.1:{proxy_port}/cl/4").content == body_of(4)
    assert scripted.connections == 2


def test_pipelined_requests_are_answered_in_order(proxy_port):
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
        sock.sendall(b"".join(b"GET /cl/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (3, 70000, 5)))
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(body_of(5)):
            with contextlib.suppress(TimeoutError):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            if time.monotonic() > deadline:
                break
    bodies = []
    rest = data
    for _ in range(3):
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        bodies.append(rest[:length])
        rest = rest[length:]
    assert bodies == [body_of(3), body_of(70000), body_of(5)]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/extra", id="a second response right behind the answer"),
        pytest.param("/later/3", id="a response on the idle pooled connection"),
    ],
)
def test_a_response_nobody_asked_for_retires_the_backend_connection(proxy_port, scripted, path):
    # RFC 9112 9.3: responses match requests in order; bytes past the answer would be
    # taken for the answer to the next request on that connection, so it is not reused.
    with httpx.Client(timeout=10) as client:
        first = client.get(f"http://127.0.0.1:{proxy_port}{path}")
        time.sleep(0.3)
        second = client.get(f"http://127.0.0.1:{proxy_port}/cl/4")
    assert first.status_code == 200
    assert first.content == (b"a" if path == "/extra" else body_of(3))
    assert (second.status_code, second.content) == (200, body_of(4))
    assert scripted.connections == 2


TIMEOUT_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{headers: [{name: x-short, value: "yes"}]}]
    timeouts: {backendRequest: 300ms}
    backendRefs: [{name: svc, port: 80}]
  - timeouts: {backendRequest: 0s}
    backendRefs: [{name: svc, port: 80}]
"""


def test_a_finished_exchange_deadline_never_times_out_the_next_on_that_connection(
    loop_thread: LoopThread, tmp_path, scripted: ScriptedBackend
):
    # GEP-1742: backendRequest bounds each try; 0s disables it. The 300 ms deadline of a
    # fast request must not end the slow request that reuses its pooled connection.
    with (
        http_gateway(loop_thread, tmp_path, scripted.port, TIMEOUT_ROUTE) as port,
        httpx.Client(timeout=10) as client,
    ):
        client.get(f"http://127.0.0.1:{port}/cl/1")  # a pooled connection from now on
        fast = client.get(f"http://127.0.0.1:{port}/cl/3", headers={"x-short": "yes"})
        slow = client.get(f"http://127.0.0.1:{port}/slow")
    assert (fast.status_code, fast.content) == (200, body_of(3))
    assert (slow.status_code, slow.content) == (200, b"slow")
    assert scripted.connections == 1, "both went over one pooled connection"
