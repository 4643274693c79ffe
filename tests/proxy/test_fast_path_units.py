"""Pieces of the request path made faster, held to what they replace: the one-pass
request head (`client_head`) against the general one, the per-request counters against
the separate calls, and writes held to the end of the loop's pass (`WriteBatch`).

Spec: RFC 9110 7.6.1 (Connection and the hop-by-hop fields it names are not
forwarded; TE only as "trailers"), RFC 7239 section 5.2 and the de-facto
X-Forwarded-For/-Proto fields (a proxy appends the client address), RFC 9112 9.3
(responses on a connection go out in request order).
"""

from __future__ import annotations

import asyncio

import pytest

from netlet.dataplane.proxy.batch import WriteBatch
from netlet.dataplane.proxy.engine import client_head, client_out
from netlet.dataplane.proxy.observe import LATENCY_BUCKETS, Stats
from netlet.dataplane.proxy.streams import Request
from netlet.dataplane.proxy.upstream import h1_head


def _request(method: str = "GET", path: str = "/", *headers: tuple[str, str]) -> Request:
    return Request(
        method,
        "http",
        "shop.test",
        path,
        [("host", "shop.test"), *headers],
        None,
        "1.1",
        "10.1.2.3",
    )


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(_request(), id="a bare GET"),
        pytest.param(
            _request("GET", "/a?b=c", ("accept", "*/*"), ("x-request-id", "7")),
            id="a GET with a query and end-to-end headers",
        ),
        pytest.param(_request("GET", "/a?"), id="an empty query is dropped"),
        pytest.param(
            _request("GET", "/", ("x-forwarded-for", "192.0.2.1")),
            id="an X-Forwarded-For from the client is extended",
        ),
        pytest.param(
            _request(
                "GET", "/", ("x-forwarded-for", "192.0.2.1"), ("x-forwarded-for", "192.0.2.9")
            ),
            id="of several X-Forwarded-For the last is extended",
        ),
        pytest.param(
            _request("GET", "/", ("connection", "keep-alive, x-secret"), ("x-secret", "1")),
            id="Connection and the headers it names are dropped",
        ),
        pytest.param(
            _request("GET", "/", ("te", "trailers"), ("keep-alive", "timeout=5")),
            id="TE trailers stays, Keep-Alive goes",
        ),
        pytest.param(_request("POST", "/form"), id="a POST without a body says Content-Length 0"),
        pytest.param(_request("HEAD", "/x", ("upgrade", "h2c")), id="a HEAD with an Upgrade"),
    ],
)
def test_the_one_pass_request_head_is_the_general_one(request_):
    assert client_head(request_) == h1_head(client_out(request_), None)[0]


@pytest.mark.parametrize(
    "seconds",
    [0.0, *LATENCY_BUCKETS, *(b * 1.0001 for b in LATENCY_BUCKETS), 1e-9, 99.0],
    ids=lambda s: f"an upstream latency of {s:g} s",
)
def test_one_call_per_finished_request_counts_as_the_separate_calls(seconds):
    separate, together = Stats(), Stats()
    separate.request_done("gw:80", "HTTP/1.1", 200)
    separate.upstream_latency(seconds)
    together.request_done("gw:80", "HTTP/1.1", 200, seconds)
    one, two = separate.snapshot(), together.snapshot()
    del one["uptime_seconds"], two["uptime_seconds"]
    assert one == two


def test_a_request_answered_by_the_gateway_counts_no_upstream_latency():
    stats = Stats()
    stats.request_done("gw:80", "HTTP/1.1", 404, None)
    snap = stats.snapshot()
    assert snap["requests"] == {"gw:80 HTTP/1.1": 1}
    assert snap["responses_by_status"] == {"404": 1}
    assert snap["upstream_latency"]["count"] == 0


class _Transport:
    def __init__(self, log: list[tuple[str, bytes]], name: str, closed: bool = False) -> None:
        self.log, self.name, self.closed = log, name, closed

    def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("transport is closed")
        self.log.append((self.name, data))


def test_held_writes_go_out_in_order_once_the_loop_has_run_what_was_ready():
    log: list[tuple[str, bytes]] = []

    async def scenario() -> list[tuple[str, bytes]]:
        loop = asyncio.get_running_loop()
        batch = WriteBatch()
        a, b = _Transport(log, "a"), _Transport(log, "b")
        batch.write(a, b"1", loop)
        batch.write(b, b"x", loop)
        batch.write(a, b"2", loop)
        assert log == [] and len(batch) == 3, "nothing goes out during the pass"
        await asyncio.sleep(0)
        return list(log)

    assert asyncio.run(scenario()) == [("a", b"1"), ("b", b"x"), ("a", b"2")]


def test_a_transport_closed_meanwhile_does_not_hold_up_the_others():
    log: list[tuple[str, bytes]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batch = WriteBatch()
        batch.write(_Transport(log, "gone", closed=True), b"lost", loop)
        batch.write(_Transport(log, "b"), b"kept", loop)
        batch.flush()  # also what a protocol does before it closes its transport
        assert log == [("b", b"kept")] and len(batch) == 0
        await asyncio.sleep(0)  # the scheduled flush finds nothing left

    asyncio.run(scenario())
    assert log == [("b", b"kept")]
