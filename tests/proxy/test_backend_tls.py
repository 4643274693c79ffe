"""TLS from the proxy to backends (BackendTLSPolicy) end to end, with trustme
certificates: backends serving TLS, the proxy verifying them as the policy says.

Spec: Gateway API apis/v1 backendtlspolicy_types.go, BackendTLSPolicyValidation:
- Hostname "MUST be used as the SNI to connect to the backend" and "MUST be used
  for authentication and MUST match the certificate served by the matching
  backend, unless SubjectAltNames is specified"; with SubjectAltNames it "MUST NOT
  be used for authentication";
- SubjectAltNames: "the certificate served from the backend MUST have at least one
  Subject Alternate Name matching one of the specified SubjectAltNames" (Hostname:
  a DNS name; URI: a full URI such as a SPIFFE ID);
- CACertificateRefs: a ConfigMap with `ca.crt` (Core), other kinds
  implementation-specific (netlet: Secrets); "Connections using an invalid
  CACertificateRef MUST fail, and the client MUST receive an HTTP 5xx error
  response"; WellKnownCACertificates System: the system trust store.
A certificate that does not verify leaves no usable connection: 503, as for any
other backend that cannot be connected to (Envoy answers the same).
apis/v1 gateway_types.go GatewayBackendTLS.ClientCertificateRef: "the certificate
the Gateway presents to backends" that ask for one.
"""

from __future__ import annotations

import base64
import datetime
import os
import socket
import ssl
import tempfile
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import Proxy, gateway, manifests, service, tls_secret

SPIFFE = "spiffe://cluster.local/ns/default/sa/backend"


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


class TlsBackend:
    """An EchoBackend serving TLS with one certificate; records the SNI it was asked for."""

    def __init__(self, loop_thread: LoopThread, chain: bytes, key: bytes, client_ca=None) -> None:
        self.loop_thread = loop_thread
        self.snis: list[str | None] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _load_chain(ctx, chain, key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=client_ca.cert_pem.bytes().decode())
        ctx.sni_callback = lambda _sock, name, _ctx: self.snis.append(name)
        self.echo = loop_thread.run(EchoBackend("tls").start(ssl=ctx))

    @property
    def port(self) -> int:
        return self.echo.port

    def stop(self) -> None:
        self.loop_thread.run(self.echo.stop())


def _load_chain(ctx: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cert_path, "wb") as fh:
            fh.write(chain)
        with open(key_path, "wb") as fh:
            fh.write(key)
        ctx.load_cert_chain(cert_path, key_path)


@pytest.fixture
def tls_backends(loop_thread: LoopThread) -> Iterator:
    made: list[TlsBackend] = []

    def make(chain: bytes, key: bytes, client_ca=None) -> TlsBackend:
        backend = TlsBackend(loop_thread, chain, key, client_ca)
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            backend.stop()


def leaf(ca: trustme.CA, *names: str) -> tuple[bytes, bytes]:
    cert = ca.issue_cert(*names)
    return b"".join(b.bytes() for b in cert.cert_chain_pems), cert.private_key_pem.bytes()


