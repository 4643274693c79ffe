"""Reloads (atomic swap, in-flight requests finish on the old table, a bad change
keeps the old config, --watch), the admin endpoint and the JSON-lines access log.

Spec: the issue's reload contract and DESIGN.md ("the proxy swaps its routing
table atomically without dropping open connections"); Gateway API Listener
changes open and close ports (a listener that is gone stops being served).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.backends import EchoBackend, LoopThread, free_port
from tests.proxy.harness import Proxy, gateway, manifests, service


def config(port: int, backend: str, extra_port: int | None = None) -> str:
    listeners = f"- {{name: http, port: {port}, protocol: HTTP}}"
    if extra_port is not None:
        listeners += f"\n- {{name: extra, port: {extra_port}, protocol: HTTP}}"
    return manifests(
        gateway(listeners),
        f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 80}}]
""",
    )


@pytest.fixture
def two(loop_thread: LoopThread) -> Iterator[tuple[EchoBackend, EchoBackend]]:
    a = loop_thread.run(EchoBackend("a").start())
    b = loop_thread.run(EchoBackend("b").start())
    try:
        yield a, b
    finally:
        loop_thread.run(a.stop())
        loop_thread.run(b.stop())


@pytest.fixture
def proxy_factory(loop_thread: LoopThread, tmp_path) -> Iterator:
    made: list[Proxy] = []

    def make(**options) -> Proxy:
        proxy = Proxy(loop_thread, tmp_path, **options)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.stop()


def services(a: EchoBackend, b: EchoBackend) -> str:
    return service("svc-a", [a.port]) + "---\n" + service("svc-b", [b.port])


def test_a_reload_swaps_the_table_and_in_flight_requests_finish_on_the_old_one(proxy_factory, two):
    a, b = two
    port = free_port()
    proxy = proxy_factory()
    proxy.write(services(a, b), "services.yaml")
    proxy.write(config(port, "svc-a"))
    proxy.start()
    url = f"http://127.0.0.1:{port}"
    slow: dict[str, httpx.Response] = {}

    def in_flight() -> None:
        with httpx.Client(timeout=10) as c:
            slow["response"] = c.get(f"{url}/sleep/600")

    thread = threading.Thread(target=in_flight)
    thread.start()
    time.sleep(0.2)  # the slow request is now at backend a
    proxy.write(config(port, "svc-b"))
    assert proxy.reload()
    with httpx.Client(timeout=10) as c:
        after = c.get(f"{url}/new")
    thread.join(10)
    assert slow["response"].headers["x-backend"] == "a"
    assert after.headers["x-backend"] == "b"
    assert proxy.runtime.generation == 2


def test_a_bad_change_is_reported_and_the_old_config_keeps_serving(proxy_factory, two):
    a, b = two
    port = free_port()
    proxy = proxy_factory()
    proxy.write(services(a, b), "services.yaml")
    proxy.write(config(port, "svc-a"))
    proxy.start()
    proxy.write(
        config(port, "svc-b").replace("kind: HTTPRoute", "kind: HTTPRoute\nspec: [not, a, map]")
    )
    assert not proxy.reload()
    assert any("reload rejected" in m for m in proxy.messages)
    assert proxy.runtime.last_reload["ok"] is False
    with httpx.Client(timeout=10) as c:
        assert c.get(f"http://127.0.0.1:{port}/").headers["x-backend"] == "a"
    assert proxy.runtime.generation == 1


def test_watch_reloads_on_a_manifest_change_and_opens_and_closes_listeners(proxy_factory, two):
    a, b = two
    port, extra = free_port(), free_port()
    proxy = proxy_factory(watch=True, watch_interval=0.05)
    proxy.write(services(a, b), "services.yaml")
    proxy.write(config(port, "svc-a"))
    proxy.start()
    time.sleep(0.1)
    proxy.write(config(port, "svc-b", extra_port=extra))
    deadline = time.monotonic() + 10
    while proxy.runtime.generation < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(timeout=10) as c:
        assert c.get(f"http://127.0.0.1:{port}/").headers["x-backend"] == "b"
        assert c.get(f"http://127.0.0.1:{extra}/").headers["x-backend"] == "b"
    proxy.write(config(port, "svc-b"))
    deadline = time.monotonic() + 10
    while proxy.runtime.generation < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(timeout=2) as c, pytest.raises(httpx.ConnectError):
        c.get(f"http://127.0.0.1:{extra}/")


def test_admin_endpoint_serves_counters_metrics_and_config(proxy_factory, two):
    a, b = two
    port = free_port()
    proxy = proxy_factory(admin="127.0.0.1:0")
    proxy.write(services(a, b), "services.yaml")
    proxy.write(config(port, "svc-a"))
    proxy.start()
    assert proxy.runtime.admin_address is not None
    admin = f"http://127.0.0.1:{proxy.runtime.admin_address[1]}"
    with httpx.Client(timeout=10) as c:
        for _ in range(3):
            c.get(f"http://127.0.0.1:{port}/x")
        c.get(f"http://127.0.0.1:{port}/status/503")
        stats = c.get(f"{admin}/stats").json()
        metrics = c.get(f"{admin}/metrics").text
        cfg = c.get(f"{admin}/config").json()
        health = c.get(f"{admin}/healthz")
    assert stats["requests"][f"default/gw:{port} HTTP/1.1"] == 4
    assert stats["responses_by_status"] == {"200": 3, "503": 1}
    assert stats["upstream_latency"]["count"] == 4
    assert (
        f'netlet_proxy_requests_total{{listener="default/gw:{port}",protocol="HTTP/1.1"}} 4'
        in metrics
    )
    assert 'netlet_proxy_responses_total{code="503"} 1' in metrics
    assert cfg["listeners"] == [
        {
            "gateway": "default/gw",
            "kind": "http",
            "port": port,
            "transport": "tcp",
            "bound": f"127.0.0.1:{port}",
        }
    ]
    assert health.text == "ok\n"


def test_access_log_has_one_json_line_per_request(proxy_factory, two, tmp_path):
    a, b = two
    port = free_port()
    log_path = tmp_path / "access.log"
    proxy = proxy_factory(access_log=str(log_path))
    proxy.write(services(a, b), "services.yaml")
    proxy.write(config(port, "svc-a"))
    proxy.start()
    with httpx.Client(timeout=10) as c:
        c.get(f"http://127.0.0.1:{port}/logged?q=1", headers={"host": "shop.example.com"})
    proxy.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert record["method"] == "GET"
    assert record["path"] == "/logged?q=1"
    assert record["authority"] == "shop.example.com"
    assert record["status"] == 200
    assert record["route"] == "HTTPRoute default/r rules[0]"
    assert record["upstream"] == f"127.0.0.1:{a.port}"
    assert record["gateway"] == "default/gw"
    assert record["protocol"] == "HTTP/1.1"


def test_loopback_mode_does_not_send_to_endpoints_outside_loopback(proxy_factory):
    port = free_port()
    proxy = proxy_factory()
    proxy.write(
        manifests(
            gateway(f"- {{name: http, port: {port}, protocol: HTTP}}"),
            """\
apiVersion: v1
kind: Service
metadata: {name: far, namespace: default}
spec:
  ports: [{name: p, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: far-1, namespace: default, labels: {kubernetes.io/service-name: far}}
addressType: IPv4
endpoints: [{addresses: [192.0.2.10]}]
ports: [{name: p, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: far, port: 80}]
""",
        )
    )
    proxy.start()
    with httpx.Client(timeout=10) as c:
        response = c.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 503
    assert "outside loopback" in response.text
