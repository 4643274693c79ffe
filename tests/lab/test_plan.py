"""The lab plan: names, addresses, routes and the checks made before anything is created.
Pure: runs without root."""

from __future__ import annotations

import ipaddress
import json

import pytest

from netlet.dataplane.lab import names
from netlet.dataplane.lab.errors import LabError
from netlet.dataplane.lab.plan import Route, make_plan, plan_from_json
from tests.lab.manifests import TWO_BY_THREE, load_state

# Names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ok",
    [
        ("lab", True),
        ("t1a2b3c4", True),
        ("a" * 12, True),
        ("a" * 13, False),
        ("my-lab", False),  # a dash would make one lab's prefix another's
        ("Lab", False),
        ("1lab", False),
        ("", False),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else ("accepted" if v else "rejected"),
)
def test_lab_names_are_lowercase_alphanumerics_without_dashes(name: str, ok: bool) -> None:
    if ok:
        assert names.check_lab_name(name) == name
    else:
        with pytest.raises(names.LabNameError):
            names.check_lab_name(name)


def test_one_labs_namespace_prefix_is_never_a_prefix_of_another_labs_names() -> None:
    a, ab = names.netns_prefix("a"), names.node_netns("ab", "n")
    assert not ab.startswith(a)


@pytest.mark.parametrize(
    "key",
    [("node", "node-1"), ("node", "x" * 253), ("external",), ("bridge",)],
    ids=["a short node name", "a 253-character node name", "the external leg", "the bridge"],
)
def test_interface_names_fit_ifnamsiz_and_carry_the_lab_prefix(key: tuple[str, ...]) -> None:
    name = names.ifname("lab", *key)
    assert len(name) <= 15
    assert name.startswith(names.ifname_prefix("lab"))
    assert name != names.ifname("other", *key)


def test_long_pod_names_are_hashed_into_bounded_distinct_namespace_names() -> None:
    a = names.pod_netns("lab", "ns", "p" * 250)
    b = names.pod_netns("lab", "ns", "p" * 249 + "q")
    assert len(a) <= names.MAX_NETNS_NAME and len(b) <= names.MAX_NETNS_NAME
    assert a != b and a.startswith("netlet-lab-pod-")


def test_namespace_and_pod_name_cannot_collide_across_the_separator() -> None:
    # "a-b"/"c" and "a"/"b-c" would both be "a-b-c" with a dash separator.
    assert names.pod_netns("lab", "a-b", "c") != names.pod_netns("lab", "a", "b-c")


# The plan ---------------------------------------------------------------------------------


def test_every_pod_gets_its_own_namespace_on_its_node_with_the_ip_the_state_assigned() -> None:
    state = load_state(TWO_BY_THREE)
    plan = make_plan(state, "lab")
    from netlet.resources.core import Pod

    pods = state.list(Pod)
    assert len(plan.pods) == len(pods) == 6
    for pod in pods:
        planned = plan.pod(f"{pod.namespace}/{pod.name}")
        assert planned.node == pod.spec.node_name
        assert planned.ips == pod.ips
        assert planned.netns == names.pod_netns("lab", pod.namespace, pod.name)
        assert not planned.host_network


def test_nodes_route_each_others_pod_cidrs_via_node_ips_and_services_on_link() -> None:
    plan = make_plan(load_state(TWO_BY_THREE), "lab")
    a, b = plan.node("node-a"), plan.node("node-b")
    assert Route(b.pod_cidrs[0], b.ips[0]) in a.routes
    assert Route(a.pod_cidrs[0], a.ips[0]) in b.routes
    assert Route("10.96.0.0/12") in a.routes
    # Nothing leaves the lab: no default route anywhere.
    for routes in (a.routes, b.routes, plan.external.routes):
        assert all(ipaddress.ip_network(r.dst).prefixlen > 0 for r in routes)


def test_the_external_client_takes_the_highest_free_address_of_the_node_range() -> None:
    plan = make_plan(load_state(TWO_BY_THREE), "lab")
    assert plan.external.addresses == ("172.18.255.254/16",)
    assert all(ip != "172.18.255.254" for n in plan.nodes for ip in n.ips)


