"""Route attachment and the route's Accepted condition per parentRef.

Spec: shared_types.go ParentReference (sectionName and port select listeners;
"If 1 of 2 Gateway listeners accept attachment from the referencing Route, the
Route MUST be considered successfully attached"), RouteConditionReason
(NotAllowedByListeners, NoMatchingListenerHostname, NoMatchingParent,
UnsupportedValue), RouteStatus.Parents ("parent references that cannot be
resolved ... will not be added to this list"), gateway_types.go AllowedRoutes /
RouteNamespaces (From All, Same, Selector) and ListenerStatus.AttachedRoutes.
Conformance names: HTTPRouteInvalidParentRefNotMatchingSectionName,
HTTPRouteInvalidParentRefNotMatchingListenerPort,
HTTPRouteInvalidCrossNamespaceParentRef, GatewayWithAttachedRoutes.
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from tests.gateway.manifests import gateway, http_route, route, world

TWO_LISTENERS = gateway(
    """
    - name: same
      port: 80
      protocol: HTTP
    - name: selected
      port: 8080
      protocol: HTTP
      allowedRoutes:
        namespaces: {from: Selector, selector: {matchLabels: {exposed: "yes"}}}
    - name: grpc-only
      port: 9090
      protocol: HTTP
      allowedRoutes:
        namespaces: {from: All}
        kinds: [{kind: GRPCRoute}]
    - name: tcp
      port: 5432
      protocol: TCP
      allowedRoutes: {namespaces: {from: All}}
    - name: no-selector
      port: 8081
      protocol: HTTP
      allowedRoutes: {namespaces: {from: Selector}}
    """
)


def _accepted(parents: str, namespace: str = "app", kind: str = "HTTPRoute") -> tuple[str, str]:
    if kind == "HTTPRoute":
        doc = http_route(parents=parents, namespace=namespace)
    elif kind == "TLSRoute":
        doc = route(
            f"parentRefs: {parents}\nhostnames: [a.example.com]\nrules: [{{backendRefs: [{{name: web, port: 80}}]}}]",
            namespace=namespace,
            kind=kind,
        )
    else:
        doc = route(
            f"parentRefs: {parents}\nrules: [{{backendRefs: [{{name: web, port: 80}}]}}]",
            namespace=namespace,
            kind=kind,
        )
    w = world(TWO_LISTENERS, doc)
    (status,) = w.routes
    (parent,) = status.parents
    accepted = parent.condition(ConditionType.ACCEPTED)
    assert accepted is not None
    return accepted.status, accepted.reason.value


@pytest.mark.parametrize(
    ("parents", "namespace", "kind", "expected"),
    [
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: nope}]",
            "app",
            "HTTPRoute",
            ("False", "NoMatchingParent"),
            id="a sectionName naming no listener is NoMatchingParent",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, port: 81}]",
            "app",
            "HTTPRoute",
            ("False", "NoMatchingParent"),
            id="a port no listener uses is NoMatchingParent",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: selected, port: 80}]",
            "app",
            "HTTPRoute",
            ("False", "NoMatchingParent"),
            id="sectionName and port must both match one listener",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: selected, port: 8080}]",
            "app",
            "HTTPRoute",
            ("True", "Accepted"),
            id="sectionName and port naming the same listener are accepted",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: same}]",
            "app",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="a route from another namespace is refused by from Same",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: same}]",
            "infra",
            "HTTPRoute",
            ("True", "Accepted"),
            id="a route in the Gateway namespace is admitted by from Same",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: selected}]",
            "app",
            "HTTPRoute",
            ("True", "Accepted"),
            id="a namespace whose labels match the selector is admitted",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: selected}]",
            "other",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="a namespace the selector does not match is refused",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: no-selector}]",
            "app",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="from Selector without a selector admits nothing",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: grpc-only}]",
            "app",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="allowedRoutes kinds excluding HTTPRoute refuse it",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: tcp}]",
            "app",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="an HTTPRoute cannot attach to a TCP listener",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: tcp}]",
            "app",
            "TCPRoute",
            ("True", "Accepted"),
            id="a TCPRoute attaches to a TCP listener",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: grpc-only}]",
            "app",
            "TCPRoute",
            ("False", "NotAllowedByListeners"),
            id="a TCPRoute cannot attach to an HTTP listener",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, sectionName: grpc-only}]",
            "app",
            "TLSRoute",
            ("False", "UnsupportedValue"),
            id="a TLSRoute on a non-TLS listener is UnsupportedValue",
        ),
        pytest.param(
            "[{name: gw, namespace: infra}]",
            "app",
            "HTTPRoute",
            ("True", "Accepted"),
            id="one admitting listener of several is enough",
        ),
        pytest.param(
            "[{name: gw, namespace: infra}]",
            "other",
            "HTTPRoute",
            ("False", "NotAllowedByListeners"),
            id="no admitting listener at all is NotAllowedByListeners",
        ),
    ],
)
def test_attachment_reason(
    parents: str, namespace: str, kind: str, expected: tuple[str, str]
) -> None:
    assert _accepted(parents, namespace, kind) == expected


def test_parent_namespace_defaults_to_the_route_namespace() -> None:
    # ParentReference.Namespace: "When unspecified, this refers to the local namespace".
    w = world(
        gateway("- {name: l, port: 80, protocol: HTTP}", namespace="app"),
        http_route(parents="[{name: gw}]"),
    )
    (parent,) = w.routes[0].parents
    assert parent.parent.to_api() == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "app",
        "name": "gw",
    }
    assert parent.accepted


@pytest.mark.parametrize(
    "parents",
    [
        pytest.param(
            "[{name: missing, namespace: infra}]",
            id="a Gateway that does not exist gets no parent status",
        ),
        pytest.param(
            "[{name: theirs, namespace: infra}]",
            id="another controller's Gateway gets no parent status",
        ),
        pytest.param(
            "[{name: gw, namespace: infra, kind: Widget, group: example.com}]",
            id="an unknown parent kind gets no parent status",
        ),
    ],
)
def test_parents_netlet_does_not_manage_are_not_in_status(parents: str) -> None:
    theirs = gateway("- {name: l, port: 80, protocol: HTTP}", name="theirs").replace(
        "gatewayClassName: netlet", "gatewayClassName: other-class"
    )
    w = world(TWO_LISTENERS, theirs, http_route(parents=parents))
    assert w.routes[0].parents == ()


def test_a_missing_parent_is_reported_as_a_note() -> None:
    w = world(TWO_LISTENERS, http_route(parents="[{name: missing, namespace: infra}]"))
    assert [(n.code, n.name) for n in w.notes] == [("route-parent-missing", "r")]


def test_each_parent_gets_its_own_status() -> None:
    w = world(
        TWO_LISTENERS,
        http_route(
            parents="[{name: gw, namespace: infra, sectionName: selected}, {name: gw, namespace: infra, sectionName: same}]"
        ),
    )
    results = [(p.parent.section_name, p.accepted) for p in w.routes[0].parents]
    assert results == [("selected", True), ("same", False)]


def test_attached_routes_counts_accepted_routes_per_listener() -> None:
    # ListenerStatus.AttachedRoutes: routes with Accepted=True attached to the listener.
    w = world(
        TWO_LISTENERS,
        http_route(name="a", parents="[{name: gw, namespace: infra}]"),
        http_route(name="b", parents="[{name: gw, namespace: infra, sectionName: selected}]"),
        http_route(name="c", namespace="other", parents="[{name: gw, namespace: infra}]"),
        http_route(name="d", namespace="infra", parents="[{name: gw, namespace: infra}]"),
    )
    gw = w.gateway("infra", "gw")
    assert gw is not None
    counts = {lst.name: lst.attached_routes for lst in gw.listeners}
    # a: selected (app labels match); b: selected; c: refused everywhere; d: same and selected?
    # infra has no "exposed" label, so d attaches to "same" only.
    assert counts == {"same": 1, "selected": 2, "grpc-only": 0, "tcp": 0, "no-selector": 0}


def test_observed_generation_is_the_object_generation() -> None:
    doc = http_route().replace(
        "metadata: {name: r, namespace: app}", "metadata: {name: r, namespace: app, generation: 7}"
    )
    w = world(TWO_LISTENERS.replace("namespace: infra}", "namespace: infra, generation: 3}"), doc)
    assert {c.observed_generation for c in w.routes[0].parents[0].conditions} == {7}
    gw = w.gateway("infra", "gw")
    assert gw is not None and {c.observed_generation for c in gw.conditions} == {3}


def test_a_gateway_whose_class_does_not_exist_keeps_the_crd_default_status() -> None:
    # Gateway.Status default: Accepted/Programmed Unknown, reason Pending.
    doc = gateway("- {name: l, port: 80, protocol: HTTP}").replace(
        "gatewayClassName: netlet", "gatewayClassName: nope"
    )
    w = world(doc)
    gw = w.gateway("infra", "gw")
    assert gw is not None and not gw.managed
    assert [(c.type.value, c.status, c.reason.value) for c in gw.conditions] == [
        ("Accepted", "Unknown", "Pending"),
        ("Programmed", "Unknown", "Pending"),
    ]
    assert [n.code for n in w.notes] == ["gateway-class-missing"]


def test_routes_in_the_status_carry_netlets_controller_name() -> None:
    w = world(TWO_LISTENERS, http_route(parents="[{name: gw, namespace: infra}]"))
    api = w.routes[0].to_api("2026-01-01T00:00:00Z")
    parent = api["status"]["parents"][0]
    assert parent["controllerName"] == "netlet.dev/gateway-controller"
    assert {c["lastTransitionTime"] for c in parent["conditions"]} == {"2026-01-01T00:00:00Z"}
