"""API server defaulting (pkg/apis/*/v1/defaults.go and the CRDs' defaults).

- metadata.namespace defaults to "default" for namespaced kinds;
- every Namespace carries kubernetes.io/metadata.name (NamespaceDefaultLabelName,
  GA in 1.22), and namespaces that objects reference are created;
- Service: protocol TCP, targetPort = port, type ClusterIP, sessionAffinity None
  with timeoutSeconds 10800 for ClientIP, externalTrafficPolicy Cluster for
  NodePort/LoadBalancer, internalTrafficPolicy Cluster;
- NetworkPolicy policyTypes: Ingress, plus Egress when egress rules exist
  (NetworkPolicySpec.policyTypes doc comment);
- Gateway API: HTTPRoute matches default to PathPrefix "/", backendRef kind
  Service and weight 1, listener allowedRoutes from Same, TLS mode Terminate.
"""

from __future__ import annotations

import pytest

from netlet.cluster.build import load_text
from netlet.resources.core import NAMESPACE_NAME_LABEL, Namespace, Service
from netlet.resources.gateway_api import Gateway, HTTPRoute
from netlet.resources.networking import NetworkPolicy


def _one(text: str, kind: type, namespace: str, name: str):  # type: ignore[no-untyped-def]
    result = load_text(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    obj = result.state.get(kind, namespace, name)
    assert obj is not None
    return obj


def test_namespace_defaults_to_default_and_namespaces_get_their_name_label() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n"
    )
    assert result.state.get(Service, "default", "web") is not None
    default = result.state.get(Namespace, "", "default")
    assert default is not None and default.labels == {NAMESPACE_NAME_LABEL: "default"}
    shop = result.state.get(Namespace, "", "shop")
    assert shop is not None and shop.labels == {"team": "a", NAMESPACE_NAME_LABEL: "shop"}


def test_cluster_scoped_kinds_ignore_a_namespace() -> None:
    ns = _one(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n", Namespace, "", "a"
    )
    assert ns.namespace == ""


SERVICE_DEFAULTS = [
    ("protocol", "ports: [{port: 80}]", lambda s: s.spec.ports[0].protocol == "TCP"),
    ("targetPort = port", "ports: [{port: 8443}]", lambda s: s.spec.ports[0].target_port == 8443),
    ("type ClusterIP", "ports: [{port: 80}]", lambda s: s.spec.type == "ClusterIP"),
    ("sessionAffinity None", "ports: [{port: 80}]", lambda s: s.spec.session_affinity == "None"),
    (
        "ClientIP affinity timeout 10800",
        "sessionAffinity: ClientIP\n  ports: [{port: 80}]",
        lambda s: s.spec.session_affinity_config.client_ip.timeout_seconds == 10800,
    ),
    (
        "externalTrafficPolicy Cluster for NodePort",
        "type: NodePort\n  ports: [{port: 80}]",
        lambda s: s.spec.external_traffic_policy == "Cluster",
    ),
    (
        "no externalTrafficPolicy for ClusterIP",
        "ports: [{port: 80}]",
        lambda s: s.spec.external_traffic_policy is None,
    ),
    (
        "internalTrafficPolicy Cluster",
        "ports: [{port: 80}]",
        lambda s: s.spec.internal_traffic_policy == "Cluster",
    ),
    (
        "single-stack IPv4 family",
        "ports: [{port: 80}]",
        lambda s: s.spec.ip_families == ("IPv4",) and s.spec.ip_family_policy == "SingleStack",
    ),
    (
        "LoadBalancer allocates node ports",
        "type: LoadBalancer\n  ports: [{port: 80}]",
        lambda s: (
            s.spec.allocate_load_balancer_node_ports is True
            and s.spec.ports[0].node_port is not None
        ),
    ),
    (
        "healthCheckNodePort for eTP Local LoadBalancer",
        "type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{port: 80}]",
        lambda s: (
            s.spec.health_check_node_port is not None
            and 30000 <= s.spec.health_check_node_port <= 32767
        ),
    ),
]


@pytest.mark.parametrize(
    ("spec", "check"), [c[1:] for c in SERVICE_DEFAULTS], ids=[c[0] for c in SERVICE_DEFAULTS]
)
def test_service_defaults(spec: str, check) -> None:  # type: ignore[no-untyped-def]
    svc = _one(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  {spec}\n",
        Service,
        "default",
        "web",
    )
    assert check(svc), svc.spec


def test_load_balancer_ingress_ip_mode_defaults_to_vip() -> None:
    svc = _one(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
        "status: {loadBalancer: {ingress: [{ip: 192.0.2.1}, {hostname: lb.example.com}]}}\n",
        Service,
        "default",
        "web",
    )
    assert [i.ip_mode for i in svc.status.load_balancer.ingress] == ["VIP", None]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("podSelector: {}", ("Ingress",)),
        ("podSelector: {}\n  ingress: [{}]", ("Ingress",)),
        ("podSelector: {}\n  egress: [{}]", ("Ingress", "Egress")),
        ("podSelector: {}\n  policyTypes: [Egress]", ("Egress",)),
        ("podSelector: {}\n  policyTypes: [Egress]\n  ingress: [{}]", ("Egress",)),
    ],
    ids=[
        "no rules means Ingress only",
        "ingress rules mean Ingress",
        "egress rules add Egress",
        "explicit Egress only is kept",
        "explicit types win over present rules",
    ],
)
def test_network_policy_policy_types_inference(spec: str, expected: tuple[str, ...]) -> None:
    np = _one(
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np}}\n"
        f"spec:\n  {spec}\n",
        NetworkPolicy,
        "default",
        "np",
    )
    assert np.spec.policy_types == expected


def test_gateway_api_defaults() -> None:
    text = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: netlet
  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}
"""
    result = load_text(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    route = result.state.get(HTTPRoute, "default", "r")
    assert route is not None
    rule = route.spec.rules[0]
    assert (rule.matches[0].path.type, rule.matches[0].path.value) == ("PathPrefix", "/")
    backend = rule.backend_refs[0]
    assert (backend.group, backend.kind, backend.weight) == ("", "Service", 1)
    parent = route.spec.parent_refs[0]
    assert (parent.group, parent.kind) == ("gateway.networking.k8s.io", "Gateway")
    gateway = result.state.get(Gateway, "default", "gw")
    assert gateway is not None
    listener = gateway.spec.listeners[0]
    assert listener.tls is not None and listener.tls.mode == "Terminate"
    assert listener.allowed_routes.namespaces.from_ == "Same"
    assert listener.tls.certificate_refs[0].kind == "Secret"
