"""The proxy's decision memo: requests equal in what routing reads share one decision
of the gateway brain, and nothing else leaks between them.

Spec: what `match_http` reads (netlet.gateway.match.routing_headers) - Gateway API
apis/v1 httproute_types.go HTTPRouteMatch (path, method, headers, queryParams) and
listener selection by Host/SNI and port; the CORS filter (GEP-1767) answers by the
request's Origin, RequestHeaderModifier/URLRewrite/RequestRedirect depend on the
whole request, so decisions of such rules are never shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from netlet.cluster.build import load_text
from netlet.dataplane.proxy.routing import GatewayRouter, Holder, Snapshot
from netlet.dataplane.proxy.site import ConnInfo, Site
from netlet.dataplane.proxy.streams import Request
from netlet.gateway.build import build_programs
from netlet.gateway.match import routing_headers
from tests.proxy.backends import EchoBackend, LoopThread
from tests.proxy.harness import gateway, http_gateway, manifests, service

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /canary}, headers: [{name: X-Tenant, value: blue}]}]
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /cors}}]
    filters:
    - type: CORS
      cors: {allowOrigins: ["https://a.test", "https://b.test"]}
    backendRefs: [{name: svc, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /rewritten}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-added, value: "yes"}]}
    backendRefs: [{name: svc, port: 80}]
  - backendRefs: [{name: svc, port: 80}]
"""


def _router() -> tuple[GatewayRouter, Snapshot, ConnInfo]:
    text = manifests(
        gateway("- {name: http, port: 8080, protocol: HTTP}"), service("svc", [9]), ROUTE
    )
    result = load_text(text)
    assert result.ok, [str(d) for d in result.errors]
    snapshot = Snapshot(1, dict(build_programs(result.state)))
    router = GatewayRouter(Holder(snapshot), "default/gw")
    return router, snapshot, ConnInfo(Site("s", 8080, None), client="10.0.0.1")  # type: ignore[arg-type]


def _request(path: str, **headers: str) -> Request:
    pairs = [("host", "shop.test"), *((k.replace("_", "-"), v) for k, v in headers.items())]
    return Request("GET", "http", "shop.test", path, pairs, None)


def test_routing_headers_are_the_headers_matches_test_and_content_type() -> None:
    _, snapshot, _ = _router()
    program = snapshot.programs["default/gw"]
    assert routing_headers(program, 8080) == ("content-type", "x-tenant")


@pytest.mark.parametrize(
    "first, second, shared",
    [
        pytest.param(
            _request("/", x_request_id="1"),
            _request("/", x_request_id="2"),
            True,
            id="requests differing in a header no match reads share a decision",
        ),
        pytest.param(
            _request("/", x_tenant="blue"),
            _request("/", x_tenant="green"),
            False,
            id="a header some match reads is part of the key (even where it does not decide)",
        ),
        pytest.param(
            _request("/a"),
            _request("/b"),
            False,
            id="paths the table tells apart are different keys",
        ),
        pytest.param(
            _request("/item/1"),
            _request("/item/2"),
            True,
            id="paths deeper than every PathPrefix share the decision of their first segments",
        ),
        pytest.param(
            _request("/item?x=1"),
            _request("/item?x=2"),
            True,
            id="queries no match tests share a decision",
        ),
        pytest.param(
            _request("/cors/x", origin="https://a.test"),
            _request("/cors/x", origin="https://b.test"),
            False,
            id="a CORS rule's decisions are never shared (the Origin matters)",
        ),
        pytest.param(
            _request("/rewritten", x_request_id="1"),
            _request("/rewritten", x_request_id="2"),
            False,
            id="a rule whose filters rewrite the request is never shared",
        ),
    ],
)
def test_the_memo_shares_decisions_only_between_equivalent_requests(first, second, shared):
    router, _, conn = _router()
    for _ in range(2):  # kept from the second sighting of a key on
        router.decide(first, conn)
    one, _ = router.decide(first, conn)
    two, _ = router.decide(second, conn)
    assert (one is two) is shared
    assert one.outcome == two.outcome or not shared


def test_a_new_snapshot_starts_with_an_empty_memo() -> None:
    router, snapshot, conn = _router()
    for _ in range(3):
        router.decide(_request("/"), conn)
    assert snapshot.decisions["default/gw"]
    fresh = Snapshot(2, snapshot.programs)
    router.holder.swap(fresh)
    router.decide(_request("/"), conn)
    assert not fresh.decisions.get("default/gw")


@pytest.fixture
def echo(loop_thread: LoopThread) -> Iterator[EchoBackend]:
    backend = loop_thread.run(EchoBackend("echo").start())
    try:
        yield backend
    finally:
        loop_thread.run(backend.stop())


def test_requests_sharing_a_decision_each_reach_the_backend_as_sent(
    loop_thread: LoopThread, tmp_path, echo: EchoBackend
) -> None:
    with (
        http_gateway(loop_thread, tmp_path, echo.port, ROUTE) as port,
        httpx.Client(timeout=10) as client,
    ):
        for i in range(6):
            response = client.get(
                f"http://127.0.0.1:{port}/item?x={i % 2}", headers={"x-request-id": str(i)}
            )
            seen = json.loads(response.text)
            assert dict(seen["headers"])["x-request-id"] == str(i)
            assert seen["path"] == f"/item?x={i % 2}"
    assert [r.header("x-request-id") for r in echo.requests] == [str(i) for i in range(6)]