def leaf_with_uri(ca: trustme.CA, dns: str, uri: str) -> tuple[bytes, bytes]:
    """A leaf carrying a URI SAN (trustme issues DNS/IP/email names only), signed with
    the trustme CA's key."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spiffe leaf")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns), x509.UniformResourceIdentifier(uri)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ca_configmap(name: str, ca: trustme.CA) -> str:
    pem = textwrap.indent(ca.cert_pem.bytes().decode(), "    ")
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n"
        f"data:\n  ca.crt: |\n{pem}"
    )


def ca_secret(name: str, ca: trustme.CA) -> str:
    data = base64.b64encode(ca.cert_pem.bytes()).decode()
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n"
        f"data:\n  ca.crt: {data}\n"
    )


def policy(validation: str, service_name: str = "svc") -> str:
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n"
        "metadata: {name: tls, namespace: default}\n"
        f'spec:\n  targetRefs: [{{group: "", kind: Service, name: {service_name}}}]\n'
        f"  validation: {validation}\n"
    )


def http_route(backend: str = "svc") -> str:
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: r, namespace: default}\n"
        f"spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n"
        f"  - backendRefs: [{{name: {backend}, port: 443}}]\n"
    )


def http_gateway(port: int) -> str:
    return gateway(f"- {{name: http, port: {port}, protocol: HTTP}}")


# What the backend serves, and what the policy asks: the request is forwarded over TLS
# exactly when the certificate verifies as the policy says, else 503.
CASES = [
    pytest.param(
        ("a.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal}",
        "ca",
        200,
        id="a certificate for the hostname from the ConfigMap's CA is accepted",
    ),
    pytest.param(
        ("a.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal}",
        "other",
        503,
        id="a certificate from another CA than the ConfigMap's is refused with 503",
    ),
    pytest.param(
        ("b.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal}",
        "ca",
        503,
        id="a certificate for another name than the hostname is refused with 503",
    ),
    pytest.param(
        ("a.internal",),
        "{caCertificateRefs: [{name: ca-secret, kind: Secret, group: ''}], hostname: a.internal}",
        "ca",
        200,
        id="the CA may come from a Secret's ca.crt",
    ),
    pytest.param(
        ("b.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal, "
        "subjectAltNames: [{type: Hostname, hostname: b.internal}]}",
        "ca",
        200,
        id="with subjectAltNames a matching SAN is enough and the hostname is not checked",
    ),
    pytest.param(
        ("*.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal, "
        "subjectAltNames: [{type: Hostname, hostname: c.internal}]}",
        "ca",
        200,
        id="a wildcard certificate covers a Hostname subjectAltName",
    ),
    pytest.param(
        ("a.internal",),
        "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal, "
        "subjectAltNames: [{type: Hostname, hostname: b.internal}]}",
        "ca",
        503,
        id="with subjectAltNames the hostname alone does not authenticate: 503",
    ),
    pytest.param(
        ("a.internal",),
        "{wellKnownCACertificates: System, hostname: a.internal}",
        "ca",
        503,
        id="the system trust store does not hold a private CA: 503",
    ),
]


@pytest.mark.parametrize(("names", "validation", "issuer", "status"), CASES)
def test_backend_tls_policy_verifies_the_backend_certificate(
    serve, tls_backends, names, validation, issuer, status
):
    ca, other = trustme.CA(), trustme.CA()
    backend = tls_backends(*leaf(ca if issuer == "ca" else other, *names))
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            ca_configmap("ca", ca),
            ca_secret("ca-secret", ca),
            service("svc", [backend.port], port=443),
            http_route(),
            policy(validation),
        )
    )
    with httpx.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/hello", headers={"host": "shop.test"})
    assert response.status_code == status, response.text
    # validation.hostname is the SNI whatever else the policy says.
    assert backend.snis and set(backend.snis) == {"a.internal"}
    if status == 200:
        seen = backend.echo.requests[-1]
        assert (seen.path, seen.host, seen.protocol) == ("/hello", "shop.test", "HTTP/1.1")
        assert backend.echo.tls_sessions[0][0] == "http/1.1"
    else:
        assert backend.echo.requests == []
        assert "tls-error" in response.text


@pytest.mark.parametrize(
    ("wanted", "status"),
    [
        pytest.param(SPIFFE, 200, id="a URI subjectAltName equal to the certificate's is accepted"),
        pytest.param(SPIFFE + "-other", 503, id="a URI subjectAltName must match exactly: 503"),
    ],
)
def test_uri_subject_alt_names_match_the_certificate_uri_exactly(
    serve, tls_backends, wanted, status
):
    ca = trustme.CA()
    backend = tls_backends(*leaf_with_uri(ca, "pod.internal", SPIFFE))
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            ca_configmap("ca", ca),
            service("svc", [backend.port], port=443),
            http_route(),
            policy(
                "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], "
                f"hostname: svc.internal, subjectAltNames: [{{type: URI, uri: '{wanted}'}}]}}"
            ),
        )
    )
    with httpx.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == status, response.text
    assert backend.snis == ["svc.internal"]


def test_a_policy_without_a_valid_ca_fails_its_requests_without_connecting(serve, tls_backends):
    backend = tls_backends(*leaf(trustme.CA(), "a.internal"))
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc", [backend.port], port=443),
            http_route(),
            policy(
                "{caCertificateRefs: [{name: missing, kind: ConfigMap, group: ''}], "
                "hostname: a.internal}"
            ),
        )
    )
    with httpx.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 503
    assert "NoValidCACertificate" in response.text
    assert backend.echo.connections == 0


def test_tls_connections_to_a_backend_are_pooled_and_reused(serve, tls_backends):
    ca = trustme.CA()
    backend = tls_backends(*leaf(ca, "a.internal"))
    port = free_port()
    proxy = serve(
        manifests(
            http_gateway(port),
            ca_configmap("ca", ca),
            service("svc", [backend.port], port=443),
            http_route(),
            policy(
                "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], "
                "hostname: a.internal}"
            ),
        )
    )
    with httpx.Client(timeout=10) as client:
        statuses = [client.get(f"http://127.0.0.1:{port}/{i}").status_code for i in range(5)]
    assert statuses == [200] * 5
    assert [seen.path for seen in backend.echo.requests] == [f"/{i}" for i in range(5)]
    assert backend.echo.connections == 1
    assert proxy.stats["counters"]["upstream_connections"] == 1


def test_the_gateway_presents_its_client_certificate_to_backends_that_ask(serve, tls_backends):
    ca, client_ca = trustme.CA(), trustme.CA()
    backend = tls_backends(*leaf(ca, "a.internal"), client_ca=client_ca)
    client_cert = client_ca.issue_cert("gateway.infra.test")
    chain = b"".join(b.bytes() for b in client_cert.cert_chain_pems)
    port = free_port()
    gw = gateway(f"- {{name: http, port: {port}, protocol: HTTP}}").replace(
        "  gatewayClassName: netlet\n",
        "  gatewayClassName: netlet\n  tls:\n    backend:\n"
        "      clientCertificateRef: {name: gw-client}\n",
    )
    serve(
        manifests(
            gw,
            tls_secret("gw-client", chain, client_cert.private_key_pem.bytes()),
            ca_configmap("ca", ca),
            service("svc", [backend.port], port=443),
            http_route(),
            policy(
                "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], "
                "hostname: a.internal}"
            ),
        )
    )
    with httpx.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200, response.text
    _, peer = backend.echo.tls_sessions[0]
    assert peer is not None
    assert ("DNS", "gateway.infra.test") in peer["subjectAltName"]


class TlsGrpcBackend:
    """A grpcio server over TLS: echo.Echo/Say answers 'tls:' + the request."""

    def __init__(self, chain: bytes, key: bytes) -> None:
        self.server = grpc.server(ThreadPoolExecutor(2))
        handler = grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"tls:" + req)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("echo.Echo", {"Say": handler}),)
        )
        credentials = grpc.ssl_server_credentials([(key, chain)])
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)

    def __enter__(self) -> TlsGrpcBackend:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0).wait(5)


def test_grpc_backends_with_a_policy_get_http2_over_tls(serve):
    ca = trustme.CA()
    with TlsGrpcBackend(*leaf(ca, "grpc.internal")) as backend:
        port = free_port()
        serve(
            manifests(
                http_gateway(port),
                ca_configmap("ca", ca),
                service("grpc-svc", [backend.port], port=443),
                """\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: grpc-svc, port: 443}]
""",
                policy(
                    "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], "
                    "hostname: grpc.internal}",
                    "grpc-svc",
                ),
            )
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = channel.unary_unary("/echo.Echo/Say")(b"hi", timeout=10)
        assert reply == b"tls:hi"


def test_a_tcp_route_to_a_backend_with_a_policy_is_refused_not_sent_in_clear(serve, tls_backends):
    # TCPRoute relays bytes as they come; the proxy does not originate TLS for them, and
    # a backend that asked for TLS must never get the stream in clear text.
    backend = tls_backends(*leaf(trustme.CA(), "a.internal"))
    port = free_port()
    serve(
        manifests(
            gateway(f"- {{name: tcp, port: {port}, protocol: TCP}}"),
            ca_configmap("ca", trustme.CA()),
            service("svc", [backend.port], port=443),
            "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n"
            "metadata: {name: t, namespace: default}\n"
            "spec:\n  parentRefs: [{name: gw}]\n"
            "  rules: [{backendRefs: [{name: svc, port: 443}]}]\n",
            policy(
                "{caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}], hostname: a.internal}"
            ),
        )
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"secret")
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""  # refused connections are reset, as for an invalid TCPRoute share
        assert reply == b""
    assert backend.echo.connections == 0
