"""The seam between the gateway brain and Service endpoints.

`EndpointSource(state).resolve(namespace, name, port)` answers: which Service port
does a backendRef (Service name + service port number) name, and which endpoints
(address, target port, conditions) serve it. It is the only place the gateway
brain reads EndpointSlices or Pods.

It delegates to the services brain, so the gateway and the service proxy agree
on endpoints:

- `netlet.services.endpointslices.SliceSource.slices_for`: the Service's
  EndpointSlices from the manifests when there are any, else the ones the
  EndpointSlice controller would write from the selected pods (conditions,
  target ports by number or container port name, terminating pods);
- `netlet.services.endpoints.merge_slices`: slices merged per (port name,
  protocol) as kube-proxy reads them, unset conditions read as ready; both IP
  families; slices of headless Services are included (a Gateway forwards to
  their endpoints directly).

Only ready endpoints are usable by the gateway; `all_endpoints` keeps the others
for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlet.cluster.state import ClusterState
from netlet.gateway.table import Endpoint
from netlet.resources.core import Protocol, Service, ServicePort
from netlet.services.endpoints import merge_slices
from netlet.services.endpointslices import ServiceSlices, SliceSource
from netlet.services.table import Endpoint as ServiceEndpoint


@dataclass(frozen=True, slots=True)
class ServicePortEndpoints:
    service: Service
    port: ServicePort
    endpoints: tuple[Endpoint, ...]  # usable (ready), ordered by address then port
    all_endpoints: tuple[Endpoint, ...]
    source: str  # where the slices came from


def find_service_port(
    service: Service, port: int, protocol: Protocol = Protocol.TCP
) -> ServicePort | None:
    for candidate in service.spec.ports:
        if candidate.port == port and candidate.protocol == protocol:
            return candidate
    return None


def _convert(ep: ServiceEndpoint) -> Endpoint:
    return Endpoint(
        address=ep.ip,
        port=ep.port,
        ready=ep.ready,
        serving=ep.serving,
        terminating=ep.terminating,
        node=ep.node,
        zone=ep.zone,
        target=ep.target or "",
    )


@dataclass
class EndpointSource:
    """Resolves Service ports to endpoints; indexes the cluster once, on first use."""

    state: ClusterState
    _slices: SliceSource | None = None
    _by_service: dict[tuple[str, str], ServiceSlices] = field(default_factory=dict)

    def _service_slices(self, service: Service) -> ServiceSlices:
        key = (service.namespace, service.name)
        found = self._by_service.get(key)
        if found is None:
            if self._slices is None:
                self._slices = SliceSource(self.state)
            found = self._by_service[key] = self._slices.slices_for(service)
        return found

    def resolve(
        self, namespace: str, name: str, port: int, protocol: Protocol = Protocol.TCP
    ) -> ServicePortEndpoints | None:
        """None when the Service or that port of it does not exist."""
        service = self.state.get(Service, namespace, name)
        if service is None:
            return None
        service_port = find_service_port(service, port, protocol)
        if service_port is None:
            return None
        slices = self._service_slices(service)
        key = (service_port.name or "", protocol)
        everything: list[Endpoint] = []
        for family in (4, 6):
            merged = merge_slices(slices.slices, family, "", proxied_only=False)
            everything.extend(_convert(ep) for ep in merged.get(key, ()))
        usable = tuple(e for e in everything if e.ready)
        source = "the EndpointSlice controller" if slices.generated else "EndpointSlices"
        return ServicePortEndpoints(service, service_port, usable, tuple(everything), source)


def resolve_service_port(
    state: ClusterState,
    namespace: str,
    name: str,
    port: int,
    protocol: Protocol = Protocol.TCP,
) -> ServicePortEndpoints | None:
    """One-off lookup (builds the indexes each call; the brain uses EndpointSource)."""
    return EndpointSource(state).resolve(namespace, name, port, protocol)
