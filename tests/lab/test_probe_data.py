"""Probe targets, outcome classification and the workload's answers, as data (no root)."""

from __future__ import annotations

import errno

import h11
import pytest

from netlet.dataplane.lab import probe, workload
from netlet.dataplane.lab.plan import make_plan
from netlet.dataplane.lab.probe import Outcome, PortFilter, Target, TargetKind
from tests.lab.manifests import load_state

SERVICES = """
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  externalIPs: [192.0.2.10]
  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP}]
status:
  loadBalancer: {ingress: [{ip: 172.19.0.10}]}
"""


def _plan():  # type: ignore[no-untyped-def]
    return make_plan(load_state(SERVICES), "lab")


def test_targets_cover_pod_ips_cluster_ips_node_ports_on_every_node_lb_and_external_ips() -> None:
    targets = probe.select_targets(_plan(), "all")
    kinds = sorted({t.kind for t in targets})
    assert kinds == sorted(k.value for k in TargetKind)
    pods = [t for t in targets if t.kind == TargetKind.POD]
    assert [(t.port, t.protocol, t.http) for t in pods] == [(8080, "TCP", True), (53, "UDP", False)]
    node_ports = [t for t in targets if t.kind == TargetKind.NODE_PORT]
    assert sorted(t.node for t in node_ports) == ["n1", "n1", "n2", "n2"]
    assert {t.service_port for t in node_ports} == {80, 53}
    assert {t.address for t in targets if t.kind == TargetKind.LOAD_BALANCER} == {"172.19.0.10"}
    assert {t.address for t in targets if t.kind == TargetKind.EXTERNAL_IP} == {"192.0.2.10"}


@pytest.mark.parametrize(
    "to, ports, count",
    [
        ("pods", None, 2),
        ("services", None, 2 + 4 + 2 + 2),
        ("all", None, 12),
        ("all", "http", 1 + 1 + 2 + 1 + 1),
        ("all", "53/udp", 1 + 1 + 2 + 1 + 1),
        ("services", "80", 1 + 2 + 1 + 1),
        ("pods", "9999", 0),
    ],
    ids=[
        "pods only",
        "services: cluster IP, node ports on both nodes, LB and external IP",
        "everything",
        "a port name selects pod and service ports of that name",
        "a number with a protocol",
        "a service port number also selects its node ports",
        "an unknown port selects nothing",
    ],
)
def test_to_and_ports_choose_the_targets(to: str, ports: str | None, count: int) -> None:
    assert len(probe.select_targets(_plan(), to, PortFilter.parse(ports))) == count


def test_sources_are_every_pod_and_the_external_client() -> None:
    sources = probe.select_sources(_plan())
    assert [(s.name, s.kind) for s in sources] == [("default/web", "pod"), ("external", "external")]


# What the client saw -> outcome. Linux reports an RST as ECONNREFUSED and ICMP
# unreachable as ECONNREFUSED (port), EHOSTUNREACH (host, admin-prohibited) or
# ENETUNREACH (net); a local netfilter drop of an outgoing packet as EPERM.
@pytest.mark.parametrize(
    "err, outcome",
    [
        (errno.ECONNREFUSED, Outcome.REFUSED),
        (errno.EHOSTUNREACH, Outcome.REFUSED),
        (errno.ENETUNREACH, Outcome.REFUSED),
        (errno.EPERM, Outcome.TIMEOUT),
        (errno.EADDRNOTAVAIL, Outcome.ERROR),
    ],
    ids=[
        "a reset or port unreachable is a reject",
        "host unreachable is a reject",
        "no route is a reject",
        "a local filter drop is a drop",
        "a local address problem is an error of the probe",
    ],
)
def test_socket_errors_classify_as_reject_drop_or_error(err: int, outcome: Outcome) -> None:
    got, reason = probe._classify(OSError(err, "x"))
    assert got is outcome and reason == errno.errorcode[err]


