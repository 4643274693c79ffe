"""Pure pieces of the proxy: backpressure in BodyStream, the ClientHello SNI reader,
the bind plan (port mapping, clashes), coarse deadlines, counters merged over
workers.

Spec: RFC 8446 4.1.2 (ClientHello) and RFC 6066 3 (server_name extension);
Gateway API GatewaySpec.Addresses (where a Gateway listens).
"""

from __future__ import annotations

import asyncio
import base64
import ssl

import pytest
import trustme

from netlet.cluster.build import load_text
from netlet.dataplane.proxy.deadlines import Deadlines
from netlet.dataplane.proxy.observe import Stats, merge, prometheus
from netlet.dataplane.proxy.server import plan_binds
from netlet.dataplane.proxy.streams import BodyStream, ProxyError
from netlet.dataplane.proxy.tls import NeedMore, NotTLS, parse_client_hello
from netlet.gateway.build import build_programs
from tests.proxy.harness import gateway, manifests


def test_body_stream_pauses_its_producer_past_the_high_water_mark_and_resumes_when_drained():
    events: list[str] = []
    stream = BodyStream(
        lambda: events.append("pause"), lambda: events.append("resume"), high_water=10
    )

    async def scenario() -> bytes:
        stream.feed(b"12345")
        assert events == []
        stream.feed(b"678901")
        assert events == ["pause"]
        first = await stream.read()
        assert events == ["pause"], "still above half the mark"
        second = await stream.read()
        assert events == ["pause", "resume"]
        stream.end()
        assert await stream.read() == b""
        return first + second

    assert asyncio.run(scenario()) == b"12345678901"


def test_body_stream_read_all_refuses_bodies_over_the_limit_with_413():
    stream = BodyStream()
    stream.feed(b"x" * 100)
    stream.end()
    with pytest.raises(ProxyError) as err:
        asyncio.run(stream.read_all(50))
    assert err.value.status == 413


def test_read_up_to_puts_back_a_body_too_big_to_replay():
    stream = BodyStream()
    stream.feed(b"a" * 30)
    stream.feed(b"b" * 30)
    stream.end()

    async def scenario() -> tuple[bytes, bool, bytes]:
        data, whole = await stream.read_up_to(40)
        rest = await stream.read_all(1000)
        return data, whole, rest

    data, whole, rest = asyncio.run(scenario())
    assert not whole
    assert len(data) >= 40
    assert rest == b"a" * 30 + b"b" * 30, "what was read ahead is read again"


def _client_hello(server_hostname: str | None) -> bytes:
    """The bytes a real TLS client sends first (Python's ssl, memory BIOs)."""
    ctx = ssl.create_default_context()
    if server_hostname is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("shop.example.com", "shop.example.com", id="the SNI of a real ClientHello"),
        pytest.param("UPPER.Example.COM", "upper.example.com", id="SNI names compare lower-case"),
        pytest.param(None, None, id="a ClientHello without SNI has none"),
    ],
)
def test_client_hello_sni_is_read_without_decrypting(name, expected):
    assert parse_client_hello(_client_hello(name)) == expected


def test_a_client_hello_cut_anywhere_asks_for_more():
    hello = _client_hello("a.example.com")
    for cut in (0, 1, 4, 5, 20, len(hello) - 1):
        with pytest.raises(NeedMore):
            parse_client_hello(hello[:cut])
    assert parse_client_hello(hello + b"trailing junk") == "a.example.com"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="plain HTTP is not TLS"),
        pytest.param(
            b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", id="a handshake that is not a ClientHello"
        ),
        pytest.param(b"\x17\x03\x03\x00\x05hello", id="application data first is not TLS"),
    ],
)
def test_bytes_that_are_not_a_client_hello_are_refused(data):
    with pytest.raises(NotTLS):
        parse_client_hello(data)


def _programs(text: str):
    result = load_text(text)
    assert result.ok, result.diagnostics
    return build_programs(result.state)


