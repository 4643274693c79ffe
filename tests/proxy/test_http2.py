"""HTTP/2 server side: h2c prior knowledge, concurrent streams and their limit,
flow control with large bodies, trailers, oversized header lists.

Spec: RFC 9113 - 3.3 (prior knowledge), 5.1.2 (a stream over
SETTINGS_MAX_CONCURRENT_STREAMS is refused: "stream error of type PROTOCOL_ERROR
or REFUSED_STREAM"), 6.9 (flow control), 8.1 (trailers), 8.2.3 (cookie fields
joined with "; " when going to HTTP/1.1); RFC 6585 4 (431).
"""

from __future__ import annotations

import json
import socket
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import pytest

from netlet.dataplane.proxy.limits import Limits


def h2_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def test_prior_knowledge_h2c_is_served_over_http2(make_server):
    server = make_server()
    with h2_client() as client:
        response = client.get(f"http://127.0.0.1:{server.port}/x?y=1", headers={"x-a": "b"})
    data = response.json()
    assert response.http_version == "HTTP/2"
    assert (data["version"], data["path"], data["authority"]) == (
        "2",
        "/x?y=1",
        f"127.0.0.1:{server.port}",
    )
    assert ["x-a", "b"] in data["headers"]


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(1, id="a one-byte body"),
        pytest.param(3 * 1024 * 1024, id="a 3 MiB body needs window updates"),
    ],
)
def test_request_bodies_arrive_whole_under_flow_control(make_server, size):
    server = make_server()
    payload = bytes(i % 251 for i in range(size))
    with h2_client() as client:
        response = client.post(f"http://127.0.0.1:{server.port}/up", content=payload)
    assert response.status_code == 200
    assert response.json()["body"].encode("latin-1") == payload


def test_many_concurrent_streams_on_one_connection(make_server):
    server = make_server()
    results: list[str] = []
    with h2_client() as client:

        def get(i: int) -> None:
            results.append(
                client.get(f"http://127.0.0.1:{server.port}/sleep/50?i={i}").json()["path"]
            )

        threads = [threading.Thread(target=get, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert sorted(results) == sorted(f"/sleep/50?i={i}" for i in range(20))
    assert server.site.stats.connections_total["test"] == 1


def _raw_h2(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _events_until(sock, conn, done) -> list[h2.events.Event]:
    events: list[h2.events.Event] = []
    while not done(events):
        data = sock.recv(65536)
        if not data:
            break
        events.extend(conn.receive_data(data))
        sock.sendall(conn.data_to_send())
    return events


def test_streams_beyond_the_concurrency_limit_are_refused(make_server):
    server = make_server(limits=Limits(max_streams=2))
    sock, conn = _raw_h2(server.port)
    with sock:
        # Wait for the server's SETTINGS so the client knows the limit is 2 ...
        _events_until(
            sock, conn, lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev)
        )
        assert conn.remote_settings.max_concurrent_streams == 2
        # ... then ignore it, as a misbehaving client would.
        conn.remote_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
        )
        headers = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a"),
            (":path", "/sleep/300"),
        ]
        for stream_id in (1, 3, 5):
            conn.send_headers(stream_id, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        events = _events_until(
            sock,
            conn,
            lambda ev: (
                sum(isinstance(e, h2.events.StreamEnded) for e in ev) >= 2
                and any(isinstance(e, h2.events.StreamReset) for e in ev)
            ),
        )
    resets = {e.stream_id: e.error_code for e in events if isinstance(e, h2.events.StreamReset)}
    ended = {e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)}
    assert resets == {5: h2.errors.ErrorCodes.REFUSED_STREAM}
    assert ended == {1, 3}


def test_request_trailers_reach_the_handler(make_server):
    server = make_server()
    sock, conn = _raw_h2(server.port)
    with sock:
        conn.send_headers(
            1,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/t"),
                ("te", "trailers"),
            ],
        )
        conn.send_data(1, b"payload")
        conn.send_headers(1, [("x-sum", "7")], end_stream=True)
        sock.sendall(conn.data_to_send())
        events = _events_until(
            sock, conn, lambda ev: any(isinstance(e, h2.events.StreamEnded) for e in ev)
        )
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    data = json.loads(body)
    assert data["body"] == "payload"
    assert data["trailers"] == [["x-sum", "7"]]


def test_split_cookie_fields_are_joined_for_http1_backends(make_server):
    server = make_server()
    sock, conn = _raw_h2(server.port)
    with sock:
        conn.send_headers(
            1,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/c"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        events = _events_until(
            sock, conn, lambda ev: any(isinstance(e, h2.events.StreamEnded) for e in ev)
        )
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert ["cookie", "a=1; b=2"] in json.loads(body)["headers"]


def test_a_header_list_over_the_limit_gets_431(make_server):
    server = make_server(limits=Limits(max_header_bytes=2048))
    sock, conn = _raw_h2(server.port)
    with sock:
        # Lift the server's advertised limit on the client side so the request goes out.
        _events_until(
            sock, conn, lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev)
        )
        conn.remote_settings = h2.settings.Settings(client=False)
        conn.send_headers(
            1,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/"),
                ("x-big", "v" * 1800),
                ("x-big2", "w" * 1800),
            ],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        events = _events_until(
            sock,
            conn,
            lambda ev: any(
                isinstance(
                    e,
                    h2.events.StreamEnded | h2.events.ConnectionTerminated | h2.events.StreamReset,
                )
                for e in ev
            ),
        )
    statuses = [
        dict(e.headers)[":status"] for e in events if isinstance(e, h2.events.ResponseReceived)
    ]
    terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    # Either the stream is answered 431 or, when HPACK decoding already exceeds the
    # limit, the connection is closed: both refuse the oversized head.
    assert statuses == ["431"] or terminated
