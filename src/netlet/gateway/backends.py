"""backendRefs -> `Backend` values (apis/v1 HTTPBackendRef, BackendObjectReference).

A backendRef is invalid (ResolvedRefs=False, its share of traffic answered 500) when:

- it names a kind other than a core Service: InvalidKind (ServiceImport and
  implementation-specific kinds are not supported; ExternalName Services are not
  forwarded to, CVE-2021-25740, and count as InvalidKind too);
- it crosses namespaces without a ReferenceGrant (Gateway-bound routes only; mesh
  routes need none, GEP-1294 "Namespace boundaries"): RefNotPermitted;
- the Service or the port does not exist: BackendNotFound;
- the Service port's appProtocol cannot carry the route's traffic (GEP-1911):
  UnsupportedProtocol.

A valid backend without ready endpoints is NO_ENDPOINTS (503, and ResolvedRefs
stays True: the reference itself resolves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.gateway.conditions import RouteReason
from netlet.gateway.endpoints import EndpointSource
from netlet.gateway.policy import PolicyIndex
from netlet.gateway.refs import Grants
from netlet.gateway.table import Backend, BackendKey, BackendState
from netlet.resources.core import Protocol, Service
from netlet.resources.gateway_api import GROUP, BackendObjectReference

# Service port appProtocols each route kind can use (GEP-1911 and KEP-3726 names;
# None = not set). L4 routes carry bytes and accept any.
APP_PROTOCOLS: dict[str, frozenset[str | None]] = {
    "HTTPRoute": frozenset(
        {None, "http", "https", "kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"}
    ),
    "GRPCRoute": frozenset({None, "kubernetes.io/h2c", "grpc", "h2c"}),
}


@dataclass
class BackendResolver:
    state: ClusterState
    grants: Grants
    policies: PolicyIndex
    _cache: dict[tuple[str, str, bool, BackendKey], Backend] = field(default_factory=dict)
    _endpoints: EndpointSource | None = None

    def resolve(
        self, route_kind: str, route_namespace: str, ref: BackendObjectReference, mesh: bool = False
    ) -> Backend:
        namespace = ref.namespace or route_namespace
        key = BackendKey(ref.group, ref.kind, namespace, ref.name, ref.port)
        cache_key = (route_kind, route_namespace, mesh, key)
        found = self._cache.get(cache_key)
        if found is None:
            found = self._cache[cache_key] = self._resolve(route_kind, route_namespace, key, mesh)
        return found

    def _resolve(
        self, route_kind: str, route_namespace: str, key: BackendKey, mesh: bool
    ) -> Backend:
        def invalid(reason: RouteReason, message: str) -> Backend:
            return Backend(key, BackendState.INVALID, reason.value, message)

        if (key.group, key.kind) != ("", "Service"):
            return invalid(
                RouteReason.INVALID_KIND, f"{key}: kind is not supported (only core Services)"
            )
        if not mesh and not self.grants.permits(
            GROUP, route_kind, route_namespace, "", "Service", key.namespace, key.name
        ):
            return invalid(
                RouteReason.REF_NOT_PERMITTED,
                f"{key}: no ReferenceGrant in {key.namespace} allows {route_kind}s from "
                f"{route_namespace} to reference it",
            )
        service = self.state.get(Service, key.namespace, key.name)
        if service is None:
            return invalid(RouteReason.BACKEND_NOT_FOUND, f"{key}: Service not found")
        if service.spec.type == "ExternalName":
            return invalid(
                RouteReason.INVALID_KIND,
                f"{key}: ExternalName Services are not supported as backends (CVE-2021-25740)",
            )
        if key.port is None:
            return invalid(RouteReason.BACKEND_NOT_FOUND, f"{key}: no port given")
        protocol = Protocol.UDP if route_kind == "UDPRoute" else Protocol.TCP
        if self._endpoints is None:
            self._endpoints = EndpointSource(self.state)
        resolved = self._endpoints.resolve(key.namespace, key.name, key.port, protocol)
        if resolved is None:
            return invalid(
                RouteReason.BACKEND_NOT_FOUND,
                f"{key}: Service has no {protocol.value} port {key.port}",
            )
        app_protocol = resolved.port.app_protocol
        allowed = APP_PROTOCOLS.get(route_kind)
        if allowed is not None and app_protocol not in allowed:
            return invalid(
                RouteReason.UNSUPPORTED_PROTOCOL,
                f"{key}: appProtocol {app_protocol} cannot carry {route_kind} traffic",
            )
        tls = self.policies.lookup(key.namespace, key.name, resolved.port.name)
        if not resolved.endpoints:
            return Backend(
                key,
                BackendState.NO_ENDPOINTS,
                "",
                f"{key}: no ready endpoints",
                (),
                app_protocol,
                resolved.port.name,
                tls,
            )
        return Backend(
            key,
            BackendState.VALID,
            "",
            f"{key}: {len(resolved.endpoints)} ready endpoint(s) from {resolved.source}",
            resolved.endpoints,
            app_protocol,
            resolved.port.name,
            tls,
        )