# Which ports speak HTTP: ports named http* (the issue), or a Service port with
# appProtocol http (Service.spec.ports[].appProtocol, Kubernetes "Application
# protocol" docs) whose targetPort selects the container port.
HTTP_CASES = [
    ("http", None, True),
    ("http-admin", None, True),
    ("https", None, False),  # TLS: answered like plain TCP
    ("raw", None, False),
    ("raw", "http", True),
    (None, "http", True),
    ("raw", "kubernetes.io/h2c", False),
]


@pytest.mark.parametrize(
    "port_name, app_protocol, http",
    HTTP_CASES,
    ids=[
        "a port named http serves HTTP",
        "a port named http-admin serves HTTP",
        "a port named https does not",
        "a plain named port does not",
        "appProtocol http on a Service makes a named target port HTTP",
        "appProtocol http on a Service makes a numbered target port HTTP",
        "appProtocol h2c is not HTTP/1.1",
    ],
)
def test_http_ports_follow_names_and_service_app_protocol(
    port_name: str | None, app_protocol: str | None, http: bool
) -> None:
    name_line = f"name: {port_name}, " if port_name else ""
    target = port_name if port_name else 9000
    app = f", appProtocol: {app_protocol}" if app_protocol else ""
    text = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p, labels: {{app: p}}}}
spec:
  containers:
  - name: c
    ports: [{{{name_line}containerPort: 9000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: s}}
spec:
  selector: {{app: p}}
  ports: [{{port: 80, targetPort: {target}{app}}}]
"""
    plan = make_plan(load_state(text), "lab")
    (port,) = plan.pod("default/p").ports
    assert port.http is http


def test_host_network_pods_live_in_their_nodes_namespace_with_the_node_ips() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
"""
    plan = make_plan(load_state(text), "lab")
    pod = plan.pod("kube-system/agent")
    node = plan.node(pod.node)
    assert pod.host_network and pod.netns == node.netns and pod.ips == node.ips


CLASH_CASES = [
    (
        """
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
""",
        "port clash: Pod default/b declares 9100/TCP, already served in node node-1's network by Pod default/a",
    ),
    (
        """
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  containers:
  - {name: one, ports: [{containerPort: 80}]}
  - {name: two, ports: [{containerPort: 80}]}
""",
        "port clash: Pod default/a declares 80/TCP, already served in the pod by Pod default/a",
    ),
]


@pytest.mark.parametrize(
    "text, message",
    CLASH_CASES,
    ids=[
        "two host-network pods on one node with the same port clash",
        "two containers of one pod with the same port clash",
    ],
)
def test_port_clashes_are_refused_before_anything_is_created(text: str, message: str) -> None:
    with pytest.raises(LabError) as info:
        make_plan(load_state(text), "lab")
    assert message in str(info.value)


def test_the_same_port_on_tcp_and_udp_is_not_a_clash() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: dns}
spec:
  containers:
  - name: c
    ports: [{containerPort: 53}, {containerPort: 53, protocol: UDP}]
"""
    plan = make_plan(load_state(text), "lab")
    assert [p.label for p in plan.pod("default/dns").ports] == ["53/TCP", "53/UDP"]


def test_a_pod_ip_outside_its_nodes_pod_cidr_is_refused_with_the_reason() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: odd}
spec:
  containers: [{name: c}]
status: {podIP: 192.168.7.7}
"""
    with pytest.raises(
        LabError, match=r"Pod default/odd: IP 192\.168\.7\.7 is outside node node-1's podCIDRs"
    ):
        make_plan(load_state(text), "lab")


def test_load_balancer_ips_route_from_the_external_client_to_a_node_with_a_local_endpoint() -> None:
    # externalTrafficPolicy Local: only nodes with an endpoint may receive the traffic
    # (Kubernetes docs, "Service", Traffic policies / External traffic policy).
    text = """
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
metadata: {name: backend, labels: {app: b}}
spec:
  nodeName: n2
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: b}
  ports: [{port: 80}]
status:
  loadBalancer: {ingress: [{ip: 172.19.0.10}]}
"""
    plan = make_plan(load_state(text), "lab")
    assert Route("172.19.0.10/32", plan.node("n2").ips[0]) in plan.external.routes
    (svc,) = plan.services
    assert svc.load_balancer_ips == ("172.19.0.10",)
    assert svc.ports[0].node_port is not None


def test_the_plan_round_trips_through_json() -> None:
    plan = make_plan(load_state(TWO_BY_THREE), "lab")
    again = plan_from_json(plan.to_json())
    assert again == plan
    assert json.loads(again.to_json()) == json.loads(plan.to_json())
