"""The proxy serving HTTPRoutes end to end: manifests -> the gateway brain's tables ->
real sockets, with real clients over HTTP/1.1 and HTTP/2 (h2c prior knowledge),
asserting what the backend received and what the client got.

Spec: Gateway API v1 apis/v1/httproute_types.go - HTTPRouteMatch (path, headers,
query, method), HTTPRouteFilter (RequestHeaderModifier, ResponseHeaderModifier,
RequestRedirect, URLRewrite, RequestMirror incl. percent, CORS), HTTPBackendRef
(weight; "If a backendRef is invalid ... 500" for its share; backend filters),
HTTPRouteTimeouts (GEP-1742), HTTPRouteRetry (GEP-1731); a request no rule
matches gets 404.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import Proxy, gateway, manifests, service

PROTOCOLS = [pytest.param("HTTP/1.1", id="over HTTP/1.1"), pytest.param("HTTP/2", id="over HTTP/2")]


def client(protocol: str) -> httpx.Client:
    if protocol == "HTTP/2":
        return httpx.Client(http1=False, http2=True, timeout=10)
    return httpx.Client(timeout=10)


@pytest.fixture
def backends(loop_thread: LoopThread) -> Iterator[dict[str, EchoBackend]]:
    made: dict[str, EchoBackend] = {}
    for name in ("a", "b", "mirror"):
        made[name] = loop_thread.run(EchoBackend(name).start())
    try:
        yield made
    finally:
        for backend in made.values():
            loop_thread.run(backend.stop())


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


def http_gateway(port: int, hostname: str | None = None) -> str:
    host = f", hostname: '{hostname}'" if hostname else ""
    return gateway(f"- {{name: http, port: {port}, protocol: HTTP{host}}}")


def route(rules: str, hostnames: str = "", name: str = "r") -> str:
    hosts = f"  hostnames: {hostnames}\n" if hostnames else ""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec:\n  parentRefs: [{{name: gw}}]\n{hosts}  rules:\n" + rules
    )


def echo_of(response: httpx.Response) -> dict:
    return json.loads(response.text)


# Matching and wiring ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rules_send_each_request_to_the_backend_its_match_selects(serve, backends, protocol):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            service("svc-b", [backends["b"].port]),
            route(
                """\
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: svc-a, port: 80}]
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: svc-b, port: 80}]
  - matches: [{queryParams: [{name: v, value: "2"}], method: POST}]
    backendRefs: [{name: svc-b, port: 80}]
