"""HTTP/1.1 server side: strict parsing, limits, keep-alive, pipelining, timeouts.

Spec: RFC 9112 (HTTP/1.1) - 6.1 Transfer-Encoding ("A server MAY reject a request
that contains both Content-Length and Transfer-Encoding"; we always do, as request
smuggling defence), 6.3 message body length (duplicate differing Content-Length is
unrecoverable), 7.1 chunked coding, 3.2 Host (400 when missing or repeated),
9.3.2 pipelining (responses in request order); RFC 6585 4 (431) and RFC 9110
15.5.9 (408), 15.5.15 (414).
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from netlet.dataplane.proxy.limits import Limits
from tests.proxy.conftest import SelfEcho, raw_exchange, read_responses

BAD_REQUESTS = [
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        id="content-length together with transfer-encoding is rejected with 400",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
        id="two different content-lengths are rejected with 400",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        id="a transfer-encoding that does not end in chunked is rejected with 400",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        id="a transfer coding the proxy does not implement gets 501",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        400,
        id="whitespace before the header colon is rejected with 400",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        400,
        id="obsolete line folding is rejected with 400",
    ),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="an HTTP/1.1 request without Host gets 400"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two Host headers get 400"
    ),
    pytest.param(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, id="CONNECT gets 405"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n",
        431,
        id="a header larger than the head limit gets 431",
    ),
    pytest.param(
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        414,
        id="a URL longer than the URL limit gets 414",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(120))
        + b"\r\n",
        431,
        id="more headers than the count limit gets 431",
    ),
]


@pytest.mark.parametrize(("raw", "status"), BAD_REQUESTS)
def test_malformed_requests_get_the_right_4xx_and_the_connection_closes(make_server, raw, status):
    handler = SelfEcho()
    server = make_server(handler)
    reply = raw_exchange(server.port, raw)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]
    assert b"connection: close" in reply.lower()
    assert handler.seen == [], "a malformed request must never reach the handler"


def test_bad_chunking_fails_the_streamed_body_and_answers_400(make_server):
    # The head was fine, so the request is already being handled when the broken
    # chunk arrives: its body fails and the client gets 400 (RFC 9112 7.1).
    handler = SelfEcho()
    server = make_server(handler)
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    reply = raw_exchange(server.port, raw)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:80]
    assert b"connection: close" in reply.lower()


def test_a_head_that_grows_past_the_limit_without_ending_gets_431(make_server):
    server = make_server(limits=Limits(max_header_bytes=4096))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        reply = b""
        try:
            for _ in range(20):
                sock.sendall(b"y" * 1024)
                time.sleep(0.01)
        except OSError:
            pass
        sock.settimeout(5)
        reply = sock.recv(1024)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_keep_alive_serves_several_requests_on_one_connection(make_server):
    server = make_server()
    with httpx.Client() as client:
        for i in range(5):
            response = client.get(f"http://127.0.0.1:{server.port}/n/{i}")
            assert response.json()["path"] == f"/n/{i}"
    assert server.site.stats.connections_total["test"] == 1
    assert server.site.stats.requests["test HTTP/1.1"] == 5


def test_pipelined_requests_are_answered_in_order_even_when_the_first_is_slow(make_server):
    server = make_server()
    pipeline = (
        b"GET /sleep/200 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(pipeline)
        responses = read_responses(sock, 3)
    paths = [json.loads(body)["path"] for _, body in responses]
    assert paths == ["/sleep/200", "/second", "/third"]
    assert json.loads(responses[2][1])["body"] == "hello"


def test_chunked_bodies_and_their_trailers_reach_the_handler(make_server):
    server = make_server()
    raw = (
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw)
        ((status, body),) = read_responses(sock, 1)
    data = json.loads(body)
    assert status == 200
    assert data["body"] == "hello world"
    assert data["trailers"] == [["x-checksum", "42"]]


def test_absolute_form_request_target_sets_the_authority(make_server):
    server = make_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET http://shop.example.com/a?b=1 HTTP/1.1\r\nHost: ignored\r\n\r\n")
        ((_, body),) = read_responses(sock, 1)
    data = json.loads(body)
    assert (data["authority"], data["path"]) == ("shop.example.com", "/a?b=1")


def test_http_1_0_closes_after_the_response_unless_keep_alive_was_asked(make_server):
    server = make_server()
    reply = raw_exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in reply


def test_a_slow_client_that_never_finishes_its_head_gets_408(make_server):
    server = make_server(limits=Limits(header_timeout=0.3))
    started = time.monotonic()
    reply = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=5)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3


def test_a_slow_body_times_out_with_408(make_server):
    server = make_server(limits=Limits(body_timeout=0.3))
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part"
    reply = raw_exchange(server.port, raw, timeout=5)
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(make_server):
    server = make_server(limits=Limits(idle_timeout=0.3))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_responses(sock, 1)[0][0] == 200
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server
        assert time.monotonic() - started < 3


def test_the_whole_request_fed_one_byte_at_a_time_parses_the_same(make_server):
    server = make_server()
    raw = b"POST /bytes?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nX-A: b\r\n\r\nxyz"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            sock.sendall(raw[i : i + 1])
        ((status, body),) = read_responses(sock, 1)
    data = json.loads(body)
    assert status == 200
    assert (data["path"], data["authority"], data["body"]) == ("/bytes?x=1", "a.example", "xyz")
    assert ["x-a", "b"] in data["headers"]


def test_trailing_junk_after_a_request_is_answered_with_400_after_the_good_response(make_server):
    server = make_server()
    reply = raw_exchange(server.port, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n\x00\x01garbage\r\n\r\n")
    first, _, rest = reply.partition(b"HTTP/1.1 400 ")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest, "the junk must be answered with a 400"
