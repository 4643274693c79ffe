"""What the analyzers predict the lab's probes will see: the test oracle for root tests.

For one probe (a lab source to a lab target) it combines the brains, never the
nftables backend:

- Services (netlet.services.flow.trace): at the node whose proxy sees the
  connection first - the source pod's node, the node owning a NodePort address,
  or the node the lab routes a load balancer / external IP to - the outcomes:
  endpoints (with masquerade), REJECT, DROP, or no match.
- Policy (netlet.policy.verdict): for each endpoint (or a pod targeted
  directly), the egress walk of the source and the ingress walk of the
  destination as the destination's node sees the source: a connection
  masqueraded on its way to an endpoint on another node arrives from the first
  node's address.
- The lab's workload serves exactly the declared container ports: an allowed
  connection to an undeclared port is refused by the pod itself.
- Replies must pass the node that translated the connection: a connection
  DNATed by a node that is neither the endpoint's nor the client's, and not
  masqueraded, gets its reply straight from the endpoint's node and never
  completes (upstream: "If we are using non-local endpoints we need to
  masquerade, in case we cross nodes"). The lab routes each pod CIDR to its
  node and the outside client sits on the nodes' link, so this is exact there.

Outcomes are the lab's: connected, refused (REJECT), timeout (DROP or a policy
drop). `None` means the analyzers say nothing the lab can check (a connection
no rule captures is routed by the lab's own routes).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from netlet.cluster.state import ClusterState
from netlet.dataplane.lab.plan import LabPlan
from netlet.dataplane.lab.probe import Source, Target
from netlet.policy.compile import compile_program
from netlet.policy.program import PodKey
from netlet.policy.verdict import Endpoint, EndpointKind, PolicyEngine
from netlet.resources.core import Pod, Protocol
from netlet.services.builder import build_table
from netlet.services.flow import OutcomeKind, SourceKind, trace
from netlet.services.flow import Source as FlowSource
from netlet.services.table import ServiceTable

CONNECTED, REFUSED, TIMEOUT = "connected", "refused", "timeout"


@dataclass(frozen=True)
class Prediction:
    outcome: str
    replies: frozenset[str] = frozenset()  # pod names that may answer
    clients: frozenset[str] = frozenset()  # addresses the server may see

    def __str__(self) -> str:
        who = f" by {sorted(self.replies)}" if self.replies else ""
        return f"{self.outcome}{who}"


@dataclass
class Oracle:
    state: ClusterState
    plan: LabPlan

    @cached_property
    def engine(self) -> PolicyEngine:
        return PolicyEngine(compile_program(self.state))

    @cached_property
    def tables(self) -> dict[str, ServiceTable]:
        return {}

    def table_for(self, node: str) -> ServiceTable:
        if node not in self.tables:
            self.tables[node] = build_table(self.state, node)
        return self.tables[node]

    def node_of_address(self, address: str) -> str | None:
        for node in self.plan.nodes:
            if address in node.ips:
                return node.name
        return None

    def announcing_node(self, address: str) -> str | None:
        """The node the lab's external client routes a load balancer / external IP to."""
        for route in self.plan.external.routes:
            if route.via is not None and route.dst.split("/")[0] == address:
                return self.node_of_address(route.via)
        return None

    def _endpoint(self, source: Source) -> Endpoint:
        ip = ipaddress.ip_address(source.addresses[0])
        if source.kind == "external":
            return self.engine.ip_endpoint(ip)
        namespace, _, name = source.name.partition("/")
        if self.engine.program.pod(PodKey(namespace, name)) is None:
            # A pod policy does not know (terminating, say) is no subject: as its address.
            return self.engine.ip_endpoint(ip)
        return self.engine.pod_endpoint(PodKey(namespace, name), ip.version)

    def _served(self, ip: str, port: int, protocol: str) -> Pod | None:
        """The pod serving ip:port/protocol, or None when nothing listens there."""
        for pod_plan in self.plan.pods:
            if ip in pod_plan.ips and any(
                p.port == port and p.protocol == protocol for p in pod_plan.ports
            ):
                return self.state.get(Pod, pod_plan.namespace, pod_plan.name)
        return None

    def _policy_allows(
        self, src: Endpoint, seen: Endpoint, dst_ip: str, protocol: str, port: int, via: bool
    ) -> bool:
        dst = self.engine.ip_endpoint(ipaddress.ip_address(dst_ip))
        egress = self.engine.verdict(src, dst, protocol, port, via_service=via)
        if src == seen:
            return egress.allowed
        ingress = self.engine.verdict(seen, dst, protocol, port, via_service=via)
        return egress.egress.allowed and ingress.ingress.allowed

    def _at(
        self, src: Endpoint, seen: Endpoint, ip: str, port: int, protocol: str, via: bool
    ) -> Prediction:
        if not self._policy_allows(src, seen, ip, protocol, port, via):
            return Prediction(TIMEOUT)
        pod = self._served(ip, port, protocol)
        if pod is None:
            return Prediction(REFUSED)
        return Prediction(CONNECTED, frozenset({pod.name}))

    def predict(self, source: Source, target: Target) -> Prediction | None:
        if target.protocol == "SCTP":
            return None  # this kernel has no SCTP (the probe says "error")
        src = self._endpoint(source)
        if target.kind == "pod":
            if source.kind == "external":
                return None  # the lab's outside client has no route to pod IPs
            if src.kind == EndpointKind.POD and target.address in source.addresses:
                return self._self(target)
            return self._at(src, src, target.address, target.port, target.protocol, False)
        return self._service(source, src, target)

    def _self(self, target: Target) -> Prediction:
        pod = self._served(target.address, target.port, target.protocol)
        return Prediction(CONNECTED, frozenset({pod.name})) if pod else Prediction(REFUSED)

    def _service(self, source: Source, src: Endpoint, target: Target) -> Prediction | None:
        dst = ipaddress.ip_address(target.address)
        if source.kind == "external":
            first = target.node or self.announcing_node(target.address)
            if first is None:
                return None
            flow_source = FlowSource(SourceKind.EXTERNAL, src.ip, str(src.ip), None)
        else:
            first = source.node
            kind = SourceKind.NODE if source.kind == "hostNetwork" else SourceKind.POD
            flow_source = FlowSource(kind, src.ip, source.name, source.node)
        result = trace(
            self.state,
            flow_source,
            Protocol(target.protocol),
            dst,
            target.port,
            self.table_for,
            node=first,
        ).result
        kind = result.kind
        if kind == OutcomeKind.REJECT:
            return Prediction(REFUSED)
        if kind == OutcomeKind.DROP:
            return Prediction(TIMEOUT)
        if kind == OutcomeKind.NO_MATCH:
            return None
        predictions = set()
        client_node = None if source.kind == "external" else source.node
        for outcome in result.outcomes:
            ep = outcome.endpoint
            assert ep is not None
            if not outcome.masquerade and result.node not in (ep.node, client_node):
                predictions.add(Prediction(TIMEOUT))  # the reply bypasses the DNAT
                continue
            seen = src
            if outcome.masquerade and ep.node != result.node:
                seen = self.engine.node_endpoint(result.node, src.ip.version)
            predictions.add(self._at(src, seen, str(ep.ip), ep.port, target.protocol, True))
        outcomes = {p.outcome for p in predictions}
        if len(outcomes) != 1:
            return None  # depends on the random endpoint choice: not checkable in one probe
        replies = frozenset(r for p in predictions for r in p.replies)
        return Prediction(outcomes.pop(), replies)