def test_the_bind_plan_maps_privileged_ports_and_reports_clashes():
    two = manifests(
        gateway(
            "- {name: http, port: 80, protocol: HTTP}\n- {name: tcp, port: 9000, protocol: TCP}",
            name="one",
        ),
        gateway("- {name: http, port: 80, protocol: HTTP}", name="two"),
    )
    binds, problems = plan_binds(_programs(two), "127.0.0.1", 8000)
    assert [str(b) for b in binds] == [
        "default/one http 80/tcp -> 127.0.0.1:8080",
        "default/one tcp 9000/tcp -> 127.0.0.1:9000",
    ]
    assert problems == [
        "Gateway default/two port 80/tcp: 127.0.0.1:8080 is already used by Gateway default/one"
    ]


def test_without_an_override_sockets_bind_the_gateway_addresses_or_say_why_not():
    text = manifests(
        gateway("- {name: http, port: 80, protocol: HTTP}", name="addressed").replace(
            "spec:\n", "spec:\n  addresses: [{type: IPAddress, value: 192.0.2.20}]\n", 1
        ),
        gateway("- {name: http, port: 80, protocol: HTTP}", name="bare"),
    )
    binds, problems = plan_binds(_programs(text))
    assert [str(b) for b in binds] == ["default/addressed http 80/tcp -> 192.0.2.20:80"]
    assert problems == [
        "Gateway default/bare: no address to bind (spec.addresses or status); "
        "use --bind-override 127.0.0.1"
    ]


def test_a_port_with_https_and_tls_listeners_is_one_peeking_tls_socket():
    ca = trustme.CA()
    cert = ca.issue_cert("a.example.com")
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: default}\ntype: kubernetes.io/tls\n"
        f"data:\n  tls.crt: {base64.b64encode(cert.cert_chain_pems[0].bytes()).decode()}\n"
        f"  tls.key: {base64.b64encode(cert.private_key_pem.bytes()).decode()}\n"
    )
    text = manifests(
        secret,
        gateway(
            "- {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: c}]}}\n"
            "- {name: p, port: 443, protocol: TLS, hostname: p.example.com, tls: {mode: Passthrough}}\n"
            "- {name: h, port: 444, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: c}]}}"
        ),
    )
    binds, problems = plan_binds(_programs(text), "127.0.0.1", 0)
    assert problems == []
    assert [(b.port, b.kind) for b in binds] == [(443, "tls"), (444, "https")]


def test_deadlines_fire_once_after_their_time_and_not_when_cleared():
    fired: list[str] = []

    async def scenario() -> None:
        deadlines = Deadlines(tick=0.01)
        deadlines.set("a", 0.03, lambda: fired.append("a"))
        deadlines.set("b", 0.03, lambda: fired.append("b"))
        deadlines.clear("b")
        await asyncio.sleep(0.01)
        assert fired == []
        await asyncio.sleep(0.1)
        assert len(deadlines) == 0
        deadlines.close()

    asyncio.run(scenario())
    assert fired == ["a"]


def test_worker_counters_add_up_and_render_as_prometheus_text():
    one, two = Stats(), Stats()
    one.request_done("gw:80", "HTTP/1.1", 200)
    two.request_done("gw:80", "HTTP/1.1", 200)
    two.request_done("gw:80", "HTTP/2", 503)
    two.upstream_latency(0.003)
    merged = merge([one.snapshot(), two.snapshot()])
    assert merged["workers"] == 2
    assert merged["requests"] == {"gw:80 HTTP/1.1": 2, "gw:80 HTTP/2": 1}
    assert merged["responses_by_status"] == {"200": 2, "503": 1}
    text = prometheus(merged)
    assert 'netlet_proxy_requests_total{listener="gw:80",protocol="HTTP/1.1"} 2' in text
    assert 'netlet_proxy_upstream_latency_seconds_bucket{le="0.005"} 1' in text
    assert "netlet_proxy_upstream_latency_seconds_count 1" in text
