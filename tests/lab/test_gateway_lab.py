"""Gateways in the node lab, for real (root): `up` puts each Gateway's proxy in a
namespace of its own at the Gateway's addresses; requests from the external client
and from pods reach the pods the routes choose, at their pod IPs, as the lab
workload's HTTP echo shows (which pod, what path and headers it received).

Spec: Gateway API apis/v1 gateway_types.go (GatewaySpec.Addresses, Listener,
TLS mode Terminate with certificateRefs, SNI selecting the listener),
httproute_types.go (PathPrefix and header matches, rule order); RFC 7239-style
X-Forwarded-For carries the client the Gateway saw. The lab's contract is
docs/architecture.md "Node lab": supervised, visible in status, removed and
verified gone by down.

Each test gets a lab of its own (`t` + random hex) removed in a `finally`.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from netlet.dataplane.lab import kernel, names
from netlet.dataplane.lab.lab import Lab, down
from tests.lab.manifests import load_state
from tests.lab.test_gateway_plan import HOSTNAME, INSIDE, OUTSIDE, shop, tls_secret

pytestmark = pytest.mark.root


def get(
    netns: str,
    address: str,
    path: str,
    *,
    port: int = 80,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """One request made from inside `netns` (the socket is created there)."""
    with kernel.entered(names.netns_path(netns)):
        sock = socket.create_connection((address, port), timeout=5)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=HOSTNAME)
        head = f"GET {path} HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall((head + "\r\n").encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    finally:
        sock.close()
    echo = json.loads(body) if response.getheader("content-type") == "application/json" else None
    return response.status, echo


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def secret(ca: trustme.CA) -> str:
    return tls_secret(ca)


@pytest.fixture(scope="module")
def shop_lab(secret: str) -> Iterator[Lab]:
    name = "t" + secrets.token_hex(4)
    try:
        with Lab.up(load_state(shop(secret)), name) as lab:
            yield lab
    finally:
        down(name)


def _ip(lab: Lab, who: str) -> str:
    if who == "external":
        return lab.plan.external.ips[0]
    return lab.plan.pod(who).ips[0]


# (client, Gateway address, port, path, headers) -> (status, pod that answered, path it saw)
# - HTTPRoute matches, in order: PathPrefix /a -> svc-a (pod web-a), PathPrefix /b or
#   header x-pod: b -> svc-b (pod web-b); no match -> 404 from the Gateway itself.
# - HTTPS: the listener's certificate for shop.test, chosen by SNI, verified by the client.
ROUTED = [
    pytest.param("external", OUTSIDE, 80, "/a/x?q=1", {}, 200, "web-a", "/a/x", id="external to the outside address, path /a: pod web-a"),
    pytest.param("external", INSIDE, 80, "/b", {}, 200, "web-b", "/b", id="external to the on-link address, path /b: pod web-b"),
    pytest.param("external", OUTSIDE, 80, "/other", {"x-pod": "b"}, 200, "web-b", "/other", id="a header match routes to pod web-b"),
    pytest.param("external", OUTSIDE, 80, "/nothing", {}, 404, None, None, id="no rule matches: the Gateway answers 404"),
    pytest.param("external", OUTSIDE, 443, "/a/tls", {}, 200, "web-a", "/a/tls", id="HTTPS terminated with the listener's certificate: pod web-a"),
    pytest.param("shop/web-a", OUTSIDE, 80, "/b/from-pod", {}, 200, "web-b", "/b/from-pod", id="a pod on node-a reaches pod web-b on node-b through the Gateway"),
    pytest.param("shop/web-b", INSIDE, 443, "/a/pod-tls", {}, 200, "web-a", "/a/pod-tls", id="a pod reaches the Gateway over HTTPS too"),
]  # fmt: skip


@pytest.mark.parametrize("source, address, port, path, headers, status, pod, seen_path", ROUTED)
def test_requests_to_the_gateway_land_on_the_pod_the_route_chooses(
    shop_lab: Lab, ca: trustme.CA, source, address, port, path, headers, status, pod, seen_path
) -> None:
    tls = None
    if port == 443:
        tls = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    got, echo = get(shop_lab.netns(source), address, path, port=port, headers=headers, tls=tls)
    assert got == status
    if pod is None:
        assert echo is None
        return
    assert echo is not None
    assert (echo["pod"], echo["namespace"], echo["path"]) == (pod, "shop", seen_path)
    assert echo["host"] == HOSTNAME
    # The backend was reached at its pod IP, by the proxy in the Gateway's namespace,
    # which tells it who the client was.
    assert echo["server"]["ip"] == shop_lab.plan.pod(f"shop/{pod}").ips[0]
    assert echo["client"]["ip"] in (OUTSIDE, INSIDE)
    assert echo["headers"]["x-forwarded-for"] == _ip(shop_lab, source)
    assert echo["headers"]["x-forwarded-proto"] == ("https" if tls else "http")
    for name, value in headers.items():
        assert echo["headers"][name] == value


def test_the_gateway_namespace_has_its_addresses_and_no_way_out(shop_lab: Lab) -> None:
    status = shop_lab.status()
    (gateway,) = status.gateways
    assert gateway.gateway == "shop/web"
    assert set(gateway.addresses) == {f"{OUTSIDE}/32", f"{INSIDE}/16"}
    routes = shop_lab.exec("gateway/shop/web", ["ip", "-4", "route", "show"]).stdout
    assert "default" not in routes
    for node in shop_lab.plan.nodes:
        assert f"{node.pod_cidrs[0]} via {node.ips[0]}" in routes
    # Every node (and the external client) has its host route to the outside address.
    for who in ("node/node-a", "node/node-b", "external"):
        assert f"{OUTSIDE} dev eth0" in shop_lab.exec(who, ["ip", "route"]).stdout


def test_the_proxy_is_supervised_restarted_and_shown_in_status(shop_lab: Lab) -> None:
    before = shop_lab.status().gateway("shop/web")
    assert before.healthy and before.pid is not None
    assert {s.split(" ", 1)[0] for s in before.port_states} == {"80/TCP", "443/TCP"}
    os.kill(before.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = shop_lab.status().gateway("shop/web")
        if after.healthy and after.pid != before.pid:
            break
        time.sleep(0.05)
    assert after.healthy and after.pid != before.pid
    assert after.restarts == before.restarts + 1
    assert after.last_exit == "killed by SIGKILL"
    assert get(shop_lab.netns("external"), OUTSIDE, "/a")[0] == 200


def test_up_keeps_a_gateway_replaces_a_changed_one_removes_a_gone_one_and_down_cleans_up(
    secret: str, lab_name: str
) -> None:
    # Only the address outside the node range: reached by host routes alone.
    manifests = shop(secret, addresses=(OUTSIDE,))
    lab = Lab.up(load_state(manifests), lab_name)
    first = lab.status().gateway("shop/web")
    assert first.addresses == (f"{OUTSIDE}/32",)
    assert get(lab.netns("external"), OUTSIDE, "/b")[1]["pod"] == "web-b"  # type: ignore[index]
    assert get(lab.netns("shop/web-a"), OUTSIDE, "/b")[1]["pod"] == "web-b"  # type: ignore[index]
    netns = first.netns
    inode = kernel.netns_inode(netns)
    # The same manifests again: nothing to do, the proxy keeps running.
    lab = Lab.up(load_state(manifests), lab_name)
    again = lab.status().gateway("shop/web")
    assert (again.pid, kernel.netns_inode(netns)) == (first.pid, inode)
    # A changed route: a new program, so a new proxy; /b now goes to pod web-a.
    lab = Lab.up(load_state(shop(secret, b_service="svc-a", addresses=(OUTSIDE,))), lab_name)
    changed = lab.status().gateway("shop/web")
    assert changed.healthy and changed.pid != first.pid
    assert get(lab.netns("external"), OUTSIDE, "/b")[1]["pod"] == "web-a"  # type: ignore[index]
    # The Gateway removed from the manifests: its namespace and its routes go.
    lab = Lab.up(load_state(shop(secret, with_gateway=False)), lab_name)
    assert lab.status().gateways == ()
    assert not kernel.netns_exists(netns)
    assert OUTSIDE not in lab.exec("node/node-a", ["ip", "route"]).stdout
    # And down leaves nothing of the lab (Gateway namespaces included).
    lab = Lab.up(load_state(manifests), lab_name)
    proxy_pid = lab.status().gateway("shop/web").pid
    lab.down()
    assert kernel.list_netns(names.netns_prefix(lab_name)) == []
    assert proxy_pid is not None and not kernel.pid_alive(proxy_pid)
    assert not names.lab_dir(lab_name).exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert names.ifname_prefix(lab_name) not in links.stdout
