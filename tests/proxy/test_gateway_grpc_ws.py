"""gRPC through GRPCRoutes with a real grpcio client and server (h2c and TLS), and
WebSocket upgrades through HTTPRoutes with a real websockets client and server.

Spec: Gateway API apis/v1 grpcroute_types.go - GRPCMethodMatch (service/method),
GRPCRouteFilter (RequestHeaderModifier), "implementations ... MUST ... use HTTP/2
... to backends"; gRPC's doc/PROTOCOL-HTTP2.md (trailers carry grpc-status) and
doc/http-grpc-status-mapping.md (an unrouted call is UNIMPLEMENTED); RFC 6455 4
(the opening handshake) and Gateway API GEP-1911 (backend protocol: websocket).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import trustme
import websockets.asyncio.server
import websockets.sync.client

from tests.proxy.backends import LoopThread, free_port
from tests.proxy.harness import Proxy, gateway, manifests, service, tls_secret


class GrpcBackend:
    """A grpcio server with generic handlers (no generated code): echo.Echo/Say
    (unary) and echo.Echo/Count (server streaming), recording the metadata seen."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.metadata: list[dict[str, str]] = []
        self.server = grpc.server(ThreadPoolExecutor(4))
        handlers = {
            "Say": grpc.unary_unary_rpc_method_handler(self._say),
            "Count": grpc.unary_stream_rpc_method_handler(self._count),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("echo.Echo", handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.metadata.append(dict(context.invocation_metadata()))
        context.set_trailing_metadata((("x-served-by", self.name),))
        return self.name.encode() + b":" + request

    def _count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.metadata.append(dict(context.invocation_metadata()))
        for i in range(int(request)):
            yield b"%d" % i

    def __enter__(self) -> GrpcBackend:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0).wait(5)


@pytest.fixture
def serve(loop_thread: LoopThread, tmp_path) -> Iterator:
    proxies: list[Proxy] = []

    def start(text: str, **options) -> Proxy:
        proxy = Proxy(loop_thread, tmp_path, **options)
        proxy.write(text)
        proxy.start()
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.stop()


GRPC_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}, headers: [{name: x-tenant, value: blue}]}]
    backendRefs: [{name: grpc-blue, port: 50051}]
  - matches: [{method: {service: echo.Echo}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-added, value: by-gateway}]}
    backendRefs: [{name: grpc-green, port: 50051}]
"""


def call(channel: grpc.Channel, method: str, payload: bytes, metadata=()):
    return channel.unary_unary(method)(payload, metadata=metadata, timeout=10, wait_for_ready=False)


def test_grpc_calls_are_routed_by_service_method_and_headers_with_trailers_passed(serve):
    with GrpcBackend("blue") as blue, GrpcBackend("green") as green:
        port = free_port()
        serve(
            manifests(
                gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
                service("grpc-blue", [blue.port], port=50051),
                service("grpc-green", [green.port], port=50051),
                GRPC_ROUTE,
            )
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            say = channel.unary_unary("/echo.Echo/Say")
            reply, info = say.with_call(b"hi", metadata=(("x-tenant", "blue"),), timeout=10)
            assert reply == b"blue:hi"
            assert ("x-served-by", "blue") in info.trailing_metadata()
            assert say(b"there", timeout=10) == b"green:there"
            assert green.metadata[-1]["x-added"] == "by-gateway"
            count = channel.unary_stream("/echo.Echo/Count")
            assert list(count(b"5", timeout=10)) == [b"0", b"1", b"2", b"3", b"4"]
            with pytest.raises(grpc.RpcError) as missing:
                channel.unary_unary("/other.Service/Nope")(b"", timeout=10)
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_over_tls_with_alpn_h2(serve):
    ca = trustme.CA()
    cert = ca.issue_cert("grpc.example.com")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    with GrpcBackend("blue") as blue, GrpcBackend("green") as green:
        port = free_port()
        serve(
            manifests(
                tls_secret("grpc-cert", chain, cert.private_key_pem.bytes()),
                gateway(
                    f"- {{name: https, port: {port}, protocol: HTTPS, hostname: grpc.example.com, "
                    "tls: {certificateRefs: [{name: grpc-cert}]}}"
                ),
                service("grpc-blue", [blue.port], port=50051),
                service("grpc-green", [green.port], port=50051),
                GRPC_ROUTE,
            )
        )
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        options = (("grpc.ssl_target_name_override", "grpc.example.com"),)
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
            assert call(channel, "/echo.Echo/Say", b"secure") == b"green:secure"


def test_an_invalid_grpc_backend_answers_unavailable(serve):
    port = free_port()
    serve(
        manifests(
            gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
            """\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: missing, port: 50051}]
""",
        )
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as err:
        call(channel, "/echo.Echo/Say", b"x")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


class WsBackend:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.hosts: list[str] = []
        self.users: list[str] = []
        self.server: websockets.asyncio.server.Server | None = None
        self.port = 0

    async def _handler(self, ws: websockets.asyncio.server.ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        self.hosts.append(ws.request.headers.get("host", "") if ws.request else "")
        self.users.append(ws.request.headers.get("x-user", "") if ws.request else "")
        async for message in ws:
            await ws.send(f"echo:{message}")

    async def start(self) -> WsBackend:
        self.server = await websockets.asyncio.server.serve(self._handler, "127.0.0.1", 0)
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def test_websocket_upgrades_become_a_two_way_tunnel(serve, loop_thread):
    backend = loop_thread.run(WsBackend().start())
    try:
        port = free_port()
        serve(
            manifests(
                gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
                service("ws", [backend.port], app_protocol="kubernetes.io/ws"),
                """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ws, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /chat}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /ws}}}]
    backendRefs: [{name: ws, port: 80}]
""",
            )
        )
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{port}/chat/room1", additional_headers={"x-user": "u1"}, open_timeout=5
        ) as ws:
            for text in ("one", "two", "x" * 100_000):
                ws.send(text)
                assert ws.recv(timeout=5) == f"echo:{text}"
        assert backend.paths == ["/ws/room1"]
        assert backend.hosts == [f"127.0.0.1:{port}"]
        assert backend.users == ["u1"]
    finally:
        loop_thread.run(backend.stop())