def test_a_plain_answer_is_the_pod_name_on_the_first_line() -> None:
    assert probe.parse_reply(b"web-0\n") == ("web-0", None, None)
    assert probe.parse_reply(b"") == (None, None, None)


def _http_exchange(target: str, headers: list[tuple[str, str]]) -> bytes:
    """Build a request with h11 and answer it with the workload's echo."""
    ident = workload.Identity({"name": "web-0", "namespace": "shop", "node": "n1"})
    request = h11.Request(method="POST", target=target, headers=headers)
    body = workload.echo_body(ident, request, ("10.244.0.9", 40000), ("10.244.1.5", 8080), 3)
    server = h11.Connection(h11.SERVER)
    server.receive_data(
        h11.Connection(h11.CLIENT).send(request) or b""
    )  # put the server in SEND_RESPONSE
    server.next_event()
    out = server.send(h11.Response(status_code=200, headers=[("content-length", str(len(body)))]))
    return (
        (out or b"")
        + (server.send(h11.Data(data=body)) or b"")
        + (server.send(h11.EndOfMessage()) or b"")
    )


def test_the_http_echo_reports_request_client_server_and_pod() -> None:
    data = _http_exchange("/a/b?x=1&x=2&y=", [("Host", "svc:80"), ("X-Test", "1"), ("X-Test", "2")])
    who, status, echo = probe.parse_reply(data)
    assert (who, status) == ("web-0", 200)
    assert echo is not None
    assert echo["method"] == "POST" and echo["path"] == "/a/b"
    assert echo["query"] == {"x": ["1", "2"], "y": [""]}
    assert echo["host"] == "svc:80" and echo["headers"]["x-test"] == "1, 2"
    assert echo["client"] == {"ip": "10.244.0.9", "port": 40000}
    assert echo["server"] == {"ip": "10.244.1.5", "port": 8080}
    assert (echo["pod"], echo["namespace"], echo["node"], echo["bodyLength"]) == (
        "web-0",
        "shop",
        "n1",
        3,
    )


@pytest.mark.parametrize(
    "datagram, answer",
    [
        (b"hostname", b"web-0"),
        (b"anything", b"web-0"),
        (b"clientip", b"10.244.0.9:40000"),
        (b"echo hello", b"hello"),
    ],
    ids=[
        "hostname answers the pod name",
        "any other datagram answers the pod name",
        "clientip answers the client address the server saw",
        "echo answers its argument",
    ],
)
def test_udp_answers_like_agnhost_netexec(datagram: bytes, answer: bytes) -> None:
    ident = workload.Identity({"name": "web-0", "namespace": "shop", "node": "n1"})
    assert workload.udp_answer(ident, datagram, ("10.244.0.9", 40000)) == answer


def test_the_matrix_maps_outcomes_to_verdicts_and_counts_them() -> None:
    t1 = Target("pod", "a/b", "10.0.0.1", 80, "TCP")
    t2 = Target("pod", "a/b", "10.0.0.1", 81, "TCP")
    t3 = Target("pod", "a/b", "10.0.0.1", 82, "TCP")
    results = (
        probe.ProbeResult("s", t1, Outcome.CONNECTED, reply="b"),
        probe.ProbeResult("s", t2, Outcome.REFUSED, "ECONNREFUSED"),
        probe.ProbeResult("s", t3, Outcome.TIMEOUT, "timeout"),
    )
    matrix = probe.ProbeMatrix((), (t1, t2, t3), results, 1.0, 0.1)
    assert matrix.verdicts() == {("s", t1): "allow", ("s", t2): "reject", ("s", t3): "drop"}
    assert matrix.summary() == {"connected": 1, "refused": 1, "timeout": 1, "error": 0}
    assert matrix.connected() == frozenset({("s", t1)})
    assert matrix.get("s", t2).reason == "ECONNREFUSED"
    assert matrix.as_dict()["results"][0]["verdict"] == "allow"
