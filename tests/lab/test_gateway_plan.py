"""Where the lab puts each Gateway: its namespace, addresses and routes (pure, no root).

Spec: Gateway API apis/v1 gateway_types.go GatewaySpec.Addresses ("requested
addresses for the Gateway") and GatewayStatus.Addresses ("network addresses that
have been bound to the Gateway"): the lab serves a Gateway at spec.addresses,
else at status.addresses; netlet assigns none itself. The lab's own rules (see
docs/architecture.md "Node lab"): nothing routes out of the lab, addresses in the
node range are on-link, others get host routes both ways.
"""

from __future__ import annotations

import base64
import ipaddress

import pytest
import trustme

from netlet.dataplane.lab import names
from netlet.dataplane.lab.gateways import gateway_addresses, plan_gateways
from netlet.dataplane.lab.plan import Route, make_plan
from netlet.gateway.build import build_programs
from netlet.resources.gateway_api import Gateway
from tests.lab.manifests import load_state

# Manifests (shared with test_gateway_lab.py): two nodes, one HTTP echo pod on each, a
# Service per pod, a netlet Gateway (HTTP and HTTPS listeners) and an HTTPRoute. The
# Gateway has one address outside the node range (192.0.2.20: host routes both ways)
# and one inside it (172.18.100.1: on-link), so one namespace exercises both.

OUTSIDE = "192.0.2.20"
INSIDE = "172.18.100.1"
HOSTNAME = "shop.test"

NODES_AND_PODS = """\
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: shop, labels: {app: web, pod: a}}
spec:
  nodeName: node-a
  containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, namespace: shop, labels: {app: web, pod: b}}
spec:
  nodeName: node-b
  containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-a, namespace: shop}
spec:
  selector: {pod: a}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-b, namespace: shop}
spec:
  selector: {pod: b}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: netlet}
spec: {controllerName: netlet.dev/gateway-controller}
"""

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: svc-a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /b}}, {headers: [{name: x-pod, value: b}]}]
    backendRefs: [{name: %(b_service)s, port: 80}]
"""


def tls_secret(ca: trustme.CA) -> str:
    cert = ca.issue_cert(HOSTNAME)
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    crt = base64.b64encode(chain).decode()
    key = base64.b64encode(cert.private_key_pem.bytes()).decode()
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: shop-tls, namespace: shop}\n"
        f"type: kubernetes.io/tls\ndata: {{tls.crt: {crt}, tls.key: {key}}}\n"
    )


def gateway(addresses: tuple[str, ...] = (OUTSIDE, INSIDE)) -> str:
    listed = ", ".join(f"{{type: IPAddress, value: {a}}}" for a in addresses)
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: shop}}
spec:
  gatewayClassName: netlet
  addresses: [{listed}]
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: {HOSTNAME}
    tls: {{mode: Terminate, certificateRefs: [{{name: shop-tls}}]}}
"""


def shop(
    secret: str,
    *,
    b_service: str = "svc-b",
    with_gateway: bool = True,
    addresses: tuple[str, ...] = (OUTSIDE, INSIDE),
) -> str:
    """The lab's manifests; `secret` is `tls_secret(ca)` (issued once: a new certificate
    is a new program)."""
    docs = [NODES_AND_PODS, secret, ROUTE % {"b_service": b_service}]
    if with_gateway:
        docs.append(gateway(addresses))
    return "---\n".join(docs)


# Planning ----------------------------------------------------------------------------


def _plan(gateway_doc: str):
    state = load_state(
        "---\n".join(
            [NODES_AND_PODS, tls_secret(trustme.CA()), ROUTE % {"b_service": "svc-b"}, gateway_doc]
        )
    )
    lab = make_plan(state, "lab")
    programs = dict(build_programs(state))
    gateways = {f"{g.namespace}/{g.name}": g for g in state.list(Gateway)}
    return lab, *plan_gateways(lab, programs, gateways, tuple(state.config.node_cidrs))


def test_an_address_outside_the_node_range_gets_host_routes_both_ways() -> None:
    lab, plans, warnings = _plan(gateway((OUTSIDE,)))
    assert warnings == []
    (gw,) = plans
    assert gw.gateway == "shop/web"
    assert gw.netns == names.gateway_netns("lab", "shop", "web")
    assert gw.addresses == (f"{OUTSIDE}/32",)
    node_ips = [ip for node in lab.nodes for ip in node.ips]
    # In the Gateway's namespace: every podCIDR via its node, host routes to the peers.
    for node in lab.nodes:
        assert Route(node.pod_cidrs[0], node.ips[0]) in gw.routes
    for ip in [*node_ips, *lab.external.ips]:
        assert Route(f"{ip}/32") in gw.routes
    # In every node namespace and the external one: a host route to the Gateway.
    peers = {netns for netns, _ in gw.peer_routes}
    assert peers == {n.netns for n in lab.nodes} | {lab.external.netns}
    assert {r for _, r in gw.peer_routes} == {Route(f"{OUTSIDE}/32")}
    # Nothing routes anywhere else: no default route, only lab addresses.
    assert all(r.dst != "0.0.0.0/0" for r in gw.routes)


def test_an_address_inside_the_node_range_is_on_link() -> None:
    lab, plans, _ = _plan(gateway((INSIDE,)))
    (gw,) = plans
    assert gw.addresses == (f"{INSIDE}/16",)
    assert gw.peer_routes == ()
    assert all(ipaddress.ip_network(r.dst).prefixlen != 32 for r in gw.routes)
    assert {r.dst for r in gw.routes} == {c for n in lab.nodes for c in n.pod_cidrs}


@pytest.mark.parametrize(
    "addresses, why",
    [
        pytest.param(("172.18.0.2",), "already node node-a's", id="a node's address is refused"),
        pytest.param(
            ("172.18.255.254",),
            "already the external client's",
            id="the external client's address is refused",
        ),
        pytest.param(
            ("10.244.1.77",),
            "inside node node-b's podCIDR",
            id="an address in a podCIDR is refused",
        ),
    ],
)
def test_addresses_the_lab_already_uses_are_not_served(addresses, why) -> None:
    _, plans, warnings = _plan(gateway(addresses))
    assert plans == []
    assert len(warnings) == 1 and why in warnings[0] and "shop/web" in warnings[0]


def test_a_gateway_without_an_address_is_reported_not_served() -> None:
    doc = gateway((OUTSIDE,)).replace(f"  addresses: [{{type: IPAddress, value: {OUTSIDE}}}]\n", "")
    _, plans, warnings = _plan(doc)
    assert plans == []
    assert warnings == [
        "Gateway shop/web: no address (spec.addresses or status.addresses); not served in the lab"
    ]


def test_status_addresses_serve_when_spec_has_none() -> None:
    doc = (
        gateway((OUTSIDE,)).replace(f"  addresses: [{{type: IPAddress, value: {OUTSIDE}}}]\n", "")
        + "status:\n  addresses: [{type: IPAddress, value: 198.51.100.7}]\n"
    )
    state = load_state(
        "---\n".join(
            [NODES_AND_PODS, tls_secret(trustme.CA()), ROUTE % {"b_service": "svc-b"}, doc]
        )
    )
    program = build_programs(state)["shop/web"]
    assert program.addresses == ()  # the brain programs spec.addresses only
    gateway_obj = state.get(Gateway, "shop", "web")
    assert gateway_addresses(gateway_obj, program) == ("198.51.100.7",)
    _, plans, _ = _plan(doc)
    assert plans[0].addresses == ("198.51.100.7/32",)
