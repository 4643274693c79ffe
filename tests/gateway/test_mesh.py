"""GAMMA: routes whose parentRef is a Service (producer and consumer routes).

Spec: GEP-1294 (xRoutes Mesh Binding): "Route presence" (routes replace the
implicit Service behaviour), "Allowed service types" (headless and ExternalName
SHOULD NOT be parents), "Ports" (parentRef.port selects one Service port, none =
all), "hostnames field" (not used by the mesh), "Namespace boundaries" (producer
routes apply to all clients, consumer routes only to their own namespace;
cross-namespace backendRefs need no ReferenceGrant), "Route types" (GRPCRoute
outranks HTTPRoute on one Service port; the loser is Accepted=False Conflicted);
shared_types.go ParentReference ("Service: Port name" for sectionName).
"""

from __future__ import annotations

import pytest

from netlet.gateway.conditions import ConditionType
from netlet.gateway.match import match_mesh
from netlet.gateway.table import Request
from tests.gateway.manifests import HTTP_ALL, http_route, route, world

SVC = "[{group: '', kind: Service, name: web, namespace: app}]"


def _mesh_route(
    name: str, namespace: str, backend: str, parents: str = SVC, hostnames: str | None = None
) -> str:
    return http_route(
        f"- backendRefs: [{backend}]",
        name=name,
        namespace=namespace,
        parents=parents,
        hostnames=hostnames,
    )


def _target(w_routes: object, client: str) -> str | None:
    decision = match_mesh(
        w_routes, client, "app", "web", 80, Request.from_url("GET", "http://web.app/x")
    )  # type: ignore[arg-type]
    if decision is None:
        return None
    if not decision.backends:
        return f"{decision.status}"
    return f"{decision.role}:{decision.backends[0].backend.key.name}"


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        pytest.param(
            "app", "producer:api", id="a client in the Service namespace uses the producer route"
        ),
        pytest.param(
            "infra", "producer:api", id="a client without consumer routes uses the producer route"
        ),
        pytest.param(
            "other", "consumer:remote", id="a client whose namespace has a consumer route uses it"
        ),
    ],
)
def test_producer_and_consumer_routes(client: str, expected: str) -> None:
    w = world(
        _mesh_route("producer", "app", "{name: api, port: 80}"),
        _mesh_route("consumer", "other", "{name: remote, port: 80}"),
    )
    assert _target(w.mesh, client) == expected


def test_without_routes_the_service_works_as_plain_kubernetes() -> None:
    w = world(_mesh_route("consumer", "other", "{name: remote, port: 80}"))
    assert _target(w.mesh, "app") is None


def test_routes_replace_the_service_so_an_unmatched_request_is_a_404() -> None:
    w = world(
        http_route(
            "- matches: [{path: {type: Exact, value: /only}}]\n  backendRefs: [{name: api, port: 80}]",
            parents=SVC,
        )
    )
    assert _target(w.mesh, "app") == "404"


@pytest.mark.parametrize(
    ("parents", "kind", "expected"),
    [
        pytest.param(SVC, "HTTPRoute", ("True", "Accepted"), id="a ClusterIP Service is a parent"),
        pytest.param(
            "[{group: '', kind: Service, name: web, namespace: app, port: 81}]",
            "HTTPRoute",
            ("False", "NoMatchingParent"),
            id="a port the Service lacks is NoMatchingParent",
        ),
        pytest.param(
            "[{group: '', kind: Service, name: api, namespace: app, sectionName: grpc}]",
            "HTTPRoute",
            ("True", "Accepted"),
            id="sectionName names a Service port",
        ),
        pytest.param(
            "[{group: '', kind: Service, name: api, namespace: app, sectionName: nope}]",
            "HTTPRoute",
            ("False", "NoMatchingParent"),
            id="a sectionName naming no port is NoMatchingParent",
        ),
        pytest.param(
            "[{group: '', kind: Service, name: ext, namespace: app}]",
            "HTTPRoute",
            ("False", "UnsupportedValue"),
            id="an ExternalName Service is not a parent",
        ),
        pytest.param(
            SVC,
            "TCPRoute",
            ("False", "UnsupportedValue"),
            id="netlet's mesh routes HTTP and gRPC only",
        ),
    ],
)
def test_service_parent_status(parents: str, kind: str, expected: tuple[str, str]) -> None:
    if kind == "HTTPRoute":
        doc = _mesh_route("r", "app", "{name: api, port: 80}", parents)
    else:
        doc = route(
            f"parentRefs: {parents}\nrules: [{{backendRefs: [{{name: api, port: 80}}]}}]", kind=kind
        )
    w = world(doc)
    condition = w.routes[0].parents[0].condition(ConditionType.ACCEPTED)
    assert condition is not None and (condition.status, condition.reason.value) == expected


def test_a_missing_service_parent_gets_no_status() -> None:
    w = world(
        _mesh_route("r", "app", "{name: api, port: 80}", "[{group: '', kind: Service, name: nope}]")
    )
    assert w.routes[0].parents == ()
    assert [n.code for n in w.notes] == ["route-parent-missing"]


def test_mesh_backend_refs_need_no_reference_grant_but_gateway_ones_do() -> None:
    parents = f"[{{name: gw, namespace: infra}}, {SVC[1:-1]}]"
    w = world(
        HTTP_ALL, _mesh_route("r", "app", "{name: remote, namespace: other, port: 80}", parents)
    )
    by_kind = {p.parent.kind: p.condition(ConditionType.RESOLVED_REFS) for p in w.routes[0].parents}
    assert by_kind["Service"] is not None and by_kind["Service"].status == "True"
    assert by_kind["Gateway"] is not None and by_kind["Gateway"].reason.value == "RefNotPermitted"


def test_grpc_routes_outrank_http_routes_on_one_service_port() -> None:
    grpc = route(
        f"parentRefs: {SVC}\nrules: [{{backendRefs: [{{name: api, port: 9090}}]}}]",
        name="g",
        kind="GRPCRoute",
    )
    w = world(_mesh_route("h", "app", "{name: api, port: 80}"), grpc)
    statuses = {r.name: r.parents[0].condition(ConditionType.ACCEPTED) for r in w.routes}
    assert statuses["g"] is not None and statuses["g"].status == "True"
    assert statuses["h"] is not None and (statuses["h"].status, statuses["h"].reason.value) == (
        "False",
        "Conflicted",
    )


def test_route_hostnames_do_not_narrow_mesh_traffic() -> None:
    w = world(_mesh_route("r", "app", "{name: api, port: 80}", hostnames="[only.example.com]"))
    assert _target(w.mesh, "app") == "producer:api"


def test_the_mesh_port_knows_the_service_cluster_ip() -> None:
    w = world(_mesh_route("r", "app", "{name: api, port: 80}"))
    port = w.mesh.port("app", "web", 80)
    assert port is not None and port.port_name == "http" and len(port.cluster_ips) == 1
