"""Route attachment: which listeners (or Service ports) each parentRef reaches, and
why not when none.

Spec: ParentReference and CommonRouteSpec (shared_types.go), Listener.AllowedRoutes,
HTTPRouteSpec.Hostnames, TLSRouteSpec.Hostnames, GEP-1713 ("Route Attachment",
"Gateway Parents and sectionName"), GEP-1294 (mesh). Checks, in order:

1. parentRef defaults: group gateway.networking.k8s.io, kind Gateway, namespace =
   the route's. Parents netlet does not manage (other controllers' Gateways,
   unknown kinds, missing objects) get no status entry.
2. sectionName / port select the relevant listeners of the *direct* parent (a
   Gateway's own spec.listeners, or a ListenerSet's): none -> NoMatchingParent.
3. allowedRoutes: namespaces (Same = the listener owner's namespace, All,
   Selector over namespace labels) and kinds (supportedKinds, which follow the
   protocol): none -> NotAllowedByListeners (a TLSRoute reaching only non-TLS
   listeners -> UnsupportedValue, TLSRouteSpec.Hostnames).
4. Hostnames (HTTPRoute, GRPCRoute, TLSRoute): listener and route hostnames must
   intersect: none -> NoMatchingListenerHostname.
5. Otherwise Accepted, attached to every listener that passed.

Service parents (GAMMA, kind Service, group ""): a ClusterIP Service (not headless,
not ExternalName) in any namespace; sectionName is a port name, port a port
number; a route in the Service's namespace is a producer route, elsewhere a
consumer route. netlet's mesh routes HTTPRoute and GRPCRoute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from netlet.cluster.state import ClusterState
from netlet.gateway.conditions import RouteReason
from netlet.gateway.hostnames import route_hostnames_on_listener
from netlet.gateway.listeners import MergedListener, namespace_selected
from netlet.gateway.status import ParentKey
from netlet.resources.base import Resource
from netlet.resources.core import Service
from netlet.resources.gateway_api import GROUP, ParentReference

HOSTNAME_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute")
MESH_KINDS = ("HTTPRoute", "GRPCRoute")


def parent_key(route: Resource, ref: ParentReference) -> ParentKey:
    return ParentKey(
        ref.group, ref.kind, ref.namespace or route.namespace, ref.name, ref.section_name, ref.port
    )


@dataclass
class Attachment:
    """The outcome for one parentRef."""

    key: ParentKey
    kind: Literal["gateway", "mesh"]
    accepted: bool
    reason: RouteReason
    message: str
    gateway: str | None = None  # "ns/name" of the Gateway whose listeners it reaches
    listeners: list[tuple[MergedListener, tuple[str, ...]]] = field(default_factory=list)
    mesh_ports: list[tuple[int, str | None]] = field(default_factory=list)  # (port, name)
    role: str = ""  # producer | consumer


def attach_to_listeners(
    state: ClusterState,
    route: Resource,
    key: ParentKey,
    gateway: str,
    candidates: list[MergedListener],
    what: str,
) -> Attachment:
    def refuse(reason: RouteReason, message: str) -> Attachment:
        return Attachment(key, "gateway", False, reason, message, gateway)

    if key.section_name is not None:
        candidates = [ml for ml in candidates if ml.spec.name == key.section_name]
    if key.port is not None:
        candidates = [ml for ml in candidates if ml.spec.port == key.port]
    if not candidates:
        selector = " and ".join(
            part
            for part in (
                f"sectionName {key.section_name}" if key.section_name is not None else "",
                f"port {key.port}" if key.port is not None else "",
            )
            if part
        )
        return refuse(
            RouteReason.NO_MATCHING_PARENT,
            f"{what} has no listener matching {selector or 'the parentRef'}",
        )
    route_kind = (GROUP, route.KIND)
    spec: Any = getattr(route, "spec", None)
    allowed = [
        ml
        for ml in candidates
        if route_kind in ml.supported_kinds
        and namespace_selected(
            state, ml.spec.allowed_routes.namespaces, ml.owner_namespace, route.namespace
        )
    ]
    if not allowed:
        if route.KIND == "TLSRoute" and all(ml.protocol != "TLS" for ml in candidates):
            return refuse(
                RouteReason.UNSUPPORTED_VALUE,
                "a TLSRoute must attach to a listener with protocol TLS",
            )
        names = ", ".join(ml.spec.name for ml in candidates)
        return refuse(
            RouteReason.NOT_ALLOWED_BY_LISTENERS,
            f"no listener of {what} ({names}) allows {route.KIND}s from namespace "
            f"{route.namespace}",
        )
    attached: list[tuple[MergedListener, tuple[str, ...]]] = []
    route_hostnames: tuple[str, ...] = tuple(getattr(spec, "hostnames", ()))
    for ml in allowed:
        if route.KIND in HOSTNAME_KINDS:
            hostnames = route_hostnames_on_listener(ml.spec.hostname, route_hostnames)
            if hostnames is None:
                continue
        else:
            hostnames = ()
        attached.append((ml, hostnames))
    if not attached:
        return refuse(
            RouteReason.NO_MATCHING_LISTENER_HOSTNAME,
            f"no listener hostname of {what} intersects the route hostnames "
            f"{', '.join(route_hostnames)}",
        )
    names = ", ".join(ml.spec.name for ml, _ in attached)
    result = Attachment(
        key,
        "gateway",
        True,
        RouteReason.ACCEPTED,
        f"Accepted by {what} listener(s) {names}",
        gateway,
    )
    result.listeners = attached
    return result


def attach_to_service(state: ClusterState, route: Resource, key: ParentKey) -> Attachment | None:
    """GAMMA attachment; None when the Service does not exist (no status entry)."""
    service = state.get(Service, key.namespace, key.name)
    if service is None:
        return None

    def refuse(reason: RouteReason, message: str) -> Attachment:
        return Attachment(key, "mesh", False, reason, message)

    if route.KIND not in MESH_KINDS:
        return refuse(
            RouteReason.UNSUPPORTED_VALUE,
            f"netlet's mesh routes HTTPRoute and GRPCRoute, not {route.KIND}",
        )
    if service.spec.type == "ExternalName" or service.spec.headless:
        return refuse(
            RouteReason.UNSUPPORTED_VALUE,
            f"Service {key.namespace}/{key.name} has no cluster IP (headless or ExternalName)",
        )
    ports = [p for p in service.spec.ports if p.protocol.value == "TCP"]
    if key.section_name is not None:
        ports = [p for p in ports if p.name == key.section_name]
    if key.port is not None:
        ports = [p for p in ports if p.port == key.port]
    if not ports:
        return refuse(
            RouteReason.NO_MATCHING_PARENT,
            f"Service {key.namespace}/{key.name} has no TCP port matching the parentRef",
        )
    role = "producer" if route.namespace == key.namespace else "consumer"
    result = Attachment(
        key,
        "mesh",
        True,
        RouteReason.ACCEPTED,
        f"Accepted as a {role} route for Service {key.namespace}/{key.name}",
    )
    result.mesh_ports = [(p.port, p.name) for p in ports]
    result.role = role
    return result
