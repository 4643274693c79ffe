"""TLS termination with certificates from Secrets chosen by SNI (HTTPS listeners),
TLS passthrough routed on the SNI without decrypting (TLSRoute), TCPRoute and
UDPRoute forwarding with weighted backends - real sockets, trustme certificates.

Spec: Gateway API apis/v1 gateway_types.go - Listener.Hostname ("for HTTPS and
TLS protocol listeners ... matched against the SNI"), GatewayTLSConfig Mode
Terminate/Passthrough ("Passthrough: the TLS session is not terminated by the
Gateway"), certificateRefs (kubernetes.io/tls Secrets); GEP-3567 (HTTPS listener
isolation: a Host another listener matches better than the SNI's gets 421);
tlsroute_types.go (TLSRoute hostnames match the SNI), tcproute_types.go and
udproute_types.go (BackendRefs weights).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import trustme

from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import Proxy, gateway, manifests, service, tls_secret


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


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


@pytest.fixture
def echo_a(loop_thread: LoopThread) -> Iterator[EchoBackend]:
    backend = loop_thread.run(EchoBackend("a").start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


def cert_secret(ca: trustme.CA, name: str, *hosts: str) -> str:
    cert = ca.issue_cert(*hosts)
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    return tls_secret(name, chain, cert.private_key_pem.bytes())


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def https_route(hostname: str, backend: str, name: str, section: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
  hostnames: ["{hostname}"]
  rules:
  - backendRefs: [{{name: {backend}, port: 80}}]
"""


def peer_names(sock: ssl.SSLSocket) -> list[str]:
    cert = sock.getpeercert()
    assert cert is not None
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


def tls_connect(
    port: int, sni: str, ca: trustme.CA, alpn: list[str] | None = None
) -> ssl.SSLSocket:
    ctx = client_context(ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=sni)


HTTPS_CASES = [
    pytest.param(
        "a.example.com", ["a.example.com"], id="an exact listener hostname selects its certificate"
    ),
    pytest.param(
        "x.b.example.com",
        ["*.b.example.com"],
        id="a wildcard listener hostname selects its certificate",
    ),
]


@pytest.mark.parametrize(("sni", "names"), HTTPS_CASES)
@pytest.mark.parametrize(
    "http2", [pytest.param(False, id="HTTP/1.1"), pytest.param(True, id="HTTP/2 by ALPN")]
)
def test_https_listeners_terminate_tls_with_the_certificate_the_sni_selects(
    serve, ca, echo_a, sni, names, http2
):
    port = free_port()
    serve(
        manifests(
            cert_secret(ca, "cert-a", "a.example.com"),
            cert_secret(ca, "cert-b", "*.b.example.com"),
            gateway(
                f"""\
- name: a
  port: {port}
  protocol: HTTPS
  hostname: a.example.com
  tls: {{certificateRefs: [{{name: cert-a}}]}}
- name: b
  port: {port}
  protocol: HTTPS
  hostname: "*.b.example.com"
  tls: {{certificateRefs: [{{name: cert-b}}]}}
"""
            ),
            service("svc-a", [echo_a.port]),
            https_route("a.example.com", "svc-a", "ra", "a"),
            https_route("*.b.example.com", "svc-a", "rb", "b"),
        )
    )
    with tls_connect(port, sni, ca) as sock:
        assert peer_names(sock) == names
    with httpx.Client(verify=client_context(ca), http2=http2, http1=not http2, timeout=10) as c:
        response = c.get(
            f"https://127.0.0.1:{port}/secure?x=1",
            headers={"host": sni},
            extensions={"sni_hostname": sni},
        )
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    seen = echo_a.requests[-1]
    assert (seen.path, seen.host) == ("/secure?x=1", sni)
    assert seen.header("x-forwarded-proto") == "https"


def test_a_host_that_another_https_listener_serves_better_than_the_sni_gets_421(serve, ca, echo_a):
    port = free_port()
    serve(
        manifests(
            cert_secret(ca, "cert-a", "a.example.com"),
            cert_secret(ca, "cert-b", "*.b.example.com"),
            gateway(
                f"""\
- {{name: a, port: {port}, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: cert-a}}]}}}}
- {{name: b, port: {port}, protocol: HTTPS, hostname: "*.b.example.com", tls: {{certificateRefs: [{{name: cert-b}}]}}}}
"""
            ),
            service("svc-a", [echo_a.port]),
            https_route("a.example.com", "svc-a", "ra", "a"),
            https_route("*.b.example.com", "svc-a", "rb", "b"),
        )
    )
    with httpx.Client(verify=client_context(ca), timeout=10) as c:
        response = c.get(
            f"https://127.0.0.1:{port}/",
            headers={"host": "x.b.example.com"},
            extensions={"sni_hostname": "a.example.com"},
        )
    assert response.status_code == 421
    assert not echo_a.requests