"""
            ),
        )
    )
    base = f"http://127.0.0.1:{port}"
    with client(protocol) as c:
        api = c.get(f"{base}/api/items?q=1", headers={"host": "shop.example.com"})
        canary = c.get(f"{base}/other", headers={"x-canary": "yes"})
        post = c.post(f"{base}/x?v=2", content=b"body!")
        missing = c.get(f"{base}/nothing")
    assert (api.status_code, api.headers["x-backend"]) == (200, "a")
    seen = backends["a"].requests[-1]
    assert (seen.path, seen.host) == ("/api/items?q=1", "shop.example.com")
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    assert canary.headers["x-backend"] == "b"
    assert (post.headers["x-backend"], echo_of(post)["body"]) == ("b", "body!")
    assert missing.status_code == 404


def test_a_request_whose_host_matches_no_route_hostname_gets_404(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route("  - backendRefs: [{name: svc-a, port: 80}]\n", hostnames="[shop.example.com]"),
        )
    )
    with client("HTTP/1.1") as c:
        good = c.get(f"http://127.0.0.1:{port}/", headers={"host": "shop.example.com"})
        other = c.get(f"http://127.0.0.1:{port}/", headers={"host": "other.example.com"})
    assert good.status_code == 200
    assert other.status_code == 404
    assert backends["a"].requests[-1].host == "shop.example.com"


# Filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_header_modifiers_change_what_the_backend_and_the_client_see(serve, backends, protocol):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route(
                """\
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Backend, value: hidden}]
        add: [{name: X-Resp-Add, value: r1}]
        remove: [Content-Type]
    backendRefs:
    - name: svc-a
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          add: [{name: X-Backend-Filter, value: only-a}]
"""
            ),
        )
    )
    with client(protocol) as c:
        response = c.get(
            f"http://127.0.0.1:{port}/h",
            headers={"x-set": "original", "x-add": "first", "x-remove": "gone", "x-keep": "k"},
        )
    seen = backends["a"].requests[-1]
    assert seen.header("x-set") == "set-value"
    assert seen.header("x-add") == "first,added"
    assert seen.header("x-remove") is None
    assert seen.header("x-keep") == "k"
    assert seen.header("x-backend-filter") == "only-a"
    assert response.headers["x-backend"] == "hidden"
    assert response.headers["x-resp-add"] == "r1"
    assert "content-type" not in response.headers


REDIRECTS = [
    pytest.param(
        "{scheme: https, statusCode: 301}",
        "/a/b?x=1",
        301,
        "https://shop.example.com/a/b?x=1",
        id="scheme https with 301 drops the port for 443",
    ),
    pytest.param(
        "{hostname: www.example.com, port: 8443, statusCode: 302}",
        "/a",
        302,
        "http://www.example.com:8443/a",
        id="hostname and port with 302",
    ),
    pytest.param(
        "{path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 307}",
        "/a/b",
        307,
        "http://shop.example.com:{port}/new",
        id="full path replacement with 307 keeps the listener port",
    ),
    pytest.param(
        "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}, statusCode: 308}",
        "/a/b",
        308,
        "http://shop.example.com:{port}/v2/b",
        id="prefix replacement with 308",
    ),
    pytest.param(
        "{scheme: https, hostname: secure.example.com, statusCode: 303}",
        "/a",
        303,
        "https://secure.example.com/a",
        id="scheme and hostname with 303",
    ),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("redirect", "path", "status", "location"), REDIRECTS)
def test_redirects_answer_with_the_status_and_location_the_filter_builds(
    serve, backends, redirect, path, status, location, protocol
):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            route(
                f"""\
  - matches: [{{path: {{type: PathPrefix, value: /a}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {redirect}}}]
"""
            ),
        )
    )
    with client(protocol) as c:
        response = c.get(
            f"http://127.0.0.1:{port}{path}", headers={"host": f"shop.example.com:{port}"}
        )
    assert response.status_code == status
    assert response.headers["location"] == location.format(port=port)
    assert all(not b.requests for b in backends.values())


REWRITES = [
    pytest.param(
        "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}",
        "/api/items?q=1",
        "/items?q=1",
        "shop.example.com",
        id="prefix /api replaced by / keeps the rest and the query",
    ),
    pytest.param(
        "{path: {type: ReplaceFullPath, replaceFullPath: /fixed}}",
        "/api/items",
        "/fixed",
        "shop.example.com",
        id="full path replaced",
    ),
    pytest.param(
        "{hostname: internal.svc}",
        "/api/x",
        "/api/x",
        "internal.svc",
        id="hostname rewritten",
    ),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("rewrite", "path", "seen_path", "seen_host"), REWRITES)
def test_url_rewrites_change_what_the_backend_receives(
    serve, backends, protocol, rewrite, path, seen_path, seen_host
):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route(
                f"""\
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {rewrite}}}]
    backendRefs: [{{name: svc-a, port: 80}}]
"""
            ),
        )
    )
    with client(protocol) as c:
        response = c.get(f"http://127.0.0.1:{port}{path}", headers={"host": "shop.example.com"})
    assert response.status_code == 200
    seen = backends["a"].requests[-1]
    assert (seen.path, seen.host) == (seen_path, seen_host)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mirrors_get_a_copy_and_their_answers_are_dropped(serve, backends, protocol, loop_thread):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            service("svc-mirror", [backends["mirror"].port]),
            route(
                """\
  - matches: [{path: {type: PathPrefix, value: /all}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc-mirror, port: 80}}}]
    backendRefs: [{name: svc-a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /none}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc-mirror, port: 80}, percent: 0}}]
    backendRefs: [{name: svc-a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /half}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: svc-mirror, port: 80}, fraction: {numerator: 1, denominator: 2}}
    backendRefs: [{name: svc-a, port: 80}]
