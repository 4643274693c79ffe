"""In-test backends for the proxy's end-to-end tests, all on loopback.

- `EchoBackend`: HTTP/1.1 (h11) and h2c prior knowledge (h2) on one port. It
  answers with a JSON echo of what it received (method, path, host, headers,
  body, protocol, its name) and records every request, so tests can assert both
  what the backend got and what the client got. Paths drive behaviour:
  /status/NNN answers NNN, /sleep/MS waits first, /close drops the connection
  without answering, /stream/N sends N chunks, /grpc-trailers answers like gRPC
  (h2 trailers). With `ssl` it serves TLS and records each session's ALPN
  protocol and client certificate (`tls_sessions`).
- `LoopThread`: an event loop in a thread, so tests use ordinary blocking clients
  (httpx, grpcio, sockets) against servers running on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import h2.config
import h2.connection
import h2.events
import h11

T = TypeVar("T")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class LoopThread:
    def __init__(self, use_uvloop: bool = False) -> None:
        if use_uvloop:
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seen:
    method: str
    path: str
    host: str
    headers: list[tuple[str, str]]
    body: bytes
    protocol: str
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        return ",".join(values) if values else None


class EchoBackend:
    def __init__(self, name: str = "echo", status: int | None = None) -> None:
        self.name = name
        # When set, every request is answered with this status (a failing backend).
        self.status = status
        self.requests: list[Seen] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        # (ALPN protocol, client certificate as ssl.getpeercert() gives it) per session.
        self.tls_sessions: list[tuple[str | None, dict[str, Any] | None]] = []

    async def start(
        self, port: int = 0, host: str = "127.0.0.1", ssl: ssl.SSLContext | None = None
    ) -> EchoBackend:
        self.server = await asyncio.start_server(self._conn, host, port, ssl=ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.server.wait_closed()

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def reply(self, seen: Seen) -> tuple[int, list[tuple[str, str]], bytes]:
        status = self.status or 200
        parts = seen.path.split("?")[0].split("/")
        if len(parts) >= 3 and parts[1] == "status":
            status = int(parts[2])
        body = json.dumps(
            {
                "backend": self.name,
                "method": seen.method,
                "path": seen.path,
                "host": seen.host,
                "headers": seen.headers,
                "body": seen.body.decode("latin-1"),
                "protocol": seen.protocol,
            }
        ).encode()
        return status, [("content-type", "application/json"), ("x-backend", self.name)], body

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls_sessions.append(
                (ssl_object.selected_alpn_protocol(), writer.get_extra_info("peercert"))
            )
        try:
            first = await reader.read(65536)
            if first.startswith(H2_PREFACE[: len(first)]) and first[:3] == b"PRI":
                await self._h2(first, reader, writer)
            else:
                await self._h1(first, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, h11.RemoteProtocolError):
            pass
        except asyncio.CancelledError:
            pass  # the backend is stopping
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _h1(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(first)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    return
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                continue
            headers = [(n.decode().lower(), v.decode()) for n, v in event.headers]
            host = next((v for n, v in headers if n == "host"), "")
            body = b""
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                    continue
                if isinstance(part, h11.Data):
                    body += part.data
                elif isinstance(part, h11.EndOfMessage):
                    break
            seen = Seen(
                event.method.decode(), event.target.decode(), host, headers, body, "HTTP/1.1"
            )
            self.requests.append(seen)
            if await self._special(seen, writer):
                return
            if seen.header("upgrade"):
                # Not a WebSocket server: answer normally.
                pass
            status, rheaders, payload = self.reply(seen)
            if seen.path.startswith("/stream/"):
                count = int(seen.path.split("/")[2])
                writer.write(
                    conn.send(h11.Response(status_code=200, headers=rheaders))  # type: ignore[arg-type]
                )
                for i in range(count):
                    writer.write(conn.send(h11.Data(data=f"chunk{i};".encode())))  # type: ignore[arg-type]
                    await writer.drain()
                writer.write(conn.send(h11.EndOfMessage()))  # type: ignore[arg-type]
            else:
                rheaders.append(("content-length", str(len(payload))))
                writer.write(conn.send(h11.Response(status_code=status, headers=rheaders)))  # type: ignore[arg-type]
                if seen.method != "HEAD":
                    writer.write(conn.send(h11.Data(data=payload)))  # type: ignore[arg-type]
                writer.write(conn.send(h11.EndOfMessage()))  # type: ignore[arg-type]
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _special(self, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        path = seen.path
        if path.startswith("/sleep/"):
            await asyncio.sleep(int(path.split("/")[2].split("?")[0]) / 1000)
        if path.startswith("/close"):
            writer.transport.abort()
            return True
        return False

    async def _h2(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="latin-1")
        )
        conn.initiate_connection()
        streams: dict[int, dict[str, Any]] = {}
        data = first
        tasks: set[asyncio.Task[None]] = set()
        while True:
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = {
                        "headers": event.headers,
                        "body": b"",
                        "trailers": [],
                    }
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id]["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    streams[event.stream_id]["trailers"] = list(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    st = streams.pop(event.stream_id)
                    task = asyncio.get_running_loop().create_task(
                        self._h2_reply(conn, writer, event.stream_id, st)
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            writer.write(conn.data_to_send())
            await writer.drain()
            data = await reader.read(65536)
            if not data:
                return

    async def _h2_reply(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        stream_id: int,
        st: dict[str, Any],
    ) -> None:
        pseudo = dict(st["headers"])
        headers = [(n, v) for n, v in st["headers"] if not n.startswith(":")]
        seen = Seen(
            pseudo[":method"],
            pseudo[":path"],
            pseudo.get(":authority", ""),
            headers,
            st["body"],
            "HTTP/2",
            trailers=st["trailers"],
        )
        self.requests.append(seen)
        if seen.path.startswith("/sleep/"):
            await asyncio.sleep(int(seen.path.split("/")[2]) / 1000)
        status, rheaders, payload = self.reply(seen)
        conn.send_headers(stream_id, [(":status", str(status)), *rheaders])
        while payload:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                writer.write(conn.data_to_send())
                await asyncio.sleep(0.005)
                continue
            conn.send_data(stream_id, payload[:window])
            payload = payload[window:]
        if seen.path.startswith("/grpc-trailers"):
            conn.send_headers(
                stream_id, [("grpc-status", "0"), ("x-trailer", "yes")], end_stream=True
            )
        else:
            conn.end_stream(stream_id)
        writer.write(conn.data_to_send())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