class TlsEcho:
    """A TLS server (the passthrough backend) answering 'NAME:' + what it read."""

    def __init__(self, ca: trustme.CA, hostname: str, name: str) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(hostname).configure_cert(self.ctx)
        self.name = name
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TlsEcho:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            data = await reader.read(1024)
            writer.write(self.name.encode() + b":" + data)
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def test_passthrough_routes_on_sni_without_decrypting_beside_an_https_listener(
    serve, ca, echo_a, loop_thread
):
    backend = loop_thread.run(TlsEcho(ca, "pass.example.com", "tls-backend").start())
    try:
        port = free_port()
        serve(
            manifests(
                cert_secret(ca, "cert-a", "a.example.com"),
                gateway(
                    f"""\
- {{name: a, port: {port}, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: cert-a}}]}}}}
- {{name: pass, port: {port}, protocol: TLS, hostname: "*.pass.example.com", tls: {{mode: Passthrough}}}}
- {{name: pass-exact, port: {port}, protocol: TLS, hostname: pass.example.com, tls: {{mode: Passthrough}}}}
"""
                ),
                service("svc-a", [echo_a.port]),
                service("svc-tls", [backend.port], port=443),
                https_route("a.example.com", "svc-a", "ra", "a"),
                """\
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: pass, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: pass-exact}]
  hostnames: [pass.example.com]
  rules:
  - backendRefs: [{name: svc-tls, port: 443}]
""",
            )
        )
        with tls_connect(port, "pass.example.com", ca) as sock:
            # The certificate is the backend's: the proxy has none for this name.
            assert peer_names(sock) == ["pass.example.com"]
            sock.sendall(b"hello through")
            assert sock.recv(1024) == b"tls-backend:hello through"
        with httpx.Client(verify=client_context(ca), timeout=10) as c:
            terminated = c.get(
                f"https://127.0.0.1:{port}/",
                headers={"host": "a.example.com"},
                extensions={"sni_hostname": "a.example.com"},
            )
        assert terminated.headers["x-backend"] == "a"
        # No TLSRoute for this SNI: the connection is refused (closed).
        with (
            pytest.raises((ssl.SSLError, ConnectionError, OSError)),
            tls_connect(port, "other.pass.example.com", ca) as sock,
        ):
            sock.sendall(b"x")
            if not sock.recv(10):
                raise ConnectionError("closed")
    finally:
        loop_thread.run(backend.stop())


class TcpEcho:
    def __init__(self, name: str) -> None:
        self.name = name
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpEcho:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(self.name.encode() + b":" + data)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> UdpEcho:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name.encode() + b":" + data, addr)

    async def stop(self) -> None:
        assert self.transport is not None
        self.transport.close()


def l4_route(kind: str, backends: str) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: {kind}
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: {backends}
"""


def test_tcp_routes_forward_connections_by_weight(serve, loop_thread):
    one = loop_thread.run(TcpEcho("one").start())
    two = loop_thread.run(TcpEcho("two").start())
    try:
        port = free_port()
        proxy = serve(
            manifests(
                gateway(f"- {{name: tcp, port: {port}, protocol: TCP}}"),
                service("s1", [one.port]),
                service("s2", [two.port]),
                l4_route(
                    "TCPRoute", "[{name: s1, port: 80, weight: 1}, {name: s2, port: 80, weight: 1}]"
                ),
            )
        )
        got: Counter[str] = Counter()
        big = b"x" * 300_000
        for i in range(60):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                payload = big if i == 0 else b"ping"
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                name, _, rest = data.partition(b":")
                got[name.decode()] += 1
                assert rest.replace(b"one:", b"").replace(b"two:", b"") == payload
        assert set(got) == {"one", "two"}
        assert 10 <= got["one"] <= 50
        for _ in range(100):
            if proxy.stats["requests"].get(f"default/gw:{port} TCP") == 60:
                break
            loop_thread.run(asyncio.sleep(0.02))
        assert proxy.stats["requests"][f"default/gw:{port} TCP"] == 60
        assert proxy.stats["connections_active"][f"default/gw:{port}"] == 0
    finally:
        loop_thread.run(one.stop())
        loop_thread.run(two.stop())


def test_udp_routes_keep_a_client_on_one_backend_and_carry_replies(serve, loop_thread):
    one = loop_thread.run(UdpEcho("one").start())
    try:
        port = free_port(socket.SOCK_DGRAM)
        serve(
            manifests(
                gateway(f"- {{name: udp, port: {port}, protocol: UDP}}"),
                service("s1", [one.port], protocol="UDP"),
                l4_route("UDPRoute", "[{name: s1, port: 80}]"),
            )
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            replies = []
            for i in range(5):
                sock.sendto(b"dgram%d" % i, ("127.0.0.1", port))
                replies.append(sock.recvfrom(65536)[0])
        assert replies == [b"one:dgram%d" % i for i in range(5)]
    finally:
        loop_thread.run(one.stop())