"""
            ),
        )
    )
    base = f"http://127.0.0.1:{port}"
    with client(protocol) as c:
        response = c.post(f"{base}/all/x", content=b"copy me", headers={"x-id": "1"})
        for _ in range(5):
            c.get(f"{base}/none")
        for _ in range(200):
            c.get(f"{base}/half")
    loop_thread.run(_settle())
    assert response.headers["x-backend"] == "a"
    mirrored = backends["mirror"].requests
    copy = next(r for r in mirrored if r.path == "/all/x")
    assert (copy.method, copy.body, copy.header("x-id")) == ("POST", b"copy me", "1")
    assert not [r for r in mirrored if r.path == "/none"]
    half = len([r for r in mirrored if r.path == "/half"])
    # 1/2 of 200 requests: the chance of falling outside 60..140 is below 1e-8.
    assert 60 <= half <= 140


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cors_preflights_are_answered_by_the_gateway_and_responses_get_cors_headers(
    serve, backends, protocol
):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route(
                """\
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["https://app.example.com"]
        allowMethods: [GET, POST]
        allowHeaders: [X-Token]
        exposeHeaders: [X-Backend]
        allowCredentials: true
        maxAge: 600
    backendRefs: [{name: svc-a, port: 80}]
"""
            ),
        )
    )
    base = f"http://127.0.0.1:{port}"
    with client(protocol) as c:
        preflight = c.options(
            f"{base}/data",
            headers={"origin": "https://app.example.com", "access-control-request-method": "POST"},
        )
        before = len(backends["a"].requests)
        actual = c.get(f"{base}/data", headers={"origin": "https://app.example.com"})
        stranger = c.get(f"{base}/data", headers={"origin": "https://evil.example.com"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert preflight.headers["access-control-allow-methods"] == "GET,POST"
    assert preflight.headers["access-control-allow-headers"] == "X-Token"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-max-age"] == "600"
    assert before == 0, "the preflight must not reach the backend"
    assert actual.headers["access-control-allow-origin"] == "https://app.example.com"
    assert actual.headers["access-control-expose-headers"] == "X-Backend"
    assert "access-control-allow-origin" not in stranger.headers


# Backends ----------------------------------------------------------------------------------


def test_weights_split_traffic_and_weight_zero_gets_none(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            service("svc-b", [backends["b"].port]),
            service("svc-m", [backends["mirror"].port]),
            route(
                """\
  - backendRefs:
    - {name: svc-a, port: 80, weight: 3}
    - {name: svc-b, port: 80, weight: 1}
    - {name: svc-m, port: 80, weight: 0}
"""
            ),
        )
    )
    with client("HTTP/1.1") as c:
        got = Counter(c.get(f"http://127.0.0.1:{port}/w").headers["x-backend"] for _ in range(400))
    # Expected 300/100; outside 240..360 has probability below 1e-8.
    assert 240 <= got["a"] <= 360
    assert got["a"] + got["b"] == 400
    assert got["mirror"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_share_of_an_invalid_backend_gets_500_and_the_rest_is_served(serve, backends, protocol):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route(
                """\
  - matches: [{path: {type: PathPrefix, value: /mixed}}]
    backendRefs:
    - {name: svc-a, port: 80}
    - {name: does-not-exist, port: 80}
  - matches: [{path: {type: PathPrefix, value: /broken}}]
    backendRefs: [{name: does-not-exist, port: 80}]
"""
            ),
        )
    )
    with client(protocol) as c:
        mixed = Counter(c.get(f"http://127.0.0.1:{port}/mixed").status_code for _ in range(200))
        broken = {c.get(f"http://127.0.0.1:{port}/broken").status_code for _ in range(10)}
    assert set(mixed) == {200, 500}
    assert 60 <= mixed[500] <= 140
    assert broken == {500}


def test_a_service_without_endpoints_answers_503(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\n"
            "spec:\n  ports: [{name: p, port: 80}]\n",
            route("  - backendRefs: [{name: empty, port: 80}]\n"),
        )
    )
    with client("HTTP/1.1") as c:
        response = c.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 503


def _closed_port() -> int:
    port = free_port()
    return port  # nothing listens there once free_port's socket is closed


UPSTREAM_FAILURES = [
    pytest.param("refused", 503, id="nothing listening at the endpoint answers 503"),
    pytest.param("reset", 502, id="a backend that drops the connection answers 502"),
    pytest.param("slow", 504, id="a backend slower than backendRequest answers 504"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("failure", "status"), UPSTREAM_FAILURES)
def test_backend_failures_map_to_502_503_504(serve, backends, failure, status, protocol):
    port = free_port()
    target = _closed_port() if failure == "refused" else backends["a"].port
    path = {"refused": "/x", "reset": "/close", "slow": "/sleep/2000"}[failure]
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [target]),
            route(
                """\
  - timeouts: {backendRequest: 300ms}
    backendRefs: [{name: svc-a, port: 80}]
"""
            ),
        )
    )
    with client(protocol) as c:
        response = c.get(f"http://127.0.0.1:{port}{path}")
    assert response.status_code == status


def test_the_request_timeout_bounds_the_whole_exchange_with_504(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route("  - timeouts: {request: 300ms}\n    backendRefs: [{name: svc-a, port: 80}]\n"),
        )
    )
    with client("HTTP/2") as c:
        slow = c.get(f"http://127.0.0.1:{port}/sleep/2000")
        fast = c.get(f"http://127.0.0.1:{port}/sleep/10")
    assert (slow.status_code, fast.status_code) == (504, 200)


def test_retries_go_around_a_failing_endpoint_and_a_failing_status(serve, backends, loop_thread):
    bad = loop_thread.run(EchoBackend("bad", status=503).start())
    try:
        port = free_port()
        serve(
            manifests(
                http_gateway(port),
                service("svc-retry", [bad.port, backends["a"].port]),
                service("svc-dead", [_closed_port(), backends["b"].port]),
                service("svc-noretry", [bad.port, backends["a"].port]),
                route(
                    """\
  - matches: [{path: {type: PathPrefix, value: /codes}}]
    retry: {codes: [503], attempts: 2}
    backendRefs: [{name: svc-retry, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /connect}}]
    retry: {attempts: 2}
    backendRefs: [{name: svc-dead, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /plain}}]
    backendRefs: [{name: svc-noretry, port: 80}]
"""
                ),
            )
        )
        with client("HTTP/1.1") as c:
            codes = {
                c.post(f"http://127.0.0.1:{port}/codes", content=b"again").status_code
                for _ in range(10)
            }
            connect = {c.get(f"http://127.0.0.1:{port}/connect").status_code for _ in range(10)}
            plain = Counter(c.get(f"http://127.0.0.1:{port}/plain").status_code for _ in range(10))
        assert codes == {200}
        assert connect == {200}
        assert plain == {200: 5, 503: 5}, (
            "without retry, round robin hits the bad endpoint half the time"
        )
        assert all(r.body == b"again" for r in backends["a"].requests if r.path == "/codes")
    finally:
        loop_thread.run(bad.stop())


# Protocol details ------------------------------------------------------------------------


def test_http2_clients_reach_http1_backends_and_h2c_backends_by_app_protocol(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            service("svc-b", [backends["b"].port], app_protocol="kubernetes.io/h2c"),
            route(
                """\
  - matches: [{path: {type: PathPrefix, value: /h1}}]
    backendRefs: [{name: svc-a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /h2c}}]
    backendRefs: [{name: svc-b, port: 80}]
"""
            ),
        )
    )
    with client("HTTP/2") as c2, client("HTTP/1.1") as c1:
        h1 = c2.get(f"http://127.0.0.1:{port}/h1")
        h2c = c1.post(f"http://127.0.0.1:{port}/h2c", content=b"z" * 200_000)
    assert (h1.http_version, echo_of(h1)["protocol"]) == ("HTTP/2", "HTTP/1.1")
    assert (h2c.http_version, echo_of(h2c)["protocol"]) == ("HTTP/1.1", "HTTP/2")
    assert len(echo_of(h2c)["body"]) == 200_000


def test_streamed_responses_pass_through_chunk_by_chunk(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route("  - backendRefs: [{name: svc-a, port: 80}]\n"),
        )
    )
    with client("HTTP/1.1") as c:
        response = c.get(f"http://127.0.0.1:{port}/stream/50")
    assert response.text == "".join(f"chunk{i};" for i in range(50))
    assert response.headers.get("transfer-encoding") == "chunked"


def test_backend_connections_are_pooled_across_requests(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route("  - backendRefs: [{name: svc-a, port: 80}]\n"),
        )
    )
    with client("HTTP/1.1") as c:
        for _ in range(30):
            assert c.get(f"http://127.0.0.1:{port}/p").status_code == 200
    assert backends["a"].connections == 1


def test_head_requests_get_headers_without_a_body(serve, backends):
    port = free_port()
    serve(
        manifests(
            http_gateway(port),
            service("svc-a", [backends["a"].port]),
            route("  - backendRefs: [{name: svc-a, port: 80}]\n"),
        )
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200"), "HEAD must not be followed by a body"
